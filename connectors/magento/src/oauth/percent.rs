//! The two percent-encodings OAuth needs: RFC 3986 "rawurlencode" (only
//! `A-Z a-z 0-9 - . _ ~` stay literal, everything else is `%XX` with upper-case
//! hex) and its inverse, which like PHP's `rawurldecode` never turns `+` into a
//! space and leaves malformed escapes alone.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// Characters RFC 3986 calls unreserved are the only ones left unescaped.
pub(crate) const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// PHP `rawurlencode` (with `~` kept, as Laminas' OAuth utility does).
pub(crate) fn rawurlencode(input: impl AsRef<[u8]>) -> String {
    percent_encode(input.as_ref(), RFC3986).to_string()
}

/// PHP `rawurldecode`: bytes, because a decoded value need not be UTF-8.
pub(crate) fn rawurldecode(input: &str) -> Vec<u8> {
    percent_decode(input.as_bytes()).collect()
}

pub(crate) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_php_rawurlencode() {
        assert_eq!(
            rawurlencode("a b+c=d&e[0]~é"),
            "a%20b%2Bc%3Dd%26e%5B0%5D~%C3%A9"
        );
    }

    #[test]
    fn decodes_without_turning_plus_into_space() {
        assert_eq!(rawurldecode("a+b%20c%zz%4"), b"a+b c%zz%4".to_vec());
    }
}
