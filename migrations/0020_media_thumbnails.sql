-- Thumbnails of mirrored pictures for the UI: the object key of a PNG of at most 256 px
-- (stored once per picture hash), or why none could be made (a picture the decoder refuses).
ALTER TABLE media
    ADD COLUMN thumbnail_key text,
    ADD COLUMN thumbnail_error text;
