//! An independent implementation of how Magento verifies an OAuth 1.0a
//! signature, written from REFERENCE §1.5 (and, for the path, Laminas URI's
//! `normalizePath`, which the reference summarises) without using any of the
//! crate's signing code. Tests run the client's requests through it.
//!
//! Steps, as Magento does them:
//! 1. protocol parameters come from the `Authorization: OAuth …` header only,
//!    split on `,`, values rawurldecoded, `realm`/`oauth_signature` left out;
//! 2. query pairs split on `&` then `=`; pieces that are not exactly
//!    `name=value` are dropped; names containing `oauth_` are skipped;
//!    names/values rawurldecoded (`+` stays `+`); the last duplicate wins;
//! 3. each name and value rawurlencoded, sorted by name with PHP's
//!    natural-order `strnatcmp`, joined as `k=v&k=v`;
//! 4. the URL is `scheme://host[:port]/path` with the path's escapes of
//!    unreserved characters and of `: @ & = + $ , / ; %` decoded and the
//!    others upper-cased; the query is dropped;
//! 5. `base64(HMAC(enc(consumer_secret)&enc(token_secret),
//!    METHOD&enc(url)&enc(params)))`.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};

pub struct Secrets<'a> {
    pub consumer_secret: &'a str,
    pub token_secret: &'a str,
}

/// What a server sees of a request.
pub struct SeenRequest<'a> {
    pub method: &'a str,
    /// The scheme Magento believes the request used.
    pub scheme: &'a str,
    /// The `Host` header (`host` or `host:port`).
    pub host: &'a str,
    /// The request target: path and optional `?query`, as received.
    pub target: &'a str,
    pub authorization: &'a str,
}

#[derive(Debug)]
pub struct Verdict {
    pub valid: bool,
    pub base_string: String,
}

pub fn verify(request: &SeenRequest<'_>, secrets: &Secrets<'_>) -> Verdict {
    let protocol = header_params(request.authorization);
    let claimed = protocol
        .iter()
        .find(|(name, _)| name == "oauth_signature")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let method_name = protocol
        .iter()
        .find(|(name, _)| name == "oauth_signature_method")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();

    let (path, query) = match request.target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request.target, None),
    };

    // Parameters: a name → value table where later assignments win.
    let mut table: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut assign = |name: Vec<u8>, value: Vec<u8>| {
        if let Some(slot) = table.iter_mut().find(|(existing, _)| *existing == name) {
            slot.1 = value;
        } else {
            table.push((name, value));
        }
    };
    for (name, value) in &protocol {
        if name != "oauth_signature" && name != "realm" {
            assign(name.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
    }
    if let Some(query) = query {
        for piece in query.split('&') {
            let parts: Vec<&str> = piece.split('=').collect();
            if parts.len() != 2 || parts[0].contains("oauth_") {
                continue;
            }
            assign(percent_decode(parts[0]), percent_decode(parts[1]));
        }
    }
    let mut encoded: Vec<(String, String)> = table
        .iter()
        .map(|(name, value)| (rfc3986(name), rfc3986(value)))
        .collect();
    encoded.sort_by(|a, b| natural(&a.0, &b.0));
    let joined = encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");

    let url = format!(
        "{}://{}{}",
        request.scheme.to_lowercase(),
        host_for(request.scheme, request.host),
        normalise_path(path)
    );
    let base_string = format!(
        "{}&{}&{}",
        request.method.to_uppercase(),
        rfc3986(url.as_bytes()),
        rfc3986(joined.as_bytes())
    );
    let key = format!(
        "{}&{}",
        rfc3986(secrets.consumer_secret.as_bytes()),
        rfc3986(secrets.token_secret.as_bytes())
    );
    let expected = match method_name.as_str() {
        "HMAC-SHA256" => {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
            mac.update(base_string.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        "HMAC-SHA1" => {
            let mut mac =
                Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
            mac.update(base_string.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        _ => String::from("(unsupported method)"),
    };
    Verdict {
        valid: !claimed.is_empty() && claimed == expected,
        base_string,
    }
}

fn header_params(header: &str) -> Vec<(String, String)> {
    let Some(rest) = header.strip_prefix("OAuth ") else {
        return Vec::new();
    };
    rest.split(',')
        .filter_map(|piece| {
            let (name, value) = piece.trim().split_once('=')?;
            if !name.starts_with("oauth_") {
                return None;
            }
            let value = value.trim_matches('"');
            Some((
                name.to_owned(),
                String::from_utf8_lossy(&percent_decode(value)).into_owned(),
            ))
        })
        .collect()
}

/// The host as Magento rebuilds it: lower-case, default ports dropped.
fn host_for(scheme: &str, host_header: &str) -> String {
    let host = host_header.to_lowercase();
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    host.strip_suffix(default)
        .map(str::to_owned)
        .unwrap_or(host)
}

/// Decode escapes of unreserved characters and `: @ & = + $ , / ; %`,
/// upper-case the others, then escape what may not stand literally.
fn normalise_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && is_hex(bytes[i + 1]) && is_hex(bytes[i + 2]) {
            let byte = u8::from_str_radix(&path[i + 1..i + 3], 16).expect("two hex digits");
            if literal_in_path(byte) {
                decoded.push(byte);
            } else {
                decoded.extend_from_slice(path[i..i + 3].to_uppercase().as_bytes());
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let mut out = String::new();
    for (index, &byte) in decoded.iter().enumerate() {
        let escape_percent = byte == b'%'
            && !(decoded.get(index + 1).is_some_and(|b| is_hex(*b))
                && decoded.get(index + 2).is_some_and(|b| is_hex(*b)));
        if escape_percent || !(literal_in_path(byte) || byte == b'(' || byte == b')') {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}

fn is_hex(byte: u8) -> bool {
    byte.is_ascii_hexdigit()
}

fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)
}

fn literal_in_path(byte: u8) -> bool {
    unreserved(byte) || b":@&=+$,/;%".contains(&byte)
}

/// PHP `rawurldecode`.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && is_hex(bytes[i + 1]) && is_hex(bytes[i + 2]) {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// PHP `rawurlencode` (RFC 3986).
fn rfc3986(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| {
            if unreserved(byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// PHP `strnatcmp` for rawurlencoded names (no whitespace, never a leading
/// digit): the names are cut into digit runs and single other characters;
/// two digit runs compare as numbers (left-aligned when either has a
/// leading zero), anything else byte by byte, and a name that ends first
/// sorts first.
fn natural(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(tb.iter()) {
        let order = match (x, y) {
            (Token::Digits(x), Token::Digits(y)) => {
                if x.starts_with('0') || y.starts_with('0') {
                    x.as_bytes().cmp(y.as_bytes())
                } else {
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
            }
            (Token::Digits(x), Token::Other(c)) => x.as_bytes()[0].cmp(c),
            (Token::Other(c), Token::Digits(y)) => c.cmp(&y.as_bytes()[0]),
            (Token::Other(c), Token::Other(d)) => c.cmp(d),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ta.len().cmp(&tb.len())
}

enum Token<'a> {
    Digits(&'a str),
    Other(u8),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Digits(&text[start..i]));
        } else {
            out.push(Token::Other(bytes[i]));
            i += 1;
        }
    }
    out
}

#[test]
fn verifier_natural_order_matches_php_examples() {
    assert_eq!(natural("a%5B2%5D", "a%5B10%5D"), Ordering::Less);
    assert_eq!(natural("img12", "img10"), Ordering::Greater);
    assert_eq!(natural("x01", "x1"), Ordering::Less);
    assert_eq!(natural("abc", "abcd"), Ordering::Less);
}

#[test]
fn verifier_path_rules_match_the_reference() {
    assert_eq!(normalise_path("/V1/products/A%2FB"), "/V1/products/A/B");
    assert_eq!(normalise_path("/p/%c3%a9%20x%2b"), "/p/%C3%A9%20x+");
}
