//! Cursor pagination shared by every list endpoint: `?cursor=&limit=` in,
//! `{"items": [...], "next_cursor": "…" | null}` out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::Error;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

impl PageParams {
    pub fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT))
    }

    /// The position after which this page starts, or `None` for the first page.
    pub fn after<C: DeserializeOwned>(&self) -> Result<Option<C>, Error> {
        let Some(cursor) = self.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let invalid = || Error::invalid("cursor", "cursor is not one this API issued");
        let bytes = B64URL.decode(cursor).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| invalid())
    }
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` must have been fetched with `LIMIT limit + 1`: the extra row only tells that
    /// another page exists, and the cursor is the position of the last row kept.
    pub fn from_rows<C: Serialize>(
        mut rows: Vec<T>,
        limit: i64,
        position: impl Fn(&T) -> C,
    ) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                let json = serde_json::to_vec(&position(last)).unwrap_or_default();
                B64URL.encode(json)
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_refused() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, [1, 2]);
        let params = PageParams {
            cursor: page.next_cursor,
            limit: None,
        };
        assert_eq!(params.after::<i32>().unwrap(), Some(2));
        let bad = PageParams {
            cursor: Some("%%%".into()),
            limit: None,
        };
        assert!(bad.after::<i32>().is_err());
        assert!(Page::from_rows(vec![1], 2, |n| *n).next_cursor.is_none());
    }

    #[test]
    fn limit_is_clamped() {
        assert_eq!(
            PageParams {
                cursor: None,
                limit: Some(0)
            }
            .limit(),
            1
        );
        assert_eq!(
            PageParams {
                cursor: None,
                limit: Some(10_000)
            }
            .limit(),
            200
        );
        assert_eq!(PageParams::default().limit(), 50);
    }
}
