//! Reading answers with a cap, and describing them without repeating them.
//!
//! A remote body is read chunk by chunk and the read stops as soon as it passes the cap of
//! its kind, so a server that streams without end costs at most the cap. Bodies are never
//! echoed to whoever asked: an error answer is reduced to the fields a caller picks from it
//! (Magento's JSON `message`) or to a short description of its shape.

use std::fmt;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

/// The largest body accepted for one kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    /// What the answer is, for the error: "Magento answer", "picture"…
    pub what: &'static str,
    pub max_bytes: usize,
}

impl BodyLimit {
    pub const fn new(what: &'static str, max_bytes: usize) -> BodyLimit {
        BodyLimit { what, max_bytes }
    }
}

/// Error answers are read this far, for a structured message in them.
pub const ERROR_ANSWER: BodyLimit = BodyLimit::new("error answer", 64 * 1024);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the {what} is larger than {max_bytes} bytes; reading stopped there")]
    TooLarge {
        what: &'static str,
        max_bytes: usize,
    },
    #[error("no complete answer within the time limit")]
    Timeout,
    #[error("reading the answer failed: {0}")]
    Transport(String),
}

/// A failed answer, read no further than [`ERROR_ANSWER`].
#[derive(Debug, Clone)]
pub struct ErrorAnswer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The body when it was read whole; `None` when it was larger than the cap or broke off.
    pub body: Option<Bytes>,
    size: Size,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Read(usize),
    MoreThan(usize),
    BrokeOff,
}

impl ErrorAnswer {
    /// An answer read whole elsewhere.
    pub fn new(status: StatusCode, content_type: Option<String>, body: Bytes) -> ErrorAnswer {
        ErrorAnswer {
            status,
            content_type,
            size: Size::Read(body.len()),
            body: Some(body),
        }
    }

    /// The body, or nothing when it could not be read whole.
    pub fn body(&self) -> &[u8] {
        self.body.as_deref().unwrap_or_default()
    }

    /// What the answer looked like, never what it said: `text/html, 1532 bytes`.
    pub fn summary(&self) -> String {
        let kind = content_kind(self.content_type.as_deref());
        match self.size {
            Size::Read(size) => shape(kind, size, false),
            Size::MoreThan(size) => shape(kind, size, true),
            Size::BrokeOff => format!("{kind}, broken off"),
        }
    }
}

impl fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}, {}", self.status.as_u16(), self.summary())
    }
}

/// `text/html, 1532 bytes`, `no content type, empty`, `application/json, more than 65536
/// bytes`. The content type is cut at its parameters and kept short, since a server writes it.
pub fn summary(content_type: Option<&str>, size: usize, larger: bool) -> String {
    shape(content_kind(content_type), size, larger)
}

fn shape(kind: &str, size: usize, larger: bool) -> String {
    match (size, larger) {
        (_, true) => format!("{kind}, more than {size} bytes"),
        (0, false) => format!("{kind}, empty"),
        (1, false) => format!("{kind}, 1 byte"),
        (n, false) => format!("{kind}, {n} bytes"),
    }
}

fn content_kind(content_type: Option<&str>) -> &str {
    content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 100
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/+-._".contains(&b))
        })
        .unwrap_or("no content type")
}

/// An answer whose body has not been read yet. The body can only be read with a cap.
#[derive(Debug)]
pub struct Response {
    inner: reqwest::Response,
}

impl Response {
    pub(crate) fn new(inner: reqwest::Response) -> Response {
        Response { inner }
    }

    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        self.inner.headers()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.inner
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
    }

    /// The whole body, or [`ReadError::TooLarge`] as soon as it passes `limit` (at once when
    /// the announced length does). Decompressed bytes count, so a compressed bomb stops too.
    pub async fn bytes(mut self, limit: BodyLimit) -> Result<Bytes, ReadError> {
        let too_large = || ReadError::TooLarge {
            what: limit.what,
            max_bytes: limit.max_bytes,
        };
        if self
            .inner
            .content_length()
            .is_some_and(|length| length > limit.max_bytes as u64)
        {
            return Err(too_large());
        }
        // The buffer doubles as the body grows but never past the cap, and an announced
        // length is not trusted for the first allocation (a server would choose it).
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = self.inner.chunk().await.map_err(read_error)? {
            let needed = body.len() + chunk.len();
            if needed > limit.max_bytes {
                return Err(too_large());
            }
            if needed > body.capacity() {
                let grown = (body.capacity() * 2).max(needed).max(8 * 1024);
                body.reserve_exact(grown.min(limit.max_bytes) - body.len());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// The first `max_bytes` of the body and whether there was more; the rest is not read.
    pub async fn head(mut self, max_bytes: usize) -> Result<(Bytes, bool), ReadError> {
        let mut body: Vec<u8> = Vec::with_capacity(max_bytes.min(8 * 1024));
        while let Some(chunk) = self.inner.chunk().await.map_err(read_error)? {
            let room = max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                return Ok((Bytes::from(body), true));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((Bytes::from(body), false))
    }

    /// The body as text (invalid UTF-8 replaced), with a cap.
    pub async fn text(self, limit: BodyLimit) -> Result<String, ReadError> {
        let bytes = self.bytes(limit).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Reads a failed answer for what a caller may take from it.
    pub async fn error_answer(self) -> ErrorAnswer {
        let status = self.status();
        let content_type = self.content_type().map(str::to_owned);
        let (body, size) = match self.bytes(ERROR_ANSWER).await {
            Ok(body) => {
                let size = Size::Read(body.len());
                (Some(body), size)
            }
            Err(ReadError::TooLarge { max_bytes, .. }) => (None, Size::MoreThan(max_bytes)),
            Err(_) => (None, Size::BrokeOff),
        };
        ErrorAnswer {
            status,
            content_type,
            body,
            size,
        }
    }
}

pub(crate) fn read_error(error: reqwest::Error) -> ReadError {
    if error.is_timeout() {
        ReadError::Timeout
    } else {
        ReadError::Transport(crate::client::describe(&error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_shape_only() {
        assert_eq!(
            summary(Some("text/html; charset=UTF-8"), 1532, false),
            "text/html, 1532 bytes"
        );
        assert_eq!(summary(None, 0, false), "no content type, empty");
        assert_eq!(
            summary(Some("application/json"), 65536, true),
            "application/json, more than 65536 bytes"
        );
        // A content type is the server's text too: anything odd is not repeated.
        assert_eq!(
            summary(Some("text/html <script>alert(1)</script>"), 3, false),
            "no content type, 3 bytes"
        );
        assert_eq!(
            summary(Some(&"a".repeat(500)), 1, false),
            "no content type, 1 byte"
        );
    }
}
