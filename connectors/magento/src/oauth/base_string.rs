//! Signature base strings: Magento's rules, and RFC 5849's for reference.
//!
//! Magento verifies signatures with its own OAuth helper plus Laminas OAuth
//! and Laminas URI (REFERENCE §1.5), which differ from RFC 5849 in ways that
//! matter for real requests:
//!
//! * the path is normalised: escapes of unreserved characters and of
//!   `: @ & = + $ , / ; %` are decoded, the rest upper-cased, then anything
//!   not allowed in a path re-encoded (so `/products/A%2FB` is signed as
//!   `/products/A/B`);
//! * query pairs that do not split into exactly `name=value` are dropped,
//!   `+` is never a space, duplicate names keep the last value, names that
//!   look like `oauth_…` are ignored;
//! * names are sorted with PHP's `strnatcmp`, not byte order;
//! * OAuth parameters come only from the `Authorization` header, and JSON
//!   bodies are not signed.
//!
//! Magento 2.4.7 and later sign differently ([`SignatureForm::Magento247`]):
//! `lib/internal/Magento/Framework/Oauth/Helper/Uri/Http.php::normalizePath`
//! decodes only escapes of unreserved characters (`/products/A%2FB` is signed
//! as it is sent), and `lib/internal/Magento/Framework/Oauth/Helper/Signature/Hmac.php`
//! orders the parameters with `ksort` (byte order of the decoded names), not
//! `strnatcmp`.

use url::Url;

use super::natural_order::strnatcmp;
use super::percent::{is_unreserved, rawurldecode, rawurlencode};
use super::signature_method::BaseStringParts;

/// Which of Magento's two base-string rules a store verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SignatureForm {
    /// Laminas OAuth and Laminas URI (Magento up to 2.4.6).
    #[default]
    Laminas,
    /// Magento's own helpers (2.4.7 and later).
    Magento247,
}

impl SignatureForm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureForm::Laminas => "laminas",
            SignatureForm::Magento247 => "2.4.7+",
        }
    }

    pub fn parse(text: &str) -> Option<SignatureForm> {
        match text {
            "laminas" => Some(SignatureForm::Laminas),
            "2.4.7+" => Some(SignatureForm::Magento247),
            _ => None,
        }
    }

    /// The form of the other releases.
    pub fn other(self) -> SignatureForm {
        match self {
            SignatureForm::Laminas => SignatureForm::Magento247,
            SignatureForm::Magento247 => SignatureForm::Laminas,
        }
    }
}

/// The base string Magento computes for a request it receives at `url`
/// (exactly as sent), with `protocol_params` taken from the header.
///
/// `signed_scheme` is the scheme Magento believes the request used; behind a
/// TLS-terminating proxy that does not forward `X-Forwarded-Proto` this is
/// `http` even though the client spoke `https`.
pub(crate) fn magento_base_string_parts(
    method: &str,
    url: &Url,
    signed_scheme: Option<&str>,
    protocol_params: &[(&str, &str)],
    form: SignatureForm,
) -> BaseStringParts {
    let mut params = KeyedParams::default();
    for (name, value) in protocol_params {
        if *name == "oauth_signature" || *name == "realm" {
            continue;
        }
        params.set(name.as_bytes().to_vec(), value.as_bytes().to_vec());
    }
    if let Some(query) = url.query() {
        for piece in query.split('&') {
            let mut parts = piece.split('=');
            let (Some(name), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if looks_like_protocol_param(name) {
                continue;
            }
            params.set(rawurldecode(name), rawurldecode(value));
        }
    }

    let mut decoded = params.0;
    if form == SignatureForm::Magento247 {
        // `ksort` on the decoded names: PHP compares non-numeric strings byte by byte.
        decoded.sort_by(|(a, _), (b, _)| a.cmp(b));
    }
    let mut encoded: Vec<(String, String)> = decoded
        .into_iter()
        .map(|(name, value)| (rawurlencode(name), rawurlencode(value)))
        .collect();
    if form == SignatureForm::Laminas {
        // `uksort` is stable in PHP 8, and so is `sort_by`.
        encoded.sort_by(|(a, _), (b, _)| strnatcmp(a.as_bytes(), b.as_bytes()));
    }

    BaseStringParts {
        method: method.to_ascii_uppercase(),
        uri: magento_base_uri(url, signed_scheme, form),
        params: encoded,
    }
}

/// Only used to check our machinery against RFC 5849's published examples.
#[cfg(test)]
/// RFC 5849 §3.4.1: byte-order sort of every pair (duplicates kept), query
/// and form body decoded as `application/x-www-form-urlencoded`.
pub(crate) fn rfc5849_base_string_parts(
    method: &str,
    url: &Url,
    protocol_params: &[(&str, &str)],
    form_body: Option<&str>,
) -> BaseStringParts {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut add_form_encoded = |text: &str| {
        for piece in text.split('&').filter(|piece| !piece.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((form_decode(name), form_decode(value)));
        }
    };
    if let Some(query) = url.query() {
        add_form_encoded(query);
    }
    if let Some(body) = form_body {
        add_form_encoded(body);
    }
    for (name, value) in protocol_params {
        if *name != "oauth_signature" && *name != "realm" {
            pairs.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
    }
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(name, value)| (rawurlencode(name), rawurlencode(value)))
        .collect();
    encoded.sort();

    let scheme = url.scheme().to_ascii_lowercase();
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url
        .port()
        .filter(|port| Some(*port) != default_port(&scheme))
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    BaseStringParts {
        method: method.to_ascii_uppercase(),
        uri: format!("{scheme}://{host}{port}{}", url.path()),
        params: encoded,
    }
}

/// `scheme://host[:port]/normalised-path`, as Laminas' `normaliseBaseSignatureUrl`
/// builds it from the request Magento received. The port is the one in the
/// `Host` header (the `url` crate already hides the default port of the
/// scheme the client used), dropped when it is the signed scheme's default.
fn magento_base_uri(url: &Url, signed_scheme: Option<&str>, form: SignatureForm) -> String {
    let scheme = signed_scheme.unwrap_or(url.scheme()).to_ascii_lowercase();
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url
        .port()
        .filter(|port| Some(*port) != default_port(&scheme))
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let mut path = match form {
        SignatureForm::Laminas => laminas_normalize_path(url.path()),
        SignatureForm::Magento247 => magento247_normalize_path(url.path()),
    };
    if path.is_empty() {
        path.push('/');
    }
    format!("{scheme}://{host}{port}{path}")
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Magento's `_isProtocolParameter`: `preg_match('/oauth_[a-z_-]+/', $name)`
/// on the raw (still encoded) name.
fn looks_like_protocol_param(raw_name: &str) -> bool {
    raw_name.match_indices("oauth_").any(|(at, _)| {
        raw_name[at + "oauth_".len()..]
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_' || c == b'-')
    })
}

#[cfg(test)]
/// Form decoding for the RFC dialect: `+` is a space there.
fn form_decode(text: &str) -> Vec<u8> {
    rawurldecode(&text.replace('+', "%20"))
}

/// A PHP array keyed by name: assigning an existing key replaces its value in
/// place (the position stays where the key first appeared).
#[derive(Default)]
struct KeyedParams(Vec<(Vec<u8>, Vec<u8>)>);

impl KeyedParams {
    fn set(&mut self, name: Vec<u8>, value: Vec<u8>) {
        match self.0.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Laminas URI `normalizePath`: remove dot segments, decode over-encoded
/// characters, encode what is not allowed literally.
pub(crate) fn laminas_normalize_path(path: &str) -> String {
    let without_dots = remove_dot_segments(path);
    let decoded = decode_allowed_escapes(without_dots.as_bytes());
    encode_path(&decoded)
}

/// `Magento\Framework\Oauth\Helper\Uri\Http::normalizePath`: the same steps,
/// but only escapes of unreserved characters are decoded.
pub(crate) fn magento247_normalize_path(path: &str) -> String {
    let without_dots = remove_dot_segments(path);
    let decoded = decode_escapes(without_dots.as_bytes(), is_unreserved);
    encode_path(&decoded)
}

/// Characters Laminas leaves literal in a normalised path (besides the
/// unreserved ones).
fn path_literal(byte: u8) -> bool {
    is_unreserved(byte) || b":@&=+$,/;%".contains(&byte)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

/// `decodeUrlEncodedChars($path, '/[unreserved:@&=+$,\/;%]/')`: one pass over
/// `%XX`; the decoded byte replaces the escape when allowed, otherwise the
/// escape is kept with upper-case hex.
fn decode_allowed_escapes(path: &[u8]) -> Vec<u8> {
    decode_escapes(path, path_literal)
}

/// One pass over `%XX`: escapes of bytes `decodable` accepts are decoded, the
/// others kept with upper-case hex.
fn decode_escapes(path: &[u8], decodable: fn(u8) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                path.get(i + 1).copied().and_then(hex_value),
                path.get(i + 2).copied().and_then(hex_value),
            )
        {
            let byte = hi * 16 + lo;
            if decodable(byte) {
                out.push(byte);
            } else {
                out.push(b'%');
                out.extend(path[i + 1..i + 3].iter().map(u8::to_ascii_uppercase));
            }
            i += 3;
            continue;
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

/// `encodePath`: runs of characters outside `unreserved ) ( : @ & = + $ , / ; %`
/// are rawurlencoded, and a `%` not followed by two hex digits becomes `%25`.
fn encode_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, &byte) in path.iter().enumerate() {
        let keep = if byte == b'%' {
            matches!(
                (
                    path.get(i + 1).copied().and_then(hex_value),
                    path.get(i + 2).copied().and_then(hex_value)
                ),
                (Some(_), Some(_))
            )
        } else {
            path_literal(byte) || byte == b'(' || byte == b')'
        };
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 3986 §5.2.4 as Laminas implements it (including PHP's notion that the
/// string `"0"` is empty).
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    while !input.is_empty() && input != "0" {
        if input == ".." || input == "." {
            break;
        }
        if input == "/." {
            input = "/".to_owned();
        } else if input == "/.." {
            input = "/".to_owned();
            if let Some(slash) = output.rfind('/') {
                output.truncate(slash);
            }
        } else if let Some(rest) = input.strip_prefix("/../") {
            input = format!("/{rest}");
            if let Some(slash) = output.rfind('/') {
                output.truncate(slash);
            }
        } else if let Some(rest) = input.strip_prefix("/./") {
            input = format!("/{rest}");
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_owned();
        } else {
            let segment_end = input
                .get(1..)
                .and_then(|tail| tail.find('/'))
                .map_or(input.len(), |slash| slash + 1);
            output.push_str(&input[..segment_end]);
            input.drain(..segment_end);
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL parses")
    }

    #[test]
    fn encoded_slash_in_the_path_is_signed_decoded() {
        assert_eq!(
            laminas_normalize_path("/rest/default/V1/products/A%2FB%2bC%20D%c3%a9"),
            "/rest/default/V1/products/A/B+C%20D%C3%A9"
        );
    }

    #[test]
    fn encoded_percent_is_decoded_once_like_laminas() {
        // "%252F" → "%2F" (a literal percent followed by hex stays literal).
        assert_eq!(laminas_normalize_path("/p/A%252FB"), "/p/A%2FB");
        // "%25" at the end → "%" → re-encoded because no hex follows.
        assert_eq!(laminas_normalize_path("/p/50%25"), "/p/50%25");
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(remove_dot_segments("/a/b/../c/./d"), "/a/c/d");
        assert_eq!(remove_dot_segments("/a/%2E%2E/c"), "/a/%2E%2E/c");
    }

    #[test]
    fn malformed_query_pairs_are_dropped_and_plus_is_kept() {
        let request = url(
            "https://Shop.Example:443/index.php/rest/V1/products?searchCriteria&a=1=2&b=x+y&c=&b=z&oauth_token=evil&d=%5B",
        );
        let parts = magento_base_string_parts(
            "get",
            &request,
            None,
            &[("oauth_nonce", "n")],
            SignatureForm::Laminas,
        );
        assert_eq!(parts.method, "GET");
        assert_eq!(parts.uri, "https://shop.example/index.php/rest/V1/products");
        assert_eq!(
            parts.params,
            vec![
                ("b".to_owned(), "z".to_owned()),
                ("c".to_owned(), String::new()),
                ("d".to_owned(), "%5B".to_owned()),
                ("oauth_nonce".to_owned(), "n".to_owned()),
            ]
        );
    }

    #[test]
    fn natural_order_puts_index_2_before_10() {
        let request = url("http://h/rest/V1/products?f%5B10%5D=a&f%5B2%5D=b");
        let parts = magento_base_string_parts("GET", &request, None, &[], SignatureForm::Laminas);
        let names: Vec<&str> = parts.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["f%5B2%5D", "f%5B10%5D"]);
        // Byte order (2.4.7's ksort) puts them the other way round.
        let parts =
            magento_base_string_parts("GET", &request, None, &[], SignatureForm::Magento247);
        let names: Vec<&str> = parts.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["f%5B10%5D", "f%5B2%5D"]);
    }

    #[test]
    fn magento_2_4_7_decodes_only_unreserved_escapes() {
        assert_eq!(
            magento247_normalize_path("/rest/V1/products/A%2FB%2bC%20D%c3%a9%7e%41%3a%25"),
            "/rest/V1/products/A%2FB%2BC%20D%C3%A9~A%3A%25"
        );
        let request = url("http://h/rest/V1/products/A%2FB");
        let parts =
            magento_base_string_parts("GET", &request, None, &[], SignatureForm::Magento247);
        assert_eq!(parts.uri, "http://h/rest/V1/products/A%2FB");
        let parts = magento_base_string_parts("GET", &request, None, &[], SignatureForm::Laminas);
        assert_eq!(parts.uri, "http://h/rest/V1/products/A/B");
    }

    #[test]
    fn signed_scheme_overrides_and_drops_its_default_port() {
        let default_port = url("https://shop.example/rest/V1/store/websites");
        let parts = magento_base_string_parts(
            "GET",
            &default_port,
            Some("http"),
            &[],
            SignatureForm::Laminas,
        );
        assert_eq!(parts.uri, "http://shop.example/rest/V1/store/websites");
        let other_port = url("https://shop.example:8443/rest/V1/x");
        let parts = magento_base_string_parts(
            "GET",
            &other_port,
            Some("http"),
            &[],
            SignatureForm::Laminas,
        );
        assert_eq!(parts.uri, "http://shop.example:8443/rest/V1/x");
    }

    #[test]
    fn protocol_param_detection_follows_magentos_regex() {
        assert!(looks_like_protocol_param("oauth_token"));
        assert!(looks_like_protocol_param("xoauth_a"));
        assert!(!looks_like_protocol_param("oauth_"));
        assert!(!looks_like_protocol_param("oauth_A"));
        assert!(!looks_like_protocol_param("oauth%5Ftoken"));
    }
}
