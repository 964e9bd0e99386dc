//! Magento's integration handshake, our side.
//!
//! Magento POSTs the consumer key, consumer secret and a verifier to the store's callback URL
//! and gives up after 5 seconds, ignoring the answer. So the callback only records what it
//! received (sealed) and answers at once; the request-token / access-token exchange then runs
//! in the background, within Magento's 300-second window. Each callback URL accepts one post
//! per activation: a repeated or forged post is refused and logged. Failure leaves the store
//! `failed` and ready for one more post, which Magento's "Reauthorize" sends. A connected
//! store also accepts Magento's "Reauthorize" unannounced when the post carries the consumer
//! key and secret it already holds: Magento has deleted the old token by then.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StoreCredentials, handshake_context, hash_link_token};
use crate::audit_log::{self, Entry};
use crate::error::Error;
use crate::state::AppState;

/// Magento's consumer expiry (`oauth/consumer/expiration_period`), counted from its post.
pub const EXCHANGE_WINDOW_SECS: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Handshake {
    consumer_key: String,
    consumer_secret: String,
    verifier: String,
    /// The store URL the post reported: trusted (for the identity link's redirect) only once
    /// the exchange has proved the post came from Magento.
    #[serde(default)]
    store_base_url: Option<String>,
}

/// Magento's form post, parsed and checked.
pub struct CallbackForm {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub store_base_url: String,
    pub verifier: String,
}

impl std::fmt::Debug for CallbackForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackForm")
            .field("consumer_key", &self.consumer_key)
            .field("store_base_url", &self.store_base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawForm {
    oauth_consumer_key: Option<String>,
    oauth_consumer_secret: Option<String>,
    store_base_url: Option<String>,
    oauth_verifier: Option<String>,
}

impl CallbackForm {
    pub fn parse(body: &[u8]) -> Result<CallbackForm, Error> {
        let raw: RawForm = serde_urlencoded::from_bytes(body)
            .map_err(|_| Error::Malformed("callback body is not a form".into()))?;
        let field = |value: Option<String>, name: &'static str| -> Result<String, Error> {
            let value = value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::invalid(name, format!("{name} is missing")))?;
            let token_like = value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if !token_like {
                return Err(Error::invalid(
                    name,
                    format!("{name} is not a Magento token"),
                ));
            }
            Ok(value)
        };
        let store_base_url = raw.store_base_url.unwrap_or_default();
        if store_base_url.len() > 2048 || url::Url::parse(&store_base_url).is_err() {
            return Err(Error::invalid(
                "store_base_url",
                "store_base_url is not a URL",
            ));
        }
        Ok(CallbackForm {
            consumer_key: field(raw.oauth_consumer_key, "oauth_consumer_key")?,
            consumer_secret: field(raw.oauth_consumer_secret, "oauth_consumer_secret")?,
            verifier: field(raw.oauth_verifier, "oauth_verifier")?,
            store_base_url,
        })
    }
}

#[derive(sqlx::FromRow)]
struct Target {
    id: Uuid,
    workspace_id: Uuid,
    callback_armed: bool,
    credentials: Option<Vec<u8>>,
}

/// Whether an unexpected post is Magento's "Reauthorize" of the integration this store already
/// uses. Magento deletes the store's access token, then posts the same consumer key and secret
/// with a new verifier, ignoring the answer
/// (`Integration/Controller/Adminhtml/Integration/TokensExchange.php`,
/// `Integration/Model/OauthService.php` `postToConsumer`): refusing it would leave the store
/// with a dead token. The consumer secret proves the post comes from the store itself.
fn is_reauthorization(state: &AppState, target: &Target, form: &CallbackForm) -> bool {
    use subtle::ConstantTimeEq;
    let Some(sealed) = &target.credentials else {
        return false;
    };
    let Ok(held) = state
        .keyring
        .open_json::<StoreCredentials>(sealed, &super::credentials_context(target.id))
    else {
        return false;
    };
    let same_key: bool = held
        .consumer_key
        .as_bytes()
        .ct_eq(form.consumer_key.as_bytes())
        .into();
    let same_secret: bool = held
        .consumer_secret
        .as_bytes()
        .ct_eq(form.consumer_secret.as_bytes())
        .into();
    same_key && same_secret
}

/// Records Magento's post for the store behind `token` and disarms the URL. Returns the store
/// whose exchange should now run.
pub async fn accept_callback(
    state: &AppState,
    token: &str,
    form: CallbackForm,
    client_addr: Option<IpAddr>,
) -> Result<Uuid, Error> {
    let mut tx = state.db.begin().await?;
    let target: Option<Target> = sqlx::query_as(
        "SELECT id, workspace_id, callback_armed, credentials FROM stores
         WHERE link_token_hash = $1 AND status <> 'disconnected' FOR UPDATE",
    )
    .bind(hash_link_token(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(target) = target else {
        tracing::warn!(client = ?client_addr, "Magento callback for an unknown or disconnected store refused");
        return Err(Error::NotFound("integration"));
    };
    let mut entry = Entry::new("store.callback_refused").target("store", target.id);
    entry.workspace_id = Some(target.workspace_id);
    entry.client_addr = client_addr;
    let reauthorized = !target.callback_armed && is_reauthorization(state, &target, &form);
    if !target.callback_armed && !reauthorized {
        tracing::warn!(store_id = %target.id, client = ?client_addr, "repeated Magento callback refused");
        audit_log::record(
            &mut *tx,
            entry.details(serde_json::json!({"reason": "not awaiting a callback"})),
        )
        .await?;
        tx.commit().await?;
        return Err(Error::Conflict(
            "this store is not awaiting a callback; click Reauthorize in catalogd first".into(),
        ));
    }
    let sealed = state.keyring.seal_json(
        &Handshake {
            consumer_key: form.consumer_key.clone(),
            consumer_secret: form.consumer_secret,
            verifier: form.verifier,
            store_base_url: Some(form.store_base_url.clone()),
        },
        &handshake_context(target.id),
    );
    sqlx::query(
        "UPDATE stores SET callback_armed = false, handshake = $2, handshake_started_at = now(),
            status = CASE WHEN status = 'active' THEN status ELSE 'pending' END,
            status_detail = 'exchanging tokens with Magento'
         WHERE id = $1",
    )
    .bind(target.id)
    .bind(sealed)
    .execute(&mut *tx)
    .await?;
    entry.action = "store.callback_received";
    audit_log::record(
        &mut *tx,
        entry.details(serde_json::json!({
            "consumer_key": form.consumer_key,
            "store_base_url": form.store_base_url,
            "reauthorized_in_magento": reauthorized,
        })),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(store_id = %target.id, reauthorized, "Magento callback accepted; exchanging tokens");
    Ok(target.id)
}

#[derive(sqlx::FromRow)]
struct Claimed {
    workspace_id: Uuid,
    base_url: String,
    signature_method: String,
    handshake: Vec<u8>,
    expired: bool,
}

/// Runs the token exchange for a store whose callback was accepted. Takes the recorded
/// handshake out of the row first, so two processes never run the same exchange.
pub async fn complete(state: AppState, store_id: Uuid) {
    if let Err(e) = try_complete(&state, store_id).await {
        tracing::error!(%store_id, error = %e, "completing the Magento handshake failed");
    }
}

async fn try_complete(state: &AppState, store_id: Uuid) -> anyhow::Result<()> {
    let claimed: Option<Claimed> = sqlx::query_as(
        "UPDATE stores s SET handshake = NULL
         FROM (SELECT id, handshake FROM stores WHERE id = $1 AND handshake IS NOT NULL FOR UPDATE) old
         WHERE s.id = old.id
         RETURNING s.workspace_id, s.base_url, s.signature_method, old.handshake,
                   s.handshake_started_at < now() - make_interval(secs => $2) AS expired",
    )
    .bind(store_id)
    .bind(EXCHANGE_WINDOW_SECS as f64)
    .fetch_optional(&state.db)
    .await?;
    let Some(claimed) = claimed else {
        return Ok(());
    };
    let handshake: Handshake = state
        .keyring
        .open_json(&claimed.handshake, &handshake_context(store_id))?;
    if claimed.expired {
        return fail(state, store_id, claimed.workspace_id, "Magento's 300-second window to exchange tokens has passed; click Reauthorize in Magento").await;
    }
    let method = super::SignatureMethod::parse(&claimed.signature_method);
    let exchanged = super::magento::exchange_tokens(
        &state.egress,
        &claimed.base_url,
        &handshake.consumer_key,
        &handshake.consumer_secret,
        &handshake.verifier,
        method,
    )
    .await;
    let (access_token, access_token_secret) = match exchanged {
        Ok(pair) => pair,
        Err(problem) => return fail(state, store_id, claimed.workspace_id, &problem).await,
    };
    // The exchange succeeded: Magento itself posted, so the URL it reported is its own.
    let verified_store_url = handshake.store_base_url;
    let credentials = StoreCredentials {
        consumer_key: handshake.consumer_key,
        consumer_secret: handshake.consumer_secret,
        access_token,
        access_token_secret,
    };
    let rate = super::RateLimit::default();
    let discovered = super::magento::discover_with_form(
        &state.egress,
        &claimed.base_url,
        &credentials,
        method,
        rate,
    )
    .await;
    let (views, form, detail) = match discovered {
        Ok((views, form)) => (Some(views), form, None),
        Err(e) => (
            None,
            None,
            Some(format!(
                "connected, but store views could not be read yet: {e}"
            )),
        ),
    };
    let sealed = state
        .keyring
        .seal_json(&credentials, &super::credentials_context(store_id));
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE stores SET status = 'active', status_detail = $2, credentials = $3,
            store_views = COALESCE($4, store_views), connected_at = now(), handshake_started_at = NULL,
            missing_permissions = '[]'::jsonb,
            magento_store_url = COALESCE($5, magento_store_url),
            signature_form = COALESCE($6, signature_form)
         WHERE id = $1 AND status <> 'disconnected'",
    )
    .bind(store_id)
    .bind(detail)
    .bind(sealed)
    .bind(views.map(sqlx::types::Json))
    .bind(verified_store_url)
    .bind(form.map(magento::SignatureForm::as_str))
    .execute(&mut *tx)
    .await?;
    let mut entry = Entry::new("store.connected").target("store", store_id);
    entry.workspace_id = Some(claimed.workspace_id);
    audit_log::record(
        &mut *tx,
        entry.details(serde_json::json!({"via": "integration handshake"})),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%store_id, "store connected through the integration handshake");
    Ok(())
}

async fn fail(
    state: &AppState,
    store_id: Uuid,
    workspace_id: Uuid,
    problem: &str,
) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let detail = format!("{problem} — click Reauthorize on the integration in Magento's admin");
    let was: Option<(String, String)> = sqlx::query_as(
        "UPDATE stores s SET status = CASE WHEN s.status = 'active' THEN 'needs_reauth' ELSE 'failed' END,
            status_detail = $2, callback_armed = true, handshake_started_at = NULL
         FROM (SELECT id, status FROM stores WHERE id = $1 FOR UPDATE) before
         WHERE s.id = before.id AND s.status <> 'disconnected'
         RETURNING before.status, s.name",
    )
    .bind(store_id)
    .bind(&detail)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((before, name)) = was
        && before == "active"
    {
        crate::stores::needs_reauth_event(&mut tx, workspace_id, store_id, &name, &detail).await?;
    }
    let mut entry = Entry::new("store.handshake_failed").target("store", store_id);
    entry.workspace_id = Some(workspace_id);
    audit_log::record(
        &mut *tx,
        entry.details(serde_json::json!({"problem": problem})),
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(%store_id, problem, "Magento handshake failed");
    Ok(())
}

/// Exchanges that a stopped process accepted but did not finish, resumed at start-up.
pub async fn resume_unfinished(state: &AppState) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM stores WHERE handshake IS NOT NULL")
        .fetch_all(&state.db)
        .await?;
    for id in ids {
        tokio::spawn(complete(state.clone(), id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_body_is_an_answer_not_a_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = CallbackForm::parse(&body);
        }

        #[test]
        fn magentos_form_reads_back_exactly(
            key in "[A-Za-z0-9]{1,64}",
            secret in "[A-Za-z0-9]{1,64}",
            verifier in "[A-Za-z0-9]{1,64}",
            host in "[a-z]{1,20}",
            path in "(/[a-z0-9]{1,8}){0,3}",
            extra in proptest::option::of(("[a-z_]{1,10}", ".{0,20}")),
        ) {
            let url = format!("https://{host}.example{path}/");
            let mut fields = vec![
                ("oauth_consumer_key", key.clone()),
                ("oauth_consumer_secret", secret.clone()),
                ("store_base_url", url.clone()),
                ("oauth_verifier", verifier.clone()),
            ];
            // Fields Magento may add are ignored.
            let extra_name;
            if let Some((name, value)) = extra {
                extra_name = format!("x_{name}");
                fields.push((extra_name.as_str(), value));
            }
            let body = serde_urlencoded::to_string(&fields).unwrap();
            let form = CallbackForm::parse(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(form.consumer_key, key);
            proptest::prop_assert_eq!(form.consumer_secret, secret);
            proptest::prop_assert_eq!(form.verifier, verifier);
            proptest::prop_assert_eq!(form.store_base_url, url);
        }

        #[test]
        fn tokens_that_are_not_magento_tokens_are_refused(bad in "[^A-Za-z0-9]{1,8}") {
            let body = serde_urlencoded::to_string([
                ("oauth_consumer_key", bad.as_str()),
                ("oauth_consumer_secret", "secret"),
                ("store_base_url", "https://shop.example/"),
                ("oauth_verifier", "verifier"),
            ])
            .unwrap();
            proptest::prop_assert!(CallbackForm::parse(body.as_bytes()).is_err());
        }
    }
}
