//! Lenient reading of Magento JSON.
//!
//! Real stores send null names, numbers as strings, objects where lists were
//! expected (PHP arrays with holes serialise as objects) and plugins' odd
//! extras. One such value must not cost us the page, or even the product:
//! each known field is converted on its own; a value that does not fit is
//! left untouched in the model's `extra` map (so it still round-trips) and a
//! [`ParseWarning`] says where and why. Unknown fields land in `extra` too.

use serde::Serialize;
use serde_json::{Map, Value};

/// Something in the JSON did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseWarning {
    /// Where, e.g. `media_gallery_entries[2].id`.
    pub path: String,
    pub message: String,
}

/// A value read leniently, with what could not be typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    pub value: T,
    pub warnings: Vec<ParseWarning>,
}

impl<T> Parsed<T> {
    pub fn is_clean(&self) -> bool {
        self.warnings.is_empty()
    }

    pub fn into_value(self) -> T {
        self.value
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        Parsed {
            value: f(self.value),
            warnings: self.warnings,
        }
    }
}

/// A model that can be read from a JSON object with [`Fields`].
pub trait FromMagento: Default + Sized {
    /// Reads known fields; whatever is left becomes the model's `extra`.
    fn from_fields(fields: &mut Fields<'_>) -> Self;

    /// Whether an object can become this model at all (inside lists, an
    /// entry that cannot keeps the whole list unparsed).
    fn accepts(_object: &Map<String, Value>) -> bool {
        true
    }

    /// Reads a whole value; a non-object yields the default model plus a
    /// warning rather than an error.
    fn from_value(value: Value) -> Parsed<Self> {
        let mut warnings = Vec::new();
        let value = read_object::<Self>(value, "", &mut warnings).unwrap_or_default();
        Parsed { value, warnings }
    }
}

/// Reads `value` at `path` if it is an object.
pub(crate) fn read_object<T: FromMagento>(
    value: Value,
    path: &str,
    warnings: &mut Vec<ParseWarning>,
) -> Option<T> {
    match value {
        Value::Object(map) => {
            let mut fields = Fields {
                map,
                path: path.to_owned(),
                warnings,
            };
            Some(T::from_fields(&mut fields))
        }
        other => {
            warnings.push(ParseWarning {
                path: display_path(path),
                message: format!("expected an object, found {}", kind(&other)),
            });
            None
        }
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.to_owned()
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one JSON object being read.
pub struct Fields<'w> {
    map: Map<String, Value>,
    path: String,
    warnings: &'w mut Vec<ParseWarning>,
}

impl Fields<'_> {
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Removes `key`; a JSON `null` counts as absent.
    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// Puts a value that did not fit back (so it round-trips) and warns.
    fn reject(&mut self, key: &str, value: Value, expected: &str) {
        self.warnings.push(ParseWarning {
            path: self.child_path(key),
            message: format!("expected {expected}, found {}", kind(&value)),
        });
        self.map.insert(key.to_owned(), value);
    }

    /// Strings; numbers are accepted and printed (numeric SKUs, ids as text).
    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(text) => Some(text),
            Value::Number(number) => Some(number.to_string()),
            other => {
                self.reject(key, other, "a string");
                None
            }
        }
    }

    /// Integers, also from numeric strings (`"5"`) and integral floats.
    pub fn int(&mut self, key: &str) -> Option<i64> {
        let value = self.take(key)?;
        match int_of(&value) {
            IntOf::Int(number) => Some(number),
            IntOf::Blank => None,
            IntOf::No => {
                self.reject(key, value, "an integer");
                None
            }
        }
    }

    /// Decimals, also from numeric strings (`"19.90"`).
    pub fn float(&mut self, key: &str) -> Option<f64> {
        let value = self.take(key)?;
        match &value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) if text.trim().is_empty() => None,
            Value::String(text) => match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Some(number),
                _ => {
                    self.reject(key, value, "a number");
                    None
                }
            },
            _ => {
                self.reject(key, value, "a number");
                None
            }
        }
    }

    /// Booleans, also from `0`/`1` and their string forms.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let value = self.take(key)?;
        let parsed = match &value {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(text) => match text.trim() {
                "0" | "false" => Some(false),
                "1" | "true" => Some(true),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.reject(key, value, "a boolean");
        }
        parsed
    }

    /// Any non-null value, untouched.
    pub fn raw(&mut self, key: &str) -> Option<Value> {
        self.take(key)
    }

    /// A nested model.
    pub fn object<T: FromMagento>(&mut self, key: &str) -> Option<T> {
        let value = self.take(key)?;
        // PHP serialises an empty associative array as `[]`.
        if value.as_array().is_some_and(Vec::is_empty) {
            return None;
        }
        if !value.is_object() {
            self.reject(key, value, "an object");
            return None;
        }
        let path = self.child_path(key);
        read_object(value, &path, self.warnings)
    }

    /// A list of models. If any entry is not an object, the whole list is
    /// left untouched in `extra` (with a warning naming the entry): dropping
    /// entries would be worse than not typing them, since writing a
    /// shortened `media_gallery_entries` back deletes images. An object is
    /// read as a list of its values (PHP arrays with gaps in their keys are
    /// serialised that way).
    pub fn list<T: FromMagento>(&mut self, key: &str) -> Option<Vec<T>> {
        let original = self.take(key)?;
        let unusable = |entry: &Value| !entry.as_object().is_some_and(T::accepts);
        let bad_entry = match &original {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find(|(_, entry)| unusable(entry))
                .map(|(i, entry)| (i, kind(entry))),
            Value::Object(map) => map
                .values()
                .enumerate()
                .find(|(_, entry)| unusable(entry))
                .map(|(i, entry)| (i, kind(entry))),
            _ => {
                self.reject(key, original, "a list");
                return None;
            }
        };
        if let Some((index, found)) = bad_entry {
            let problem = if found == "an object" {
                "not a usable entry".to_owned()
            } else {
                format!("expected an object, found {found}")
            };
            self.keep_unparsed(key, index, &problem, original);
            return None;
        }
        let base = self.child_path(key);
        let items: Vec<Value> = match original {
            Value::Array(items) => items,
            Value::Object(map) => map.into_iter().map(|(_, value)| value).collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, entry) in items.into_iter().enumerate() {
            let path = format!("{base}[{index}]");
            out.extend(read_object(entry, &path, self.warnings));
        }
        Some(out)
    }

    /// A list of strings (numbers printed); kept whole in `extra` if any
    /// entry is something else.
    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.scalar_list(key, "a string", |value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    }

    /// A list of integers (numeric strings accepted); kept whole in `extra`
    /// if any entry is something else.
    pub fn int_list(&mut self, key: &str) -> Option<Vec<i64>> {
        self.scalar_list(key, "an integer", |value| match int_of(value) {
            IntOf::Int(number) => Some(number),
            _ => None,
        })
    }

    fn scalar_list<T>(
        &mut self,
        key: &str,
        expected: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        let original = self.take(key)?;
        let converted: Result<Vec<T>, (usize, &'static str)> = match &original {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, entry)| convert(entry).ok_or((i, kind(entry))))
                .collect(),
            Value::Object(map) => map
                .values()
                .enumerate()
                .map(|(i, entry)| convert(entry).ok_or((i, kind(entry))))
                .collect(),
            _ => {
                self.reject(key, original, "a list");
                return None;
            }
        };
        match converted {
            Ok(items) => Some(items),
            Err((index, found)) => {
                self.keep_unparsed(
                    key,
                    index,
                    &format!("expected {expected}, found {found}"),
                    original,
                );
                None
            }
        }
    }

    /// Leaves a whole list in `extra` because of its entry `index`.
    fn keep_unparsed(&mut self, key: &str, index: usize, problem: &str, original: Value) {
        self.warnings.push(ParseWarning {
            path: format!("{}[{index}]", self.child_path(key)),
            message: format!("{problem}; the list is kept unparsed"),
        });
        self.map.insert(key.to_owned(), original);
    }

    /// A list of arbitrary values, untouched.
    pub fn raw_list(&mut self, key: &str) -> Option<Vec<Value>> {
        match self.take(key)? {
            Value::Array(items) => Some(items),
            Value::Object(map) => Some(map.into_iter().map(|(_, value)| value).collect()),
            other => {
                self.reject(key, other, "a list");
                None
            }
        }
    }

    /// Everything not read: unknown fields and values that did not fit.
    pub fn rest(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.map)
    }
}

enum IntOf {
    Int(i64),
    Blank,
    No,
}

fn int_of(value: &Value) -> IntOf {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(int) => IntOf::Int(int),
            None => integral_float(number.as_f64()),
        },
        Value::String(text) if text.trim().is_empty() => IntOf::Blank,
        Value::String(text) => match text.trim().parse::<i64>() {
            Ok(int) => IntOf::Int(int),
            Err(_) => integral_float(text.trim().parse::<f64>().ok()),
        },
        _ => IntOf::No,
    }
}

/// `3.0` → 3; anything fractional or out of range is not an integer.
fn integral_float(number: Option<f64>) -> IntOf {
    match number {
        Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => {
            // In range and integral, so the conversion is exact.
            #[expect(
                clippy::cast_possible_truncation,
                reason = "checked integral and < 2^53"
            )]
            let int = float as i64;
            IntOf::Int(int)
        }
        _ => IntOf::No,
    }
}

/// `impl Deserialize` through the lenient reader (warnings are dropped; use
/// `from_value` to see them). Never fails on well-formed JSON.
macro_rules! lenient_deserialize {
    ($($model:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $model {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = serde_json::Value::deserialize(deserializer)?;
                Ok(<$model as $crate::models::FromMagento>::from_value(value).value)
            }
        }
    )+};
}
pub(crate) use lenient_deserialize;

/// Declares a model whose fields are all optional and read leniently:
/// `field: Type => reader` where `reader` is a [`Fields`] method.
macro_rules! magento_model {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty => $reader:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Unknown fields and values that did not fit their type.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl $crate::models::FromMagento for $name {
            fn from_fields(fields: &mut $crate::models::Fields<'_>) -> Self {
                $name {
                    $( $field: fields.$reader(stringify!($field)), )*
                    extra: fields.rest(),
                }
            }
        }

        $crate::models::lenient::lenient_deserialize!($name);
    };
}
pub(crate) use magento_model;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, PartialEq)]
    struct Sample {
        id: Option<i64>,
        name: Option<String>,
        price: Option<f64>,
        flag: Option<bool>,
        tags: Option<Vec<String>>,
        extra: Map<String, Value>,
    }

    impl FromMagento for Sample {
        fn from_fields(fields: &mut Fields<'_>) -> Self {
            Sample {
                id: fields.int("id"),
                name: fields.string("name"),
                price: fields.float("price"),
                flag: fields.bool("flag"),
                tags: fields.string_list("tags"),
                extra: fields.rest(),
            }
        }
    }

    #[test]
    fn coerces_common_magento_quirks_silently() {
        let parsed = Sample::from_value(json!({
            "id": "42", "name": 123, "price": "19.90", "flag": "1", "tags": {"0": "a", "2": 5}
        }));
        assert!(parsed.is_clean(), "{:?}", parsed.warnings);
        assert_eq!(parsed.value.id, Some(42));
        assert_eq!(parsed.value.name.as_deref(), Some("123"));
        assert_eq!(parsed.value.price, Some(19.9));
        assert_eq!(parsed.value.flag, Some(true));
        assert_eq!(
            parsed.value.tags,
            Some(vec!["a".to_owned(), "5".to_owned()])
        );
    }

    #[test]
    fn misfits_stay_in_extra_with_a_warning() {
        let parsed = Sample::from_value(json!({
            "id": 1.5, "name": ["x"], "tags": ["ok", {"no": 1}], "custom": true
        }));
        assert_eq!(parsed.value.id, None);
        assert_eq!(parsed.value.name, None);
        assert_eq!(parsed.value.tags, None);
        assert_eq!(
            parsed.value.extra.get("tags"),
            Some(&json!(["ok", {"no": 1}]))
        );
        assert_eq!(parsed.value.extra.get("id"), Some(&json!(1.5)));
        assert_eq!(parsed.value.extra.get("name"), Some(&json!(["x"])));
        assert_eq!(parsed.value.extra.get("custom"), Some(&json!(true)));
        let paths: Vec<&str> = parsed.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, vec!["id", "name", "tags[1]"]);
    }

    #[test]
    fn nulls_are_absent_and_non_objects_warn() {
        let parsed = Sample::from_value(json!({"name": null}));
        assert!(parsed.is_clean());
        assert_eq!(parsed.value, Sample::default());
        let parsed = Sample::from_value(json!("nope"));
        assert_eq!(parsed.warnings[0].path, "(root)");
    }
}
