//! Query strings the way Magento parses (and signs) them.
//!
//! Every name and value is rawurlencoded: spaces become `%20` (never `+`,
//! which Magento keeps as a literal plus), and `= & + [ ]` inside values are
//! always escaped so no pair is split or dropped by Magento's
//! `explode('&')`/`explode('=')` parsing. Arrays use explicit indexes
//! (`storeCodes[0]=a&storeCodes[1]=b`): repeated `[]` keys collapse to the
//! last value on Magento's side.

use crate::oauth::percent::rawurlencode;

/// Ordered, unencoded query pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    pub fn new() -> Self {
        QueryPairs::default()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    /// `name[0]=v0&name[1]=v1…`
    pub fn push_indexed<I, S>(&mut self, name: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for (index, value) in values.into_iter().enumerate() {
            self.push(format!("{name}[{index}]"), value);
        }
    }

    pub fn extend(&mut self, other: QueryPairs) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The encoded query string, without the leading `?`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                out.push('&');
            }
            out.push_str(&rawurlencode(name));
            out.push('=');
            out.push_str(&rawurlencode(value));
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for QueryPairs {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        QueryPairs(
            iter.into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_in_values_are_always_escaped() {
        let query = QueryPairs::new().with("q", "a b+c=d&e[f]#g%h");
        assert_eq!(query.encode(), "q=a%20b%2Bc%3Dd%26e%5Bf%5D%23g%25h");
    }

    #[test]
    fn arrays_get_explicit_indexes() {
        let mut query = QueryPairs::new();
        query.push_indexed("storeCodes", ["default", "fr"]);
        assert_eq!(
            query.encode(),
            "storeCodes%5B0%5D=default&storeCodes%5B1%5D=fr"
        );
    }
}
