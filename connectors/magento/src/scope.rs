//! Store scopes and the REST paths they select (REFERENCE §2.4).
//!
//! The store code is a path segment: `/rest/<code>/V1/…` reads and writes
//! that store view, `/rest/all/V1/…` the admin (default) values, and
//! `/rest/V1/…` the *default store view* (not the default scope).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::oauth::percent::{is_unreserved, rawurlencode};

/// A validated store view code: Magento allows letters, digits and `_`,
/// starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreCode(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid store code {0:?}: use letters, digits and underscores, starting with a letter")]
pub struct InvalidStoreCode(pub String);

impl StoreCode {
    pub fn parse(code: &str) -> Result<Self, InvalidStoreCode> {
        let mut bytes = code.bytes();
        let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(StoreCode(code.to_owned()))
        } else {
            Err(InvalidStoreCode(code.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which store's values a call reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreScope {
    /// `/rest/V1/…`: Magento resolves this to the default store view.
    DefaultStoreView,
    /// `/rest/all/V1/…`: admin/default values (store 0).
    All,
    /// `/rest/<code>/V1/…`
    Store(StoreCode),
}

impl StoreScope {
    /// `""` → [`StoreScope::DefaultStoreView`], `"all"` → [`StoreScope::All`],
    /// anything else must be a valid store code.
    pub fn parse(code: &str) -> Result<Self, InvalidStoreCode> {
        match code {
            "" => Ok(StoreScope::DefaultStoreView),
            "all" => Ok(StoreScope::All),
            other => StoreCode::parse(other).map(StoreScope::Store),
        }
    }

    pub fn store(code: &str) -> Result<Self, InvalidStoreCode> {
        StoreScope::parse(code)
    }

    /// The path segment (`""` for the default store view).
    pub fn code(&self) -> &str {
        match self {
            StoreScope::DefaultStoreView => "",
            StoreScope::All => "all",
            StoreScope::Store(code) => code.as_str(),
        }
    }
}

impl FromStr for StoreScope {
    type Err = InvalidStoreCode;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        StoreScope::parse(code)
    }
}

impl fmt::Display for StoreScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreScope::DefaultStoreView => f.write_str("(default store view)"),
            other => f.write_str(other.code()),
        }
    }
}

/// Which REST front controller handles the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/rest/<sc>/V1/…`
    Sync,
    /// `/rest/<sc>/async/V1/…` (202 + bulk uuid)
    Async,
    /// `/rest/<sc>/async/bulk/V1/…` (array bodies, `bySku`-style paths)
    AsyncBulk,
}

/// The part of the path after `V1/`, with variable segments encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    segments: Vec<String>,
}

impl Route {
    pub fn new() -> Self {
        Route::default()
    }

    /// Literal path text such as `products/attributes` (slashes allowed).
    pub fn lit(mut self, text: &'static str) -> Self {
        self.segments.extend(
            text.split('/')
                .filter(|part| !part.is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// A variable segment (SKU, code, id), fully percent-encoded. `.` and
    /// `..` are encoded as well so URL resolution cannot eat them.
    pub fn value(mut self, value: &str) -> Self {
        self.segments.push(encode_segment(value));
        self
    }

    pub fn encoded(&self) -> String {
        self.segments.join("/")
    }
}

/// The REST path relative to the store base URL, e.g. `rest/fr/V1/products`.
pub(crate) fn rest_path(scope: &StoreScope, api: Api, route: &Route) -> String {
    let mut path = String::from("rest/");
    if !scope.code().is_empty() {
        path.push_str(scope.code());
        path.push('/');
    }
    match api {
        Api::Sync => {}
        Api::Async => path.push_str("async/"),
        Api::AsyncBulk => path.push_str("async/bulk/"),
    }
    path.push_str("V1/");
    path.push_str(&route.encoded());
    path
}

fn encode_segment(value: &str) -> String {
    if value == "." || value == ".." || value.is_empty() {
        value.bytes().map(|b| format!("%{b:02X}")).collect()
    } else {
        rawurlencode(value)
    }
}

/// Whether a SKU can travel in a URL path without surprises. Magento
/// `urldecode`s path segments (so `+` turns into a space), Apache refuses
/// `%2F` by default, and the signature path is normalised (REFERENCE §2.3),
/// so only unreserved characters are trusted; other SKUs are looked up with a
/// `sku` filter instead.
pub fn is_path_safe_sku(sku: &str) -> bool {
    !sku.is_empty() && sku != "." && sku != ".." && sku.bytes().all(is_unreserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_has_its_path() {
        let route = Route::new().lit("products").value("A B/C");
        assert_eq!(
            rest_path(&StoreScope::DefaultStoreView, Api::Sync, &route),
            "rest/V1/products/A%20B%2FC"
        );
        assert_eq!(
            rest_path(&StoreScope::All, Api::Sync, &route),
            "rest/all/V1/products/A%20B%2FC"
        );
        let fr = StoreScope::parse("fr").expect("valid code");
        assert_eq!(
            rest_path(&fr, Api::Async, &route),
            "rest/fr/async/V1/products/A%20B%2FC"
        );
        assert_eq!(
            rest_path(&fr, Api::AsyncBulk, &Route::new().lit("products/bySku")),
            "rest/fr/async/bulk/V1/products/bySku"
        );
    }

    #[test]
    fn dot_segments_are_encoded() {
        assert_eq!(Route::new().value("..").encoded(), "%2E%2E");
        assert_eq!(Route::new().value("a.b").encoded(), "a.b");
    }

    #[test]
    fn store_codes_are_validated() {
        assert!(StoreCode::parse("de_ch").is_ok());
        assert!(StoreCode::parse("1fr").is_err());
        assert!(StoreCode::parse("fr/../x").is_err());
        assert_eq!(StoreScope::parse("all"), Ok(StoreScope::All));
        assert_eq!(StoreScope::parse(""), Ok(StoreScope::DefaultStoreView));
    }

    #[test]
    fn only_unreserved_skus_go_into_paths() {
        assert!(is_path_safe_sku("TS-RED_M.1~x"));
        for hostile in ["A/B", "A B", "A+B", "50%", "A#1", "é", "", ".", ".."] {
            assert!(!is_path_safe_sku(hostile), "{hostile:?}");
        }
    }
}
