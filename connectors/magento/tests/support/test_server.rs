//! A scripted HTTP server on 127.0.0.1:0 that records what it receives.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub host: String,
    pub authorization: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok(body: impl Into<String>) -> Self {
        Reply::json(200, body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Gets the 0-based number of the request and the request itself.
pub type Responder = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    responder: Responder,
    received: Arc<Mutex<Vec<Received>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

pub struct TestServer {
    pub base_url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(
        responder: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let shared = Shared {
            responder: Arc::new(responder),
            received: Arc::new(Mutex::new(Vec::new())),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server runs");
        });
        TestServer {
            base_url: format!("http://{address}/"),
            shared,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("log lock").clone()
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().expect("log lock").len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let now = Instant::now();
    let current = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(current, Ordering::SeqCst);
    // Decrements even when the client gives up and the handler is dropped.
    let _in_flight = InFlight(Arc::clone(&shared.in_flight));

    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        at: now,
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|target| target.as_str().to_owned())
            .unwrap_or_default(),
        host: header("host"),
        authorization: header("authorization"),
        body: to_bytes(body, 16 * 1024 * 1024)
            .await
            .map(|bytes| bytes.to_vec())
            .unwrap_or_default(),
    };
    let number = {
        let mut log = shared.received.lock().expect("log lock");
        log.push(received.clone());
        log.len() - 1
    };
    let reply = (shared.responder)(number, &received);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("valid header value"),
        );
    }
    response
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
