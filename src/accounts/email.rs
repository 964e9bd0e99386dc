//! Email addresses, parsed at the edge.

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, Error> {
        let value = raw.trim();
        let invalid = || Error::invalid("email", "email is not a valid address");
        if value.is_empty()
            || value.len() > 254
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A required, trimmed, bounded display text (names of people and workspaces).
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, Error> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, format!("{field} must not be empty")));
    }
    if value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most 200 characters without control characters"),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["a@b.io", " Ana.Lopez+shop@example.co.uk ", "é@exämple.de"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "", "a", "a@b", "@b.io", "a@.io", "a@b..io", "a b@c.io", "a@b\n.io", "a@b.", "a@@b.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Ana ").unwrap(), "Ana");
        assert!(parse_name("name", "   ").is_err());
        assert!(parse_name("name", &"x".repeat(201)).is_err());
        assert!(parse_name("name", "a\u{0}b").is_err());
    }
}
