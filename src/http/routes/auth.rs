//! Registration, login and token refresh.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::email::{Email, parse_name};
use crate::accounts::sessions::{self, RefreshError};
use crate::accounts::{password_reset, two_factor, users, workspaces};
use crate::audit_log::{self, Entry};
use crate::auth::login_limit::AccountKey;
use crate::auth::password::{self, Password};
use crate::error::Error;
use crate::http::access::ClientAddr;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::notify::mail::{self, OutgoingMail};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(password_reset))
        .routes(routes!(password_reset_confirm))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub name: String,
    pub workspace_name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WorkspaceSummary {
    pub id: Uuid,
    pub name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub user: UserSummary,
    pub workspace: WorkspaceSummary,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Creates an account and its first workspace, with the new user as owner. Rate limited per
/// client address.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<RegisterResponse>)> {
    if let Err(retry_after_secs) = state.login_limiter.check_registration(addr) {
        return Err(Error::TooManyAttempts { retry_after_secs }.into());
    }
    let email = Email::parse(&req.email)?;
    let name = parse_name("name", &req.name)?;
    let workspace_name = parse_name("workspace_name", &req.workspace_name)?;
    let password = Password::parse(req.password)?;
    let hash = password::hash(password, state.settings.auth.bcrypt_cost).await?;

    let mut tx = state.db.begin().await?;
    let user = users::create(&mut tx, &email, &name, &hash).await?;
    let workspace = workspaces::create(&mut tx, &workspace_name, user.id).await?;
    let mut entry = Entry::new("user.registered").target("user", user.id);
    entry.workspace_id = Some(workspace.id);
    entry.actor_user_id = Some(user.id);
    entry.client_addr = addr;
    audit_log::record(&mut *tx, entry).await?;
    tx.commit().await?;

    let tokens = start_session(&state, user.id, &headers, addr).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: UserSummary {
                id: user.id,
                email: user.email,
                name: user.name,
            },
            workspace: WorkspaceSummary {
                id: workspace.id,
                name: workspace.name,
            },
            tokens,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Six-digit code from an authenticator app, for accounts with two-factor login.
    pub totp: Option<String>,
}

/// Exchanges email and password for an access and a refresh token. Rate limited per account
/// (every spelling of its address alike) and per client address; wrong two-factor codes have
/// their own limit per account.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    if let Err(retry_after_secs) = state.login_limiter.check_client(addr) {
        return Err(Error::TooManyAttempts { retry_after_secs }.into());
    }
    let account = users::credentials_by_email(&state.db, &req.email).await?;
    let (user_id, stored) = match account {
        Some(c) => (Some(c.id), Some(c.password_hash)),
        None => (None, None),
    };
    // The account's budget, whichever spelling of its address was typed.
    let budget = match user_id {
        Some(id) => AccountKey::Account(id),
        None => AccountKey::address(&req.email),
    };
    if let Err(retry_after_secs) = state.login_limiter.check_account(&budget) {
        return Err(Error::TooManyAttempts { retry_after_secs }.into());
    }
    let valid = password::verify(req.password, stored, state.settings.auth.bcrypt_cost).await?;
    let user_id = match (valid, user_id) {
        (true, Some(id)) => id,
        (_, known) => {
            let mut entry = Entry::new("auth.login_failed");
            entry.client_addr = addr;
            match known {
                Some(id) => {
                    audit_log::record_for_member(&state.db, id, entry.target("user", id)).await?
                }
                None => audit_log::record(&state.db, entry).await?,
            }
            return Err(Error::Unauthenticated("invalid email or password").into());
        }
    };
    let second_factor = match two_factor::check_login(
        &state.db,
        &state.keyring,
        user_id,
        req.totp.as_deref(),
        state.settings.auth.totp_failures_per_hour_per_account,
    )
    .await
    {
        Ok(check) => check,
        Err(Error::TwoFactorRequired) => {
            // A missing code is the normal first step of a two-factor login; a wrong one is
            // a failed attempt.
            if req.totp.as_deref().is_some_and(|t| !t.trim().is_empty()) {
                let mut entry = Entry::new("auth.login_failed")
                    .target("user", user_id)
                    .details(serde_json::json!({"reason": "two-factor code"}));
                entry.client_addr = addr;
                audit_log::record_for_member(&state.db, user_id, entry).await?;
            }
            return Err(Error::TwoFactorRequired.into());
        }
        Err(e) => return Err(e.into()),
    };
    let tokens = start_session(&state, user_id, &headers, addr).await?;
    let details = match second_factor {
        two_factor::Check::NotEnabled => serde_json::json!({}),
        two_factor::Check::Code => serde_json::json!({"second_factor": "totp"}),
        two_factor::Check::RecoveryCode { remaining } => {
            serde_json::json!({"second_factor": "recovery_code", "recovery_codes_left": remaining})
        }
    };
    let mut entry = Entry::new("auth.login")
        .target("user", user_id)
        .details(details);
    entry.client_addr = addr;
    audit_log::record_for_member(&state.db, user_id, entry).await?;
    Ok(Json(tokens))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchanges a refresh token for new tokens. Each refresh token works once; presenting a used
/// one revokes the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let ttl = state.settings.auth.refresh_token_ttl_secs;
    match sessions::rotate(&state.db, &req.refresh_token, ttl).await {
        Ok((user_id, session)) => Ok(Json(tokens_for(&state, user_id, session)?)),
        Err(RefreshError::Reused {
            user_id,
            session_id,
        }) => {
            tracing::warn!(%user_id, %session_id, "refresh token reused; session revoked");
            let mut entry = Entry::new("auth.refresh_token_reused")
                .target("session", session_id)
                .details(serde_json::json!({"session_revoked": true}));
            entry.client_addr = addr;
            audit_log::record_for_member(&state.db, user_id, entry).await?;
            Err(Error::Unauthenticated(
                "refresh token was already used; the session has been revoked",
            )
            .into())
        }
        Err(RefreshError::Invalid) => {
            Err(Error::Unauthenticated("refresh token is invalid or expired").into())
        }
        Err(RefreshError::Db(e)) => Err(e.into()),
    }
}

pub(crate) async fn start_session(
    state: &AppState,
    user_id: Uuid,
    headers: &HeaderMap,
    addr: Option<std::net::IpAddr>,
) -> ApiResult<TokenResponse> {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let session = sessions::start(
        &state.db,
        user_id,
        user_agent,
        addr.map(|a| a.to_string()),
        state.settings.auth.refresh_token_ttl_secs,
    )
    .await?;
    tokens_for(state, user_id, session)
}

fn tokens_for(
    state: &AppState,
    user_id: Uuid,
    session: sessions::NewSession,
) -> ApiResult<TokenResponse> {
    let ttl = state.settings.auth.access_token_ttl_secs;
    Ok(TokenResponse {
        access_token: state.jwt.issue(user_id, session.session_id, ttl)?,
        refresh_token: session.refresh_token,
        token_type: "Bearer".to_string(),
        expires_in: ttl,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasswordResetQueued {
    /// Always the same sentence, whether or not an account uses the address.
    pub message: String,
}

const RESET_QUEUED: &str = "if an account uses this address, a link to set a new password is on its way (valid 30 minutes)";

/// Mails a single-use link to set a new password, valid 30 minutes. The answer is the same
/// whether or not an account uses the address. Rate limited per client address (the
/// registration limit) and per account.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = PasswordResetRequest,
    responses((status = 202, body = PasswordResetQueued), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn password_reset(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> ApiResult<(StatusCode, Json<PasswordResetQueued>)> {
    if let Err(retry_after_secs) = state.login_limiter.check_registration(addr) {
        return Err(Error::TooManyAttempts { retry_after_secs }.into());
    }
    let email = Email::parse(&req.email)?;
    let mut tx = state.db.begin().await?;
    if let Some(issued) = password_reset::issue(&mut tx, &email).await? {
        let link = format!(
            "{}/reset-password?token={}",
            state.settings.public_base_url(),
            issued.token
        );
        let text = format!(
            "Hello {name},\n\nSomeone (hopefully you) asked to set a new password for your catalogd \
             account. Set it here: {link}\n\nThe link works once, for {minutes} minutes. Setting a \
             new password signs you out everywhere. If you did not ask, ignore this message: your \
             password stays as it is.\n",
            name = issued.name,
            minutes = password_reset::VALID_MINUTES,
        );
        let html = maud::html! {
            p { "Hello " (issued.name) "," }
            p { "Someone (hopefully you) asked to set a new password for your catalogd account." }
            p { a href=(link) { "Set a new password" } }
            p {
                "The link works once, for " (password_reset::VALID_MINUTES) " minutes. Setting a new "
                "password signs you out everywhere. If you did not ask, ignore this message: your "
                "password stays as it is."
            }
        }
        .into_string();
        mail::enqueue(
            &mut tx,
            OutgoingMail {
                to: issued.email,
                subject: "Set a new catalogd password".into(),
                text,
                html: Some(html),
                idempotency_key: format!("password-reset:{}", issued.id),
            },
        )
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        let mut entry =
            Entry::new("account.password_reset_requested").target("user", issued.user_id);
        entry.client_addr = addr;
        tx.commit().await?;
        audit_log::record_for_member(&state.db, issued.user_id, entry).await?;
    } else {
        tx.commit().await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(PasswordResetQueued {
            message: RESET_QUEUED.to_string(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The `token` of the mailed link.
    pub token: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordResetDone {
    /// Sessions (and their refresh tokens) that ended.
    pub sessions_revoked: u64,
}

/// Sets a new password with a reset link's token (once, within 30 minutes), ends every session
/// and refresh token of the account, and writes the audit log.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = PasswordResetConfirm,
    responses((status = 200, body = PasswordResetDone), (status = 422, body = ErrorBody)))]
async fn password_reset_confirm(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<PasswordResetConfirm>,
) -> ApiResult<Json<PasswordResetDone>> {
    let password = Password::parse(req.password)?;
    if !password_reset::is_usable(&state.db, &req.token).await? {
        return Err(password_reset::unusable().into());
    }
    let hash = password::hash(password, state.settings.auth.bcrypt_cost).await?;
    let mut tx = state.db.begin().await?;
    let user_id = password_reset::redeem(&mut tx, &req.token).await?;
    users::set_password_hash(&mut tx, user_id, &hash).await?;
    let sessions_revoked = sessions::revoke_all(&mut tx, user_id, "password reset").await?;
    tx.commit().await?;
    let mut entry = Entry::new("account.password_reset")
        .target("user", user_id)
        .details(serde_json::json!({"sessions_revoked": sessions_revoked}));
    entry.client_addr = addr;
    audit_log::record_for_member(&state.db, user_id, entry).await?;
    Ok(Json(PasswordResetDone { sessions_revoked }))
}
