//! Magento's OAuth 1.0a verification, written from REFERENCE §1.5 and independent of the
//! client's signer: the simulator is what the client's signatures are checked against.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSha256,
    HmacSha1,
}

impl SignatureMethod {
    pub fn parse(name: &str) -> Option<SignatureMethod> {
        match name {
            "HMAC-SHA256" => Some(SignatureMethod::HmacSha256),
            "HMAC-SHA1" => Some(SignatureMethod::HmacSha1),
            _ => None,
        }
    }
}

/// Which base-string rules the store verifies with; they differ between Magento releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureForm {
    /// Up to 2.4.6: laminas-oauth with laminas-uri's `normalizePath`.
    #[default]
    Laminas,
    /// 2.4.7 and later: `lib/internal/Magento/Framework/Oauth/Helper/Uri/Http.php::normalizePath`
    /// decodes only escapes of unreserved characters, and
    /// `lib/internal/Magento/Framework/Oauth/Helper/Signature/Hmac.php` orders the parameters
    /// with `ksort`.
    Magento247,
}

impl SignatureForm {
    /// `laminas` or `2.4.7+`.
    pub fn parse(name: &str) -> Option<SignatureForm> {
        match name {
            "laminas" => Some(SignatureForm::Laminas),
            "2.4.7+" => Some(SignatureForm::Magento247),
            _ => None,
        }
    }
}

/// RFC 3986 unreserved characters stay; everything else is escaped (PHP's rawurlencode).
const RAW: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn rawurlencode(s: &str) -> String {
    utf8_percent_encode(s, RAW).to_string()
}

/// PHP's rawurldecode: `%XX` decoded, `+` left alone.
pub fn rawurldecode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The `OAuth …` parameters of an Authorization header; `None` when there is none.
pub fn header_params(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim().strip_prefix("OAuth ")?;
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        out.insert(rawurldecode(k.trim()), rawurldecode(v));
    }
    Some(out)
}

/// Magento's path normalisation (laminas-uri): escapes of unreserved characters and of
/// `: @ & = + $ , / ;` are decoded, other escapes uppercased.
pub fn normalize_path(path: &str) -> String {
    decode_path_escapes(path, |c| {
        c.is_ascii_alphanumeric() || "-._~:@&=+$,/;%".contains(c)
    })
}

/// 2.4.7's path normalisation: only escapes of unreserved characters are decoded, the other
/// escapes uppercased.
pub fn normalize_path_247(path: &str) -> String {
    decode_path_escapes(path, |c| c.is_ascii_alphanumeric() || "-._~".contains(c))
}

fn decode_path_escapes(path: &str, decoded: impl Fn(char) -> bool) -> String {
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = [bytes[i + 1], bytes[i + 2]];
            if let Some(v) = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                let c = v as char;
                // Laminas decodes `%25` too.
                if decoded(c) {
                    out.push(v);
                } else {
                    out.push(b'%');
                    out.extend(hex.iter().map(u8::to_ascii_uppercase));
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query pairs as Magento reads them: split on `&` then `=`; a piece that does not split into
/// exactly two parts is dropped; decoded with rawurldecode; last duplicate wins; `oauth_` names skipped.
pub fn query_params(query: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for piece in query.split('&') {
        let parts: Vec<&str> = piece.split('=').collect();
        if parts.len() != 2 {
            continue;
        }
        // Magento skips by the raw, undecoded name.
        if parts[0].contains("oauth_") {
            continue;
        }
        out.insert(rawurldecode(parts[0]), rawurldecode(parts[1]));
    }
    out
}

/// PHP's strnatcmp: digit runs compare by value, everything else byte by byte.
pub fn strnatcmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i])
                .unwrap_or("0")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j])
                .unwrap_or("0")
                .trim_start_matches('0');
            // PHP compares a run starting with 0 as a fraction: digit by digit, left aligned.
            let ord = if a[si] == b'0' || b[sj] == b'0' {
                a[si..i].cmp(&b[sj..j])
            } else {
                na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
            };
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// The signature base string for a request.
pub fn base_string(
    method: &str,
    scheme: &str,
    host: &str,
    path: &str,
    params: &BTreeMap<String, String>,
    form: SignatureForm,
) -> String {
    let host = host.to_ascii_lowercase();
    let host = match (scheme, host.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h.to_string(),
        _ => host,
    };
    let path = match form {
        SignatureForm::Laminas => normalize_path(path),
        SignatureForm::Magento247 => normalize_path_247(path),
    };
    let url = format!("{scheme}://{host}{path}");
    // A BTreeMap iterates in byte order of the decoded names: `ksort`.
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (rawurlencode(k), rawurlencode(v)))
        .collect();
    if form == SignatureForm::Laminas {
        pairs.sort_by(|a, b| strnatcmp(&a.0, &b.0).then_with(|| strnatcmp(&a.1, &b.1)));
    }
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        rawurlencode(&url),
        rawurlencode(&joined)
    )
}

pub fn sign(
    method: SignatureMethod,
    base: &str,
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let key = format!(
        "{}&{}",
        rawurlencode(consumer_secret),
        rawurlencode(token_secret)
    );
    match method {
        SignatureMethod::HmacSha256 => {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(base.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        SignatureMethod::HmacSha1 => {
            let mut mac =
                Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(base.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5849_section_1_2_example() {
        // RFC 5849 §1.2: GET http://photos.example.net/photos?file=vacation.jpg&size=original
        let mut params = BTreeMap::new();
        for (k, v) in [
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
            ("file", "vacation.jpg"),
            ("size", "original"),
        ] {
            params.insert(k.to_string(), v.to_string());
        }
        let base = base_string(
            "GET",
            "http",
            "photos.example.net",
            "/photos",
            &params,
            SignatureForm::Laminas,
        );
        assert_eq!(
            base,
            "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
        );
        assert_eq!(
            sign(
                SignatureMethod::HmacSha1,
                &base,
                "kd94hf93k423kf44",
                "pfkkdhi9sl3r4s00"
            ),
            "MdpQcU8iPSUjWoN/UDMsK2sui9I="
        );
    }

    #[test]
    fn natural_order_puts_2_before_10() {
        assert_eq!(strnatcmp("a%5B2%5D", "a%5B10%5D"), std::cmp::Ordering::Less);
        assert_eq!(strnatcmp("x2", "x2"), std::cmp::Ordering::Equal);
        assert_eq!(strnatcmp("a05", "a4"), std::cmp::Ordering::Less);
        assert_eq!(strnatcmp("a01", "a1"), std::cmp::Ordering::Less);
        assert_eq!(strnatcmp("b", "a10"), std::cmp::Ordering::Greater);
    }

    #[test]
    fn path_escapes_of_reserved_separators_are_decoded() {
        assert_eq!(
            normalize_path("/rest/V1/products/A%2FB"),
            "/rest/V1/products/A/B"
        );
        assert_eq!(normalize_path("/p/a%20b%2bc%7e"), "/p/a%20b+c~");
        assert_eq!(normalize_path("/p/a%252Fb"), "/p/a%2Fb");
        assert_eq!(normalize_path("/p/%e9%"), "/p/%E9%");
        assert_eq!(normalize_path("/p/%\u{e9}x"), "/p/%\u{e9}x");
        assert_eq!(normalize_path("/p/%c3%a9"), "/p/%C3%A9");
    }

    #[test]
    fn the_2_4_7_form_keeps_reserved_escapes_and_sorts_by_bytes() {
        assert_eq!(
            normalize_path_247("/rest/V1/products/A%2fB%3A%20%7e%c3%a9"),
            "/rest/V1/products/A%2FB%3A%20~%C3%A9"
        );
        let params: BTreeMap<String, String> = [("f[10]", "a"), ("f[2]", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let laminas = base_string("GET", "http", "h", "/p%2F", &params, SignatureForm::Laminas);
        assert!(
            laminas.ends_with("f%255B2%255D%3Db%26f%255B10%255D%3Da"),
            "{laminas}"
        );
        assert!(laminas.contains("%2Fp%2F&"), "{laminas}");
        let newer = base_string(
            "GET",
            "http",
            "h",
            "/p%2F",
            &params,
            SignatureForm::Magento247,
        );
        assert!(
            newer.ends_with("f%255B10%255D%3Da%26f%255B2%255D%3Db"),
            "{newer}"
        );
        assert!(newer.contains("%2Fp%252F&"), "{newer}");
    }

    #[test]
    fn malformed_query_pieces_are_dropped_and_plus_is_kept() {
        let q = query_params("searchCriteria&a=1=2&b=x+y&c=%20&oauth_token=z&b=last");
        assert_eq!(q.len(), 2);
        assert_eq!(q["b"], "last");
        assert_eq!(q["c"], " ");
        assert_eq!(query_params("s=a+b")["s"], "a+b");
    }
}
