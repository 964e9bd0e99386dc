//! The HTTP providers against the loopback fake: request shapes, privacy, retries, repair,
//! spend limits, rate limits and batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai::fake::{FakeConfig, FakeServer, Scripted};
use ai::{
    AiError, BatchPoll, Image, LimitConfig, OpenAiApi, Prompts, Provider, ProviderConfig,
    ProviderKind, RequestBuilder, RetryPolicy, Task,
};
use secrecy::SecretString;

fn config(kind: ProviderKind, fake: &FakeServer) -> ProviderConfig {
    let mut c = ProviderConfig::new(kind);
    c.base_url = Some(fake.base_url());
    // The fake is on loopback.
    c.egress = egress::Policy::allowing_loopback();
    c.api_key = Some(SecretString::from("sk-test-secret"));
    c.model = Some("model-x".into());
    c.limits = LimitConfig {
        rpm: 6000,
        max_concurrency: 4,
        ..LimitConfig::default()
    };
    c.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
    };
    c
}

fn provider(c: ProviderConfig) -> Arc<dyn Provider> {
    ai::build("test", c, Arc::new(Prompts::builtin())).expect("provider builds")
}

fn meta_request() -> ai::Request {
    RequestBuilder::text("fr", &[Task::MetaTitle, Task::MetaDescription])
        .name("Tasse rouge")
        .description("<p>Une tasse en grès.</p>")
        .descriptive_attribute("material", "grès")
        .descriptive_attribute("cost", "2.10")
        .build()
}

fn picture() -> Image {
    Image {
        bytes: vec![0x89, b'P', b'N', b'G', 1, 2, 3],
        mime: "image/png".into(),
        position: 1,
    }
}

#[tokio::test]
async fn openai_chat_sends_store_false_a_schema_and_the_key_as_bearer() {
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Openai, &fake));
    let out = p.generate(&meta_request()).await.unwrap();
    assert_eq!(out.fields["meta_title"], "Sturdy product, made to last");
    assert!(out.usage.input_tokens > 0 && out.usage.output_tokens == 20);
    assert!(
        out.prompt_version.contains("meta_title.v1"),
        "{}",
        out.prompt_version
    );
    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(body["store"], false);
    assert_eq!(body["model"], "model-x");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(sent[0].headers["authorization"], "Bearer sk-test-secret");
    assert!(sent[0].raw.contains("Tasse rouge") && sent[0].raw.contains("French"));
    assert!(!sent[0].raw.contains("2.10"), "{}", sent[0].raw);
    // The key never shows in the provider's Debug output.
    assert!(!format!("{p:?}").contains("sk-test-secret"));
}

#[tokio::test]
async fn openai_responses_sends_pictures_as_input_images_with_store_false() {
    let fake = FakeServer::start().await;
    let mut c = config(ProviderKind::Openai, &fake);
    c.api = OpenAiApi::Responses;
    let p = provider(c);
    let request = RequestBuilder::alt_text("de")
        .name("Rote Tasse")
        .description("never sent for alt text")
        .image(picture())
        .build();
    let out = p.generate(&request).await.unwrap();
    assert_eq!(out.fields["alt_text"], "The product seen from the front");
    let sent = &fake.generation_requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.body["store"], false);
    let content = &sent.body["input"][0]["content"];
    assert_eq!(content[1]["type"], "input_image");
    assert!(
        content[1]["image_url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert!(!sent.raw.contains("never sent"));
}

#[tokio::test]
async fn anthropic_uses_its_headers_max_tokens_and_a_forced_tool() {
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Anthropic, &fake));
    let request = RequestBuilder::alt_text("en")
        .name("Red mug")
        .image(picture())
        .build();
    let out = p.generate(&request).await.unwrap();
    assert_eq!(out.fields["alt_text"], "The product seen from the front");
    let sent = &fake.generation_requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], "sk-test-secret");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(sent.body["max_tokens"], 1024);
    assert_eq!(sent.body["tool_choice"]["type"], "tool");
    assert_eq!(sent.body["messages"][0]["content"][0]["type"], "image");
}

#[tokio::test]
async fn compatible_endpoints_get_plain_chat_completions_without_a_key() {
    let fake = FakeServer::start().await;
    let mut c = config(ProviderKind::OpenaiCompatible, &fake);
    c.api_key = None;
    let p = provider(c);
    p.generate(&meta_request()).await.unwrap();
    let sent = &fake.generation_requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert!(sent.body.get("store").is_none());
    assert_eq!(sent.body["max_tokens"], 1024);
    assert!(!sent.headers.contains_key("authorization"));
}

#[tokio::test]
async fn invalid_json_is_repaired_once_then_fails_cleanly() {
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Openai, &fake));
    fake.script([Scripted::InvalidJson]);
    let out = p.generate(&meta_request()).await.unwrap();
    assert_eq!(out.fields.len(), 2);
    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 2);
    let messages = sent[1].body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        4,
        "the repair shows the bad answer and asks again"
    );
    assert!(
        messages[3]["content"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(out.usage.output_tokens, 40, "both attempts count");

    fake.script([Scripted::InvalidJson, Scripted::InvalidJson]);
    let err = p.generate(&meta_request()).await.unwrap_err();
    assert!(matches!(err, AiError::InvalidOutput { .. }), "{err:?}");
    assert_eq!(err.usage().output_tokens, 40);
    assert_eq!(fake.generation_requests().len(), 4);

    // Anthropic: a text answer instead of the tool call is repaired the same way.
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Anthropic, &fake));
    fake.script([Scripted::InvalidJson]);
    assert!(p.generate(&meta_request()).await.is_ok());
    assert_eq!(fake.generation_requests().len(), 2);
}

#[tokio::test]
async fn spend_limits_are_terminal_and_never_retried() {
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let fake = FakeServer::start().await;
        let p = provider(config(kind, &fake));
        fake.script([Scripted::SpendLimit]);
        let err = p.generate(&meta_request()).await.unwrap_err();
        assert!(matches!(err, AiError::SpendLimit(_)), "{err:?}");
        assert!(err.is_terminal());
        assert_eq!(fake.generation_requests().len(), 1, "{kind:?}");
    }
}

#[tokio::test]
async fn server_errors_retry_and_other_4xx_fail_with_the_providers_message() {
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Openai, &fake));
    fake.script([Scripted::ServerError, Scripted::ServerError]);
    assert!(p.generate(&meta_request()).await.is_ok());
    assert_eq!(fake.generation_requests().len(), 3);

    fake.script([Scripted::BadRequest("model-x does not exist".into())]);
    let err = p.generate(&meta_request()).await.unwrap_err();
    assert_eq!(
        err,
        AiError::Refused {
            status: 400,
            message: "model-x does not exist".into()
        }
    );
    assert_eq!(fake.generation_requests().len(), 4);

    fake.script(std::iter::repeat_n(Scripted::ServerError, 4));
    let err = p.generate(&meta_request()).await.unwrap_err();
    assert!(matches!(err, AiError::Unavailable(_)), "{err:?}");
    assert!(!err.is_terminal());
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let fake = FakeServer::start().await;
    let p = provider(config(ProviderKind::Openai, &fake));
    fake.script([Scripted::RateLimited(vec![(
        "retry-after-ms".into(),
        "300".into(),
    )])]);
    assert!(p.generate(&meta_request()).await.is_ok());
    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].at.duration_since(sent[0].at) >= Duration::from_millis(300));
}

/// A provider-enforced limit of 20 requests per (scaled) 2-second window, 429 storms with
/// Go-duration reset headers: the limiter never exceeds the window and the fake never has to
/// refuse a request for going over.
#[tokio::test]
async fn requests_stay_inside_every_window_through_429_storms() {
    let window = Duration::from_secs(2);
    let fake = FakeServer::start_with(FakeConfig {
        rpm_limit: Some((20, window)),
        ..FakeConfig::default()
    })
    .await;
    let mut c = config(ProviderKind::Openai, &fake);
    c.limits = LimitConfig {
        rpm: 20,
        tpm: None,
        max_concurrency: 4,
        window,
        max_retry_after: Duration::from_secs(1),
    };
    c.retry.max_attempts = 10;
    let p = provider(c);
    let storm = || {
        Scripted::RateLimited(vec![
            ("retry-after-ms".into(), "50".into()),
            ("x-ratelimit-remaining-requests".into(), "0".into()),
            ("x-ratelimit-reset-requests".into(), "20ms".into()),
        ])
    };
    fake.script([storm(), storm(), storm()]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let p = p.clone();
        tasks.push(tokio::spawn(
            async move { p.generate(&meta_request()).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.generation_requests().len(), 33);
    assert!(
        fake.max_in_window(window) <= 20,
        "{}",
        fake.max_in_window(window)
    );
    assert_eq!(fake.over_limit(), 0);
    // 33 requests at 20 per 2 s take more than two windows.
    assert!(started.elapsed() > Duration::from_secs(3));
}

#[tokio::test]
async fn batches_submit_poll_and_map_results_back_by_custom_id() {
    for (kind, api) in [
        (ProviderKind::Openai, OpenAiApi::Chat),
        (ProviderKind::Openai, OpenAiApi::Responses),
        (ProviderKind::Anthropic, OpenAiApi::Chat),
    ] {
        let fake = FakeServer::start().await;
        let mut c = config(kind, &fake);
        c.api = api;
        let p = provider(c);
        assert!(p.supports_batch());
        let items = vec![
            ("p1_0_t".to_string(), meta_request()),
            (
                "p1_0_a7".to_string(),
                RequestBuilder::alt_text("en")
                    .name("Mug")
                    .image(picture())
                    .build(),
            ),
            ("p2_0_t".to_string(), meta_request()),
        ];
        fake.script([
            Scripted::Reply(serde_json::Value::Null),
            Scripted::InvalidJson,
        ]);
        let handle = p.submit_batch(&items).await.unwrap();
        // The handle is what a job keeps in its checkpoint.
        let handle: ai::BatchHandle =
            serde_json::from_str(&serde_json::to_string(&handle).unwrap()).unwrap();
        assert!(matches!(
            p.poll_batch(&handle).await.unwrap(),
            BatchPoll::Pending { .. }
        ));
        let BatchPoll::Done(results) = p.poll_batch(&handle).await.unwrap() else {
            panic!("the batch should have ended");
        };
        assert_eq!(results.len(), 3, "{kind:?} {api:?}");
        assert!(
            results["p1_0_t"].is_err(),
            "{kind:?}: {:?}",
            results["p1_0_t"]
        );
        assert!(
            matches!(results["p1_0_a7"], Err(AiError::InvalidOutput { .. })),
            "{kind:?}: {:?}",
            results["p1_0_a7"]
        );
        let ok = results["p2_0_t"].as_ref().unwrap();
        assert_eq!(ok.fields["meta_title"], "Sturdy product, made to last");
        assert!(ok.prompt_version.contains("meta_title.v1"));
        let submitted: String = fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.raw.clone())
            .collect();
        assert!(!submitted.contains("2.10"));
        if kind == ProviderKind::Openai {
            assert!(submitted.contains("\"store\":false"));
        }
    }
}

#[tokio::test]
async fn rules_needs_nothing_and_compatible_needs_a_base_url() {
    let rules = ai::build(
        "rules",
        ProviderConfig::new(ProviderKind::Rules),
        Arc::new(Prompts::builtin()),
    )
    .unwrap();
    assert!(!rules.is_remote());
    let out = rules.generate(&meta_request()).await.unwrap();
    assert!(out.fields["meta_description"].contains("Livraison rapide"));
    let mut c = ProviderConfig::new(ProviderKind::OpenaiCompatible);
    c.model = Some("llama3".into());
    let err = ai::build("local", c, Arc::new(Prompts::builtin())).unwrap_err();
    assert!(err.to_string().contains("base_url"), "{err}");
    let err = ai::build(
        "openai",
        ProviderConfig::new(ProviderKind::Openai),
        Arc::new(Prompts::builtin()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model"), "{err}");
}

/// An OpenAI-compatible endpoint on loopback answering every request with `answer`.
async fn hostile_endpoint(answer: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, answer).await });
    format!("http://{address}/v1")
}

fn compatible_at(base_url: String) -> ProviderConfig {
    let mut c = ProviderConfig::new(ProviderKind::OpenaiCompatible);
    c.base_url = Some(base_url);
    c.model = Some("local-model".into());
    c.egress = egress::Policy::allowing_loopback();
    c.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
    };
    c
}

#[tokio::test]
async fn a_base_url_the_egress_policy_refuses_stops_the_job_naming_the_setting() {
    let fake = FakeServer::start().await;
    let mut c = config(ProviderKind::OpenaiCompatible, &fake);
    c.egress = egress::Policy::public_only();
    let provider = ai::build("local", c, Arc::new(Prompts::builtin())).unwrap();
    let err = provider.generate(&meta_request()).await.unwrap_err();
    assert!(err.is_terminal(), "{err:?}");
    assert!(err.to_string().contains(egress::SETTING), "{err}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_its_cap() {
    let endless = axum::Router::new().fallback(|| async {
        let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
        let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        axum::response::Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from_stream(stream))
            .unwrap()
    });
    let base = hostile_endpoint(endless).await;
    let provider = ai::build("local", compatible_at(base), Arc::new(Prompts::builtin())).unwrap();
    let err = provider.generate(&meta_request()).await.unwrap_err();
    assert!(
        err.to_string().contains("larger than 4194304 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn an_error_page_is_described_not_repeated() {
    let page = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "text/html")],
            "<html>internal admin console: token=s3cr3t</html>",
        )
    });
    let base = hostile_endpoint(page).await;
    let provider = ai::build("local", compatible_at(base), Arc::new(Prompts::builtin())).unwrap();
    let err = provider.generate(&meta_request()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the provider refused the request (400): not a provider error message (text/html, 49 bytes)"
    );
}
