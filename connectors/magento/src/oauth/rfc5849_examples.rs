//! The worked examples published in RFC 5849, through our base-string
//! builders and `oauth1-request`'s HMAC-SHA1.

use url::Url;

use super::base_string::{magento_base_string_parts, rfc5849_base_string_parts};
use super::signature_method::SignatureMethod;

fn url(text: &str) -> Url {
    Url::parse(text).expect("RFC example URL parses")
}

const CONSUMER_SECRET: &str = "kd94hf93k423kf44";

/// §1.2, temporary credentials request.
#[test]
fn section_1_2_initiate() {
    let parts = rfc5849_base_string_parts(
        "POST",
        &url("https://photos.example.net/initiate"),
        &[
            ("realm", "Photos"),
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131200"),
            ("oauth_nonce", "wIjqoS"),
            ("oauth_callback", "http://printer.example.com/ready"),
        ],
        None,
    );
    assert_eq!(
        parts.to_base_string(),
        "POST&https%3A%2F%2Fphotos.example.net%2Finitiate&oauth_callback%3Dhttp%253A%252F%252F\
         printer.example.com%252Fready%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3D\
         wIjqoS%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131200"
    );
    assert_eq!(
        SignatureMethod::HmacSha1.sign(CONSUMER_SECRET, None, &parts),
        "74KNZJeDHnMBp0EMJ9ZHt/XKycU="
    );
}

/// §1.2, token credentials request (uses the temporary token secret).
#[test]
fn section_1_2_token() {
    let parts = rfc5849_base_string_parts(
        "POST",
        &url("https://photos.example.net/token"),
        &[
            ("realm", "Photos"),
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "hh5s93j4hdidpola"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "walatlh"),
            ("oauth_verifier", "hfdp7dh39dks9884"),
        ],
        None,
    );
    assert_eq!(
        SignatureMethod::HmacSha1.sign(CONSUMER_SECRET, Some("hdhd0244k9j7ao03"), &parts),
        "gKgrFCywp7rO0OXSjdot/IHF7IU="
    );
}

/// §1.2, protected resource request.
#[test]
fn section_1_2_photos() {
    let photos = url("http://photos.example.net/photos?file=vacation.jpg&size=original");
    let protocol = [
        ("realm", "Photos"),
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131202"),
        ("oauth_nonce", "chapoH"),
    ];
    let parts = rfc5849_base_string_parts("GET", &photos, &protocol, None);
    assert_eq!(
        parts.to_base_string(),
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3D\
         dpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26\
         oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    );
    assert_eq!(
        SignatureMethod::HmacSha1.sign(CONSUMER_SECRET, Some("pfkkdhi9sl3r4s00"), &parts),
        "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    );
    // Nothing in this request is affected by Magento's deviations, so its
    // rules must produce the same base string.
    let magento = magento_base_string_parts(
        "GET",
        &photos,
        None,
        &protocol,
        super::base_string::SignatureForm::Laminas,
    );
    assert_eq!(magento.to_base_string(), parts.to_base_string());
}

/// §3.4.1.1. The RFC does not publish the secrets behind its
/// `bYT5CMsGcbgUdFHObYMEfcx6bsw=` signature, so the base string is the
/// checkable part; the signature is checked against an HMAC computed
/// independently (Python's `hmac`) with the secrets several libraries use
/// for this example.
#[test]
fn section_3_4_1_1_base_string() {
    let request = url("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b");
    let parts = rfc5849_base_string_parts(
        "POST",
        &request,
        &[
            ("realm", "Example"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ],
        Some("c2&a3=2+q"),
    );
    assert_eq!(
        parts.to_base_string(),
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D\
         %25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D\
         7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26\
         oauth_token%3Dkkk9d7dh3k39sjv7"
    );
    assert_eq!(
        SignatureMethod::HmacSha1.sign("j49sk3j29djd", Some("dh893hdasih9"), &parts),
        "r6/TJjbCOr97/+UU0NsvSne7s5g="
    );
}

/// The same request under Magento's rules: `c2` (no `=`) is dropped, `+`
/// stays a plus, and the body is not read at all unless form-encoded (the
/// client never sends form bodies).
#[test]
fn section_3_4_1_1_under_magentos_rules() {
    let request = url("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b&c2&a4=2+q");
    let parts = magento_base_string_parts(
        "POST",
        &request,
        None,
        &[("oauth_nonce", "7d8f3e4a")],
        super::base_string::SignatureForm::Laminas,
    );
    assert_eq!(
        parts.params,
        vec![
            ("a2".to_owned(), "r%20b".to_owned()),
            ("a3".to_owned(), "a".to_owned()),
            ("a4".to_owned(), "2%2Bq".to_owned()),
            ("b5".to_owned(), "%3D%253D".to_owned()),
            ("c%40".to_owned(), String::new()),
            ("oauth_nonce".to_owned(), "7d8f3e4a".to_owned()),
        ]
    );
}
