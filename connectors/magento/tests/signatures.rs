//! The client's signatures, checked by an independent implementation of
//! Magento's verification (tests/support/magento_verifier.rs).

#[path = "support/magento_verifier.rs"]
mod magento_verifier;
#[path = "support/test_server.rs"]
mod test_server;

use magento::client::Call;
use magento::models::MediaGalleryEntry;
use magento::scope::Route;
use magento::search::{ConditionType, Filter, SearchCriteria, SortDirection};
use magento::{
    AccessCredentials, ClientConfig, MagentoClient, Product, SignatureMethod, StoreScope,
};
use magento_verifier::{Secrets, SeenRequest, verify};
use proptest::prelude::*;
use reqwest::header::AUTHORIZATION;
use test_server::{Reply, TestServer};

const CONSUMER_KEY: &str = "ck4t8kd0yq2ex1sn5o7bmp3zj9rfw6hu";
// Real secrets are 32 alphanumerics; odd characters check the key encoding.
const CONSUMER_SECRET: &str = "cs&+ /é%20~secret";
const ACCESS_TOKEN: &str = "at9j2k3l4m5n6o7p8q9r0s1t2u3v4w5x";
const TOKEN_SECRET: &str = "ts=?#secret";

fn secrets() -> Secrets<'static> {
    Secrets {
        consumer_secret: CONSUMER_SECRET,
        token_secret: TOKEN_SECRET,
    }
}

fn client(base_url: &str, method: SignatureMethod, signed_scheme: Option<&str>) -> MagentoClient {
    let mut config = ClientConfig::new(
        base_url,
        AccessCredentials::new(CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, TOKEN_SECRET),
    );
    // The test servers are on loopback.
    config.egress = egress::Policy::allowing_loopback();
    config.signature_method = method;
    config.signed_scheme = signed_scheme.map(str::to_owned);
    config.requests_per_second = std::num::NonZeroU32::new(10_000).expect("non-zero");
    MagentoClient::new(config).expect("valid config")
}

/// Signs `call` as the client would send it and verifies it the way
/// Magento would on receipt.
fn verify_call(
    client: &MagentoClient,
    call: &Call,
    signed_scheme: Option<&str>,
) -> Result<(), TestCaseError> {
    let request = client
        .prepare(call)
        .map_err(|error| TestCaseError::fail(format!("prepare {call}: {error}")))?;
    let url = request.url();
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let verdict = verify(
        &SeenRequest {
            method: request.method().as_str(),
            scheme: signed_scheme.unwrap_or(url.scheme()),
            host: &host,
            target: &target,
            authorization,
        },
        &secrets(),
    );
    prop_assert!(
        verdict.valid,
        "{call} did not verify; verifier base string: {}",
        verdict.base_string
    );
    Ok(())
}

fn sku() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9 +#/%&=?\\[\\].~_;:@$,'\"-éü€😀]{1,24}")
        .expect("valid regex")
}

fn scope() -> impl Strategy<Value = StoreScope> {
    prop_oneof![
        Just(StoreScope::DefaultStoreView),
        Just(StoreScope::All),
        prop_oneof![Just("default"), Just("fr"), Just("de")]
            .prop_map(|code| StoreScope::parse(code).expect("valid code")),
        "[a-z][a-z0-9_]{0,12}".prop_map(|code| StoreScope::parse(&code).expect("valid code")),
    ]
}

fn base_url() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("https://shop.example/"),
        Just("https://Shop.Example:8443/magento/index.php/"),
        Just("http://127.0.0.1:8080/index.php/"),
        Just("http://shop.example/index.php"),
        Just("https://shop.example:443/store/"),
    ]
}

fn condition() -> impl Strategy<Value = ConditionType> {
    prop_oneof![
        Just(ConditionType::Eq),
        Just(ConditionType::Neq),
        Just(ConditionType::Gteq),
        Just(ConditionType::Like),
        Just(ConditionType::In),
        Just(ConditionType::Finset),
        Just(ConditionType::From),
        Just(ConditionType::Notnull),
    ]
}

/// Criteria with enough groups and filters for indexes of 10 and more.
fn criteria() -> impl Strategy<Value = SearchCriteria> {
    let filter = ("[a-z_]{1,12}", condition(), "\\PC{0,16}")
        .prop_map(|(field, condition, value)| Filter::new(field, condition, value));
    let groups = prop::collection::vec(prop::collection::vec(filter, 1..13), 0..14);
    let sorts = prop::collection::vec(
        (
            "[a-z_]{1,12}",
            prop_oneof![Just(SortDirection::Asc), Just(SortDirection::Desc)],
        ),
        0..3,
    );
    (
        groups,
        sorts,
        prop::option::of(1u32..500),
        prop::option::of(1u32..100_000),
    )
        .prop_map(|(groups, sorts, page_size, current_page)| {
            let mut criteria = groups
                .into_iter()
                .fold(SearchCriteria::new(), SearchCriteria::any_of);
            for (field, direction) in sorts {
                criteria = criteria.sort_by(field, direction);
            }
            criteria.page_size = page_size;
            criteria.current_page = current_page;
            criteria
        })
}

fn method() -> impl Strategy<Value = SignatureMethod> {
    prop_oneof![
        Just(SignatureMethod::HmacSha256),
        Just(SignatureMethod::HmacSha1)
    ]
}

fn signed_scheme() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("http"))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn product_and_media_calls_verify_for_any_sku(
        sku in sku(),
        scope in scope(),
        base in base_url(),
        method in method(),
        signed in signed_scheme(),
    ) {
        let client = client(base, method, signed);
        let entry = MediaGalleryEntry { label: Some(sku.clone()), ..MediaGalleryEntry::default() };
        let body = serde_json::json!({"product": {"sku": sku}, "saveOptions": true});
        let calls = [
            MagentoClient::product_lookup_call(&scope, &sku),
            MagentoClient::product_save_call(&scope, &sku, body),
            Call::get(scope.clone(), Route::new().lit("products").value(&sku).lit("media")),
            MagentoClient::media_update_call(&scope, &sku, 17, &entry).expect("call"),
            MagentoClient::media_create_call(&scope, &sku, &entry).expect("call"),
            MagentoClient::store_configs_call(&[sku.as_str(), "default"]),
            Call::get(scope.clone(), Route::new().lit("bulk").value(&sku).lit("status")),
        ];
        for call in &calls {
            verify_call(&client, call, signed)?;
        }
    }

    #[test]
    fn search_calls_verify_with_large_indexes(
        criteria in criteria(),
        scope in scope(),
        base in base_url(),
        method in method(),
        signed in signed_scheme(),
    ) {
        let client = client(base, method, signed);
        verify_call(&client, &MagentoClient::product_list_call(&scope, &criteria), signed)?;
        let categories = Call::get(scope.clone(), Route::new().lit("categories/list"))
            .with_query(criteria.to_query_pairs());
        verify_call(&client, &categories, signed)?;
    }
}

/// The same check on the wire: what the server receives (request target and
/// `Host` as sent by reqwest/hyper) verifies, and is exactly the URL we
/// signed.
#[tokio::test]
async fn requests_verify_as_received_by_a_server() {
    let server = TestServer::start(|_, received| {
        if received.path().ends_with("/media") {
            Reply::ok("[]")
        } else if received.path().ends_with("/products") {
            Reply::ok(r#"{"items":[],"total_count":0}"#)
        } else {
            Reply::ok("{}")
        }
    })
    .await;
    let base = format!("{}index.php/", server.base_url);
    let odd_skus = [
        "A/B C",
        "50% +1",
        "x#y?z=1&w",
        "ünï€😀",
        "[0]",
        "..",
        "plain-SKU.1",
    ];
    for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
        let client = client(&base, method, None);
        for scope in ["", "all", "default", "fr", "de"] {
            let scope = StoreScope::parse(scope).expect("valid scope");
            for sku in odd_skus {
                // Not-found lookups are fine here: only the signatures matter.
                let _lookup = client.get_product(&scope, sku).await;
                client
                    .list_media(&scope, sku)
                    .await
                    .expect("media list answered");
                let _saved = client.put_product(&scope, sku, &Product::default()).await;
            }
            let criteria = (0..12).fold(SearchCriteria::new(), |criteria, index| {
                criteria.filter(
                    format!("field_{index}"),
                    ConditionType::Eq,
                    format!("v {index}+&="),
                )
            });
            client
                .search_products_page(&scope, &criteria)
                .await
                .expect("search answered");
        }
    }
    let received = server.received();
    assert!(received.len() > 100, "only {} requests", received.len());
    for request in &received {
        let verdict = verify(
            &SeenRequest {
                method: &request.method,
                scheme: "http",
                host: &request.host,
                target: &request.target,
                authorization: &request.authorization,
            },
            &secrets(),
        );
        assert!(
            verdict.valid,
            "{} {} did not verify: {}",
            request.method, request.target, verdict.base_string
        );
        assert!(
            request.target.starts_with("/index.php/rest/"),
            "{}",
            request.target
        );
    }
}

/// A TLS-terminating proxy that does not forward the scheme makes Magento
/// sign `http`: with `signed_scheme` the client matches it, without it the
/// signature fails (so the option is needed, not cosmetic).
#[test]
fn signed_scheme_is_what_magento_verifies() {
    let call = Call::get(StoreScope::All, Route::new().lit("store/websites"));
    let with = client(
        "https://shop.example/",
        SignatureMethod::HmacSha256,
        Some("http"),
    );
    assert!(verify_call(&with, &call, Some("http")).is_ok());
    let without = client("https://shop.example/", SignatureMethod::HmacSha256, None);
    assert!(verify_call(&without, &call, Some("http")).is_err());
}
