//! The client against servers on loopback (the only place tests send packets): refusals at
//! each of the three checks, no redirects, and bounded reads of an endless body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use egress::{AddressClass, BodyLimit, Cidr, Policy, ReadError, SETTING, SendError};

/// A server on `ip` counting the requests it answers with `answer`.
async fn serve(ip: &str, answer: Router) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = answer.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            next.run(request)
        },
    ));
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("a loopback port");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, hits)
}

fn hello() -> Router {
    Router::new().fallback(get(|| async { "hello" }))
}

fn allowing(ranges: &[&str]) -> Policy {
    Policy::allowing(ranges.iter().map(|r| r.parse::<Cidr>().unwrap()))
}

const SMALL: BodyLimit = BodyLimit::new("test answer", 1024 * 1024);

#[tokio::test]
async fn an_address_url_is_refused_before_connecting() {
    let (address, hits) = serve("127.0.0.1", hello()).await;
    let client = Policy::public_only().client().build().unwrap();
    let error = client
        .send(client.get(format!("http://{address}/")))
        .await
        .expect_err("loopback is refused by default");
    let refusal = error.refusal().expect("a policy refusal");
    assert_eq!(refusal.class, AddressClass::Loopback);
    assert!(error.to_string().contains(SETTING), "{error}");
    assert!(error.is_connect());
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_is_refused_when_it_resolves_to_refused_addresses() {
    let (address, hits) = serve("127.0.0.1", hello()).await;
    let client = Policy::public_only().client().build().unwrap();
    let error = client
        .send(client.get(format!("http://localhost:{}/", address.port())))
        .await
        .expect_err("localhost is loopback");
    let refusal = error.refusal().expect("a policy refusal");
    assert_eq!(refusal.host.as_deref(), Some("localhost"));
    assert!(
        error.to_string().contains("localhost resolves to"),
        "{error}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let client = Policy::allowing_loopback().client().build().unwrap();
    let answer = client
        .send(client.get(format!("http://localhost:{}/", address.port())))
        .await
        .expect("loopback allowed");
    assert_eq!(answer.text(SMALL).await.unwrap(), "hello");
}

#[tokio::test]
async fn a_name_sent_around_the_client_is_refused_by_its_resolver() {
    let (address, hits) = serve("127.0.0.1", hello()).await;
    let client = Policy::public_only().client().build().unwrap();
    // `RequestBuilder::send` skips `HttpClient::send`'s URL check, so the name reaches the
    // client's resolver, which refuses what it resolves to before connecting.
    let error = client
        .get(format!("http://localhost:{}/", address.port()))
        .send()
        .await
        .expect_err("refused when resolved");
    // Refused by the resolver (which knows the name), not on a connection.
    assert!(
        format!("{error:?}").contains(r#"host: Some("localhost")"#),
        "{error:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_request_sent_around_the_client_is_refused_on_its_connection() {
    let (address, hits) = serve("127.0.0.1", hello()).await;
    let client = Policy::public_only().client().build().unwrap();
    // `RequestBuilder::send` skips the URL check of `HttpClient::send`; the connector's
    // check of the peer address still refuses the connection before the request is sent.
    let error = client
        .get(format!("http://{address}/"))
        .send()
        .await
        .expect_err("refused on connect");
    let mut source = std::error::Error::source(&error);
    let mut refused = false;
    while let Some(cause) = source {
        refused |= cause.to_string().contains(SETTING);
        source = cause.source();
    }
    assert!(refused, "{error:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn ipv6_loopback_is_refused() {
    let client = Policy::public_only().client().build().unwrap();
    // Port 9 (discard) on ::1: refused before any connection, whether or not anything listens.
    let error = client
        .send(client.get("http://[::1]:9/"))
        .await
        .expect_err("::1 is loopback");
    assert_eq!(
        error.refusal().map(|r| r.class),
        Some(AddressClass::Loopback)
    );
    let error = client
        .send(client.get("http://[::ffff:127.0.0.1]:9/"))
        .await
        .expect_err("mapped loopback");
    assert_eq!(
        error.refusal().map(|r| r.class),
        Some(AddressClass::Loopback)
    );
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let (elsewhere, elsewhere_hits) = serve("127.0.0.2", hello()).await;
    let target = format!("http://{elsewhere}/secret");
    let redirecting = Router::new().fallback(get(move || {
        let target = target.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
    }));
    let (address, _) = serve("127.0.0.1", redirecting).await;
    for policy in [allowing(&["127.0.0.1/32"]), allowing(&["127.0.0.0/8"])] {
        let client = policy.client().build().unwrap();
        let answer = client
            .send(client.get(format!("http://{address}/")))
            .await
            .expect("the redirect itself is an answer");
        assert_eq!(answer.status(), StatusCode::FOUND);
    }
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
    // 127.0.0.2 itself is refused when only 127.0.0.1 is allowed.
    let client = allowing(&["127.0.0.1/32"]).client().build().unwrap();
    let error = client
        .send(client.get(format!("http://{elsewhere}/")))
        .await
        .expect_err("127.0.0.2 is not allowed");
    assert!(error.refusal().is_some(), "{error}");
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

fn endless() -> Router {
    Router::new().fallback(get(|| async {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
            .into_response()
    }))
}

/// Peak resident memory of this process so far, in bytes (`VmHWM`).
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn an_endless_body_is_cut_at_its_cap_and_memory_stays_flat() {
    let (address, _) = serve("127.0.0.1", endless()).await;
    let client = Policy::allowing_loopback().client().build().unwrap();
    let before = peak_rss();
    for _ in 0..20 {
        let answer = client
            .send(client.get(format!("http://{address}/")))
            .await
            .unwrap();
        let error = answer
            .bytes(BodyLimit::new("page", 4 * 1024 * 1024))
            .await
            .expect_err("an endless body passes any cap");
        assert_eq!(
            error,
            ReadError::TooLarge {
                what: "page",
                max_bytes: 4 * 1024 * 1024
            }
        );
    }
    let growth = peak_rss().saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "peak RSS grew by {growth} bytes reading 20 endless bodies with a 4 MiB cap"
    );
}

#[tokio::test]
async fn the_head_of_an_endless_body_is_read_and_the_rest_left() {
    let (address, _) = serve("127.0.0.1", endless()).await;
    let client = Policy::allowing_loopback().client().build().unwrap();
    let answer = client
        .send(client.get(format!("http://{address}/")))
        .await
        .unwrap();
    let (head, more) = answer.head(1024).await.unwrap();
    assert_eq!(head.len(), 1024);
    assert!(more);

    let (address, _) = serve("127.0.0.1", hello()).await;
    let answer = client
        .send(client.get(format!("http://{address}/")))
        .await
        .unwrap();
    assert_eq!(
        answer.head(1024).await.unwrap(),
        (bytes::Bytes::from("hello"), false)
    );
}

#[tokio::test]
async fn an_announced_length_past_the_cap_is_refused_before_reading() {
    let big = Router::new().fallback(get(|| async { vec![b'y'; 2 * 1024 * 1024] }));
    let (address, _) = serve("127.0.0.1", big).await;
    let client = Policy::allowing_loopback().client().build().unwrap();
    let answer = client
        .send(client.get(format!("http://{address}/")))
        .await
        .unwrap();
    assert!(matches!(
        answer.bytes(SMALL).await,
        Err(ReadError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn error_answers_are_described_not_repeated() {
    let secret = "internal-service-says-root-password-is-hunter2";
    let leaky = Router::new().fallback(get(move || async move {
        (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<html>{secret}</html>"),
        )
    }));
    let (address, _) = serve("127.0.0.1", leaky).await;
    let client = Policy::allowing_loopback().client().build().unwrap();
    let answer = client
        .send(client.get(format!("http://{address}/")))
        .await
        .unwrap()
        .error_answer()
        .await;
    assert_eq!(answer.to_string(), "HTTP 502, text/html, 59 bytes");
    assert!(!answer.summary().contains("hunter2"));
    // The body stays available to a caller that takes structured fields from it.
    assert!(String::from_utf8_lossy(answer.body()).contains(secret));

    let (endless, _) = serve("127.0.0.1", endless()).await;
    let answer = client
        .send(client.get(format!("http://{endless}/")))
        .await
        .unwrap()
        .error_answer()
        .await;
    assert!(answer.body.is_none());
    assert_eq!(answer.summary(), "application/json, more than 65536 bytes");
}

#[tokio::test]
async fn timeouts_are_named() {
    let slow = Router::new().fallback(get(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        "late"
    }));
    let (address, _) = serve("127.0.0.1", slow).await;
    let client = Policy::allowing_loopback()
        .client()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client
        .send(client.get(format!("http://{address}/")))
        .await
        .expect_err("too slow");
    assert_eq!(error, SendError::Timeout);
}
