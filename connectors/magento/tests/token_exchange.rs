//! The integration handshake against a local server that checks signatures
//! with the independent verifier, and answers like Magento's token
//! controllers.

#[path = "support/magento_verifier.rs"]
mod magento_verifier;
#[path = "support/test_server.rs"]
mod test_server;

use magento::oauth::{OAuthProblem, TokenExchangeError, TokenPair, access_token, request_token};
use magento::{ConsumerCredentials, SignatureMethod};
use magento_verifier::{Secrets, SeenRequest, verify};
use test_server::{Received, Reply, TestServer};

const CONSUMER_KEY: &str = "c0nsumerkey0000000000000000000000";
const CONSUMER_SECRET: &str = "c0nsumersecret000000000000000000";
const REQUEST_TOKEN: &str = "requesttoken00000000000000000000";
const REQUEST_SECRET: &str = "requestsecret0000000000000000000";
const VERIFIER: &str = "verifier000000000000000000000000";

fn verifies(request: &Received, token_secret: &str) -> bool {
    let verdict = verify(
        &SeenRequest {
            method: &request.method,
            scheme: "http",
            host: &request.host,
            target: &request.target,
            authorization: &request.authorization,
        },
        &Secrets {
            consumer_secret: CONSUMER_SECRET,
            token_secret,
        },
    );
    if !verdict.valid {
        eprintln!(
            "signature rejected; expected base string {}",
            verdict.base_string
        );
    }
    verdict.valid
}

/// Answers like `Controller/Token/{Request,Access}.php`.
fn magento_token_endpoints(_: usize, request: &Received) -> Reply {
    if request.method != "POST" {
        return Reply::json(405, "");
    }
    if request.path().ends_with("/oauth/token/request") {
        if !verifies(request, "") || request.authorization.contains("oauth_token=") {
            return Reply::json(
                401,
                "oauth_problem=The+signature+is+invalid.+Verify+and+try+again.",
            );
        }
        return Reply::ok(format!(
            "oauth_token={REQUEST_TOKEN}&oauth_token_secret={REQUEST_SECRET}"
        ));
    }
    if request.path().ends_with("/oauth/token/access") {
        let has = |needle: &str| request.authorization.contains(needle);
        if !verifies(request, REQUEST_SECRET)
            || !has(&format!("oauth_verifier=\"{VERIFIER}\""))
            || !has(&format!("oauth_token=\"{REQUEST_TOKEN}\""))
        {
            return Reply::json(
                401,
                "oauth_problem=Token+verifier+and+verifier+token+do+not+match",
            );
        }
        return Reply::ok("oauth_token=accesstoken&oauth_token_secret=accesssecret");
    }
    Reply::json(404, "")
}

fn consumer() -> ConsumerCredentials {
    ConsumerCredentials::new(CONSUMER_KEY, CONSUMER_SECRET)
}

#[tokio::test]
async fn handshake_runs_through_index_php_with_both_methods() {
    let server = TestServer::start(magento_token_endpoints).await;
    let base = format!("{}index.php/", server.base_url);
    for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
        let request = request_token(
            &egress::Policy::allowing_loopback(),
            &base,
            &consumer(),
            method,
        )
        .await
        .expect("request token");
        assert_eq!(request.token(), REQUEST_TOKEN);
        let access = access_token(
            &egress::Policy::allowing_loopback(),
            &base,
            &consumer(),
            &request,
            VERIFIER,
            method,
        )
        .await
        .expect("access token");
        assert_eq!(
            (access.token(), access.token_secret()),
            ("accesstoken", "accesssecret")
        );
    }
    let received = server.received();
    assert_eq!(received.len(), 4);
    assert!(
        received
            .iter()
            .all(|request| request.target.starts_with("/index.php/oauth/token/"))
    );
}

#[tokio::test]
async fn wrong_verifier_is_a_typed_problem() {
    let server = TestServer::start(magento_token_endpoints).await;
    let request = TokenPair::new(REQUEST_TOKEN, REQUEST_SECRET);
    let error = access_token(
        &egress::Policy::allowing_loopback(),
        &server.base_url,
        &consumer(),
        &request,
        "wrong",
        SignatureMethod::HmacSha256,
    )
    .await
    .expect_err("verifier mismatch");
    assert_eq!(error.problem(), Some(&OAuthProblem::VerifierMismatch));
    assert!(
        error
            .problem()
            .is_some_and(OAuthProblem::needs_reauthorization)
    );
    assert!(!format!("{error} {error:?}").contains(CONSUMER_SECRET));
}

#[tokio::test]
async fn expired_consumers_and_reused_tokens_are_recognised() {
    let server = TestServer::start(|_, request| {
        if request.path().ends_with("/request") {
            Reply::json(401, "oauth_problem=Consumer+key+has+expired")
        } else {
            Reply::json(401, "oauth_problem=Token+is+already+being+used")
        }
    })
    .await;
    let error = request_token(
        &egress::Policy::allowing_loopback(),
        &server.base_url,
        &consumer(),
        SignatureMethod::HmacSha256,
    )
    .await
    .expect_err("expired");
    assert!(matches!(
        error,
        TokenExchangeError::Refused {
            status: 401,
            problem: OAuthProblem::ConsumerKeyExpired
        }
    ));
    let error = access_token(
        &egress::Policy::allowing_loopback(),
        &server.base_url,
        &consumer(),
        &TokenPair::new(REQUEST_TOKEN, REQUEST_SECRET),
        VERIFIER,
        SignatureMethod::HmacSha256,
    )
    .await
    .expect_err("reused");
    assert_eq!(error.problem(), Some(&OAuthProblem::TokenAlreadyUsed));
    // One-shot endpoints: nothing is retried.
    assert_eq!(server.count(), 2);
}
