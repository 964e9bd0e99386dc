//! When the product stream stops, against stores that behave like 2.4, like
//! 2.3 (repeating the last page), or send odd totals.

#[path = "support/test_server.rs"]
mod test_server;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use futures::StreamExt;
use magento::search::SearchCriteria;
use magento::{
    AccessCredentials, ClientConfig, MagentoClient, MagentoError, PageStreamOptions, ProductPage,
    StoreScope,
};
use test_server::{Received, Reply, TestServer};

fn client(base_url: &str) -> MagentoClient {
    let mut config = ClientConfig::new(base_url, AccessCredentials::new("ck", "cs", "at", "ats"));
    // The test servers are on loopback.
    config.egress = egress::Policy::allowing_loopback();
    config.requests_per_second = NonZeroU32::new(1000).expect("non-zero");
    config.max_concurrency = NonZeroUsize::new(8).expect("non-zero");
    MagentoClient::new(config).expect("valid config")
}

fn options(page_size: u32, concurrency: usize) -> PageStreamOptions {
    PageStreamOptions {
        page_size: NonZeroU32::new(page_size),
        concurrency: NonZeroUsize::new(concurrency).expect("non-zero"),
    }
}

/// The `searchCriteria[currentPage]` and `[pageSize]` of a request.
fn paging_of(request: &Received) -> (u64, u64) {
    let value = |name: &str| {
        request
            .query()
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("searchCriteria%5B{name}%5D=")))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (value("currentPage"), value("pageSize"))
}

/// A catalog of `actual` products; `claimed_total` is what the store says.
/// `past_end` decides what a page after the last one looks like.
#[derive(Clone, Copy)]
enum PastEnd {
    /// 2.4: `items: []`
    Empty,
    /// 2.3: the last page again
    RepeatLast,
}

fn catalog(
    actual: u64,
    claimed_total: Option<u64>,
    past_end: PastEnd,
) -> impl Fn(usize, &Received) -> Reply {
    move |_, request| {
        let (page, size) = paging_of(request);
        let last_page = actual.div_ceil(size).max(1);
        let page = match past_end {
            PastEnd::RepeatLast => page.min(last_page),
            PastEnd::Empty => page,
        };
        let first = (page - 1) * size + 1;
        let items: Vec<String> = (first..=(page * size).min(actual))
            .map(|id| format!(r#"{{"id":{id},"sku":"SKU-{id}","name":"Product {id}"}}"#))
            .collect();
        let total =
            claimed_total.map_or_else(String::new, |total| format!(r#","total_count":{total}"#));
        Reply::ok(format!(
            r#"{{"items":[{}],"search_criteria":{{}}{total}}}"#,
            items.join(",")
        ))
    }
}

async fn collect(
    client: &MagentoClient,
    page_size: u32,
    concurrency: usize,
) -> Vec<Result<ProductPage, MagentoError>> {
    client
        .search_products_with(
            &StoreScope::All,
            SearchCriteria::new(),
            options(page_size, concurrency),
        )
        .collect()
        .await
}

fn ids(pages: &[Result<ProductPage, MagentoError>]) -> Vec<i64> {
    pages
        .iter()
        .flat_map(|page| page.as_ref().expect("page").items.iter())
        .filter_map(|item| item.value.id)
        .collect()
}

#[tokio::test]
async fn stops_when_the_total_is_reached() {
    let server = TestServer::start(catalog(250, Some(250), PastEnd::Empty)).await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(ids(&pages), (1..=250).collect::<Vec<_>>());
    assert_eq!(server.count(), 3, "no request past the last page");
    // Every request asks for a stable order.
    assert!(
        server
            .received()
            .iter()
            .all(|request| request.query().contains("=entity_id&"))
    );
}

#[tokio::test]
async fn exact_multiple_of_the_page_size_needs_no_extra_request() {
    let server = TestServer::start(catalog(200, Some(200), PastEnd::Empty)).await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(ids(&pages).len(), 200);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn stops_when_a_2_3_store_repeats_the_last_page() {
    // The total claims more than exists; the store clamps to the last page.
    let server = TestServer::start(catalog(250, Some(1000), PastEnd::RepeatLast)).await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(
        ids(&pages),
        (1..=250).collect::<Vec<_>>(),
        "the repeat is not yielded"
    );
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn stops_on_an_empty_page() {
    let server = TestServer::start(catalog(250, Some(1000), PastEnd::Empty)).await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(ids(&pages).len(), 250);
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn stops_on_a_short_page_without_a_total() {
    let server = TestServer::start(catalog(250, None, PastEnd::RepeatLast)).await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(ids(&pages).len(), 250);
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn an_empty_catalog_is_an_empty_stream() {
    let server = TestServer::start(catalog(0, Some(0), PastEnd::Empty)).await;
    assert!(collect(&client(&server.base_url), 100, 4).await.is_empty());
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn concurrent_pages_arrive_in_order() {
    let server = TestServer::start(move |number, request| {
        // Later pages answer faster, so completion order differs from page order.
        let delay = std::time::Duration::from_millis(60u64.saturating_sub(number as u64 * 5));
        catalog(1000, Some(1000), PastEnd::Empty)(number, request).after(delay)
    })
    .await;
    let pages = collect(&client(&server.base_url), 100, 4).await;
    assert_eq!(ids(&pages), (1..=1000).collect::<Vec<_>>());
    assert_eq!(server.count(), 10);
    assert!(server.max_in_flight() > 1, "pages were fetched one by one");
    assert!(server.max_in_flight() <= 4);
}

#[tokio::test]
async fn concurrent_paging_still_stops_at_a_repeat() {
    let server = TestServer::start(catalog(250, Some(1000), PastEnd::RepeatLast)).await;
    let pages = collect(&client(&server.base_url), 100, 4).await;
    assert_eq!(ids(&pages), (1..=250).collect::<Vec<_>>());
    // The in-flight window may have fetched a few pages beyond; never all ten.
    assert!(server.count() <= 7, "{} requests", server.count());
}

#[tokio::test]
async fn an_error_ends_the_stream_after_being_yielded() {
    let inner = Arc::new(catalog(500, Some(500), PastEnd::Empty));
    let server = TestServer::start(move |number, request| {
        if paging_of(request).0 == 2 {
            Reply::json(
                401,
                r#"{"message":"The signature is invalid. Verify and try again."}"#,
            )
        } else {
            inner(number, request)
        }
    })
    .await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    assert_eq!(pages.len(), 2);
    assert!(pages[0].is_ok());
    assert!(
        pages[1]
            .as_ref()
            .expect_err("page 2 fails")
            .is_invalid_signature()
    );
}

#[tokio::test]
async fn odd_products_cost_warnings_not_pages() {
    let server = TestServer::start(|_, _| {
        Reply::ok(
            r#"{"items":[{"id":1,"sku":"A","name":null},{"id":"2","sku":"B","name":["x"],"price":"12,50"},7,
               {"id":3,"sku":"C","custom_attributes":[{"attribute_code":"description","value":{"html":"<p/>"}}]}],
               "total_count":"4"}"#,
        )
    })
    .await;
    let pages = collect(&client(&server.base_url), 100, 1).await;
    let page = pages[0].as_ref().expect("page parses");
    assert_eq!(page.items.len(), 4);
    assert!(page.items[0].is_clean());
    assert_eq!(page.items[1].value.sku.as_deref(), Some("B"));
    let paths: Vec<&str> = page.items[1]
        .warnings
        .iter()
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(paths, vec!["items[1].name", "items[1].price"]);
    assert_eq!(page.items[2].warnings[0].path, "items[2]");
    assert!(
        page.items[3].is_clean(),
        "object attribute values are kept as-is"
    );
}

#[tokio::test]
async fn raw_pages_follow_the_same_stops() {
    let server = TestServer::start(catalog(250, Some(1000), PastEnd::RepeatLast)).await;
    let pages: Vec<_> = client(&server.base_url)
        .search_products_raw(&StoreScope::All, SearchCriteria::new(), options(100, 1))
        .collect()
        .await;
    let counts: Vec<usize> = pages
        .iter()
        .map(|page| page.as_ref().expect("raw page").item_count)
        .collect();
    assert_eq!(counts, vec![100, 100, 50]);
    let first = pages[0].as_ref().expect("raw page");
    assert_eq!(first.total_count, Some(1000));
    assert!(first.body.starts_with(b"{\"items\":[{\"id\":1,"));
}

#[tokio::test]
async fn invalid_criteria_fail_before_any_request() {
    let server = TestServer::start(catalog(10, Some(10), PastEnd::Empty)).await;
    let criteria = SearchCriteria::new().sort_by("name DESC; --", magento::SortDirection::Asc);
    let results: Vec<_> = client(&server.base_url)
        .search_products(&StoreScope::All, criteria)
        .collect()
        .await;
    assert!(matches!(
        results.as_slice(),
        [Err(MagentoError::InvalidRequest(_))]
    ));
    assert_eq!(server.count(), 0);
}
