//! Turning 2xx bodies into values. A body that is not the JSON the endpoint
//! promises is an `InvalidResponse`; odd *fields* inside are only warnings.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::MagentoError;
use crate::models::lenient::kind;
use crate::models::{FromMagento, ParseWarning, Parsed, SearchPage};

pub(crate) fn json(body: &[u8]) -> Result<Value, MagentoError> {
    serde_json::from_slice(body).map_err(|error| {
        MagentoError::InvalidResponse(format!("body is not JSON ({})", describe(&error, body)))
    })
}

/// Scalars and plain shapes (`true`, an id, a count).
pub(crate) fn typed<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, MagentoError> {
    serde_json::from_slice(body).map_err(|error| {
        MagentoError::InvalidResponse(format!("expected {what} ({})", describe(&error, body)))
    })
}

pub(crate) fn one<T: FromMagento>(body: &[u8]) -> Result<Parsed<T>, MagentoError> {
    let value = json(body)?;
    if !value.is_object() {
        return Err(MagentoError::InvalidResponse(format!(
            "expected an object, found {}",
            kind(&value)
        )));
    }
    Ok(T::from_value(value))
}

/// A JSON list of models (an object of models is accepted as a list too).
pub(crate) fn list<T: FromMagento>(body: &[u8]) -> Result<Vec<Parsed<T>>, MagentoError> {
    let items = match json(body)? {
        Value::Array(items) => items,
        Value::Object(map) => map.into_iter().map(|(_, item)| item).collect(),
        other => {
            return Err(MagentoError::InvalidResponse(format!(
                "expected a list, found {}",
                kind(&other)
            )));
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let mut parsed = T::from_value(item);
            for warning in &mut parsed.warnings {
                prefix_path(warning, index);
            }
            parsed
        })
        .collect())
}

pub(crate) fn page<T: FromMagento>(
    body: &[u8],
    current_page: u32,
) -> Result<SearchPage<T>, MagentoError> {
    SearchPage::parse(body, current_page)
}

fn prefix_path(warning: &mut ParseWarning, index: usize) {
    warning.path = if warning.path == "(root)" {
        format!("[{index}]")
    } else {
        format!("[{index}].{}", warning.path)
    };
}

/// Where and how a body failed to parse, never what it says: serde's own messages quote
/// values ("invalid type: string \"…\""), and the body is the store's to write.
fn describe(error: &serde_json::Error, body: &[u8]) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "another shape",
        serde_json::error::Category::Eof => "cut short",
    };
    format!(
        "{kind} at line {}, column {}, of {} bytes",
        error.line(),
        error.column(),
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_do_not_parse_are_described_not_quoted() {
        let error = json(b"<html>internal status page: db=primary</html>").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected response from Magento: body is not JSON (not JSON at line 1, column 1, of 45 bytes)"
        );
        let error = typed::<bool>(br#""secret value""#, "a boolean").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
    use crate::models::StoreView;

    #[test]
    fn lists_keep_going_past_bad_entries() {
        let parsed =
            list::<StoreView>(br#"[{"id":1,"code":"default"},"junk",{"id":"x"}]"#).expect("a list");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].value.code.as_deref(), Some("default"));
        assert_eq!(parsed[1].warnings[0].path, "[1]");
        assert_eq!(parsed[2].warnings[0].path, "[2].id");
    }

    #[test]
    fn non_json_is_an_invalid_response() {
        assert!(matches!(
            json(b"<html>"),
            Err(MagentoError::InvalidResponse(_))
        ));
        assert!(matches!(
            list::<StoreView>(b"5"),
            Err(MagentoError::InvalidResponse(_))
        ));
        assert!(matches!(
            typed::<bool>(b"\"yes\"", "a boolean"),
            Err(MagentoError::InvalidResponse(_))
        ));
    }
}
