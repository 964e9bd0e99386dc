//! The signed-in person.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{TokenResponse, start_session};
use crate::accounts::account_archive;
use crate::accounts::deletion::{self, DeletionReport};
use crate::accounts::email::{Email, parse_name};
use crate::accounts::{sessions, two_factor, users, workspaces};
use crate::audit_log::{self, Entry};
use crate::auth::login_limit::AccountKey;
use crate::auth::password::{self, Password};
use crate::auth::{Caller, Role};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(start_totp, stop_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(export_me))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// Whether logins need a code from an authenticator app.
    pub totp_enabled: bool,
    pub workspaces: Vec<MyWorkspace>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MyWorkspace {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// The caller's account and their workspaces with their role in each.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<MeResponse>> {
    let user_id = caller.require_user()?;
    let user = users::get(&state.db, user_id)
        .await?
        .ok_or(Error::Unauthenticated("account no longer exists"))?;
    let workspaces = workspaces::all_for_user(&state.db, user_id)
        .await?
        .into_iter()
        .map(|w| MyWorkspace {
            id: w.id,
            name: w.name,
            role: w.role,
        })
        .collect();
    let totp_enabled = two_factor::is_enabled(&state.db, user_id).await?;
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        name: user.name,
        totp_enabled,
        workspaces,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    pub name: Option<String>,
    /// A new sign-in address; needs `current_password`.
    pub email: Option<String>,
    /// A new password; needs `current_password`. Every session of the account ends, and the
    /// answer carries tokens for a new one.
    pub password: Option<String>,
    pub current_password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UpdateMeResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// Present after a password change: the tokens of the caller's new session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<TokenResponse>,
    /// Sessions ended by a password change.
    pub sessions_revoked: u64,
}

/// Corrects the account: name, email (re-checked with the password) or password (ends every
/// session).
#[utoipa::path(patch, path = "/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = UpdateMeResponse), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateMeRequest>,
) -> ApiResult<Json<UpdateMeResponse>> {
    let user_id = caller.require_user()?;
    let name = req
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    let email = req.email.as_deref().map(Email::parse).transpose()?;
    let password = req.password.map(Password::parse).transpose()?;
    if name.is_none() && email.is_none() && password.is_none() {
        return Err(Error::Malformed("give at least one of name, email, password".into()).into());
    }
    if email.is_some() || password.is_some() {
        let current = req.current_password.ok_or_else(|| {
            Error::invalid(
                "current_password",
                "changing the email or password needs the current password",
            )
        })?;
        check_password(&state, user_id, current, "current_password").await?;
    }
    let new_hash = match password {
        Some(p) => Some(password::hash(p, state.settings.auth.bcrypt_cost).await?),
        None => None,
    };

    let mut tx = state.db.begin().await?;
    let mut changed = Vec::new();
    if let Some(name) = &name {
        users::set_name(&mut tx, user_id, name).await?;
        changed.push("name");
    }
    if let Some(email) = &email {
        users::set_email(&mut tx, user_id, email).await?;
        changed.push("email");
    }
    let mut sessions_revoked = 0;
    if let Some(hash) = &new_hash {
        users::set_password_hash(&mut tx, user_id, hash).await?;
        sessions_revoked = sessions::revoke_all(&mut tx, user_id, "password changed").await?;
        changed.push("password");
    }
    tx.commit().await?;

    let mut entry = Entry::new("account.updated")
        .target("user", user_id)
        .details(serde_json::json!({"changed": changed}));
    entry.client_addr = caller.client_addr;
    audit_log::record_for_member(&state.db, user_id, entry).await?;

    let session = match new_hash {
        Some(_) => Some(start_session(&state, user_id, &headers, caller.client_addr).await?),
        None => None,
    };
    let user = users::get(&state.db, user_id)
        .await?
        .ok_or(Error::Unauthenticated("account no longer exists"))?;
    Ok(Json(UpdateMeResponse {
        id: user.id,
        email: user.email,
        name: user.name,
        session,
        sessions_revoked,
    }))
}

/// Re-checks the account's password before a sensitive change. The check spends the account's
/// login budget, so a stolen session guesses the password no faster than a login would.
async fn check_password(
    state: &AppState,
    user_id: Uuid,
    given: String,
    field: &'static str,
) -> ApiResult<()> {
    if let Err(retry_after_secs) = state
        .login_limiter
        .check_account(&AccountKey::Account(user_id))
    {
        return Err(Error::TooManyAttempts { retry_after_secs }.into());
    }
    let stored = users::password_hash(&state.db, user_id).await?;
    if !password::verify(given, stored, state.settings.auth.bcrypt_cost).await? {
        return Err(Error::invalid(
            field,
            format!("the {} is not right", field.replace('_', " ")),
        )
        .into());
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMeRequest {
    /// The account's password.
    pub password: String,
    /// For an account with two-factor login: a current code from the authenticator app, or a
    /// recovery code.
    pub totp_code: Option<String>,
}

/// Deletes the account, confirmed with its password (and a two-factor code when it has
/// two-factor login): name, email, password hash, sessions and the API keys it created are
/// removed at once. Workspaces it alone owned close now and are deleted with all their content
/// (products, versions, media and export files) by the next retention sweep; other workspaces
/// keep their content, with the account shown as a deleted user.
#[utoipa::path(delete, path = "/me", tag = "auth", security(("bearer" = [])),
    request_body = DeleteMeRequest,
    responses((status = 200, body = DeletionReport), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn delete_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DeleteMeRequest>,
) -> ApiResult<Json<DeletionReport>> {
    let user_id = caller.require_user()?;
    check_password(&state, user_id, req.password, "password").await?;
    match two_factor::check_login(
        &state.db,
        &state.keyring,
        user_id,
        req.totp_code.as_deref(),
        state.settings.auth.totp_failures_per_hour_per_account,
    )
    .await
    {
        Ok(_) => {}
        Err(Error::TwoFactorRequired) => {
            return Err(Error::invalid(
                "totp_code",
                "this account uses two-factor login: send a current code from the \
                 authenticator app (or a recovery code) as totp_code",
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(deletion::delete_account(&state.db, &caller).await?))
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The shared secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// The same as an `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Starts two-factor enrolment: a new secret for the authenticator app. Nothing changes for
/// logins until a code is confirmed with `POST /me/totp/confirm`.
#[utoipa::path(post, path = "/me/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 201, body = TotpEnrolment), (status = 409, body = ErrorBody)))]
async fn start_totp(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<TotpEnrolment>)> {
    let user_id = caller.require_user()?;
    let enrolment = two_factor::start(&state.db, &state.keyring, user_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            secret: enrolment.secret_base32,
            otpauth_uri: enrolment.otpauth_uri,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    /// The current six-digit code from the authenticator app.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpConfirmed {
    pub enabled: bool,
    /// Single-use codes for when the device is lost. Shown only in this answer.
    pub recovery_codes: Vec<String>,
}

/// Switches two-factor login on with a code from the enrolled app.
#[utoipa::path(post, path = "/me/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = TotpConfirmRequest,
    responses((status = 200, body = TotpConfirmed), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn confirm_totp(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> ApiResult<Json<TotpConfirmed>> {
    let user_id = caller.require_user()?;
    let recovery_codes = two_factor::confirm(&state.db, &state.keyring, user_id, &req.code).await?;
    let mut entry = Entry::new("auth.totp_enabled").target("user", user_id);
    entry.client_addr = caller.client_addr;
    audit_log::record_for_member(&state.db, user_id, entry).await?;
    Ok(Json(TotpConfirmed {
        enabled: true,
        recovery_codes,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableRequest {
    pub password: String,
}

/// Switches two-factor login off (needs the password). Refused while a workspace of the
/// account requires it.
#[utoipa::path(delete, path = "/me/totp", tag = "auth", security(("bearer" = [])),
    request_body = TotpDisableRequest,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn stop_totp(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TotpDisableRequest>,
) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?;
    check_password(&state, user_id, req.password, "password").await?;
    if two_factor::required_of(&state.db, user_id).await? {
        return Err(
            Error::Conflict("a workspace you belong to requires two-factor login".into()).into(),
        );
    }
    if two_factor::disable(&state.db, user_id).await? {
        let mut entry = Entry::new("auth.totp_disabled").target("user", user_id);
        entry.client_addr = caller.client_addr;
        audit_log::record_for_member(&state.db, user_id, entry).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The account's own data as a ZIP of JSON files (portability): the account, memberships,
/// sessions, the API keys it created and its entries in the audit logs, plus, for each
/// workspace it owns, the latest workspace archive with a fresh download link (an owner makes
/// one with `POST /workspaces/{ws}/exports {"format": "workspace_archive"}`).
#[utoipa::path(get, path = "/me/export", tag = "auth", security(("bearer" = [])),
    responses((status = 200, content_type = "application/zip", body = Vec<u8>), (status = 401, body = ErrorBody),
        (status = 403, description = "`totp_setup_required`: a workspace of the account requires two-factor login", body = ErrorBody)))]
async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::response::Response> {
    let user_id = caller.require_user()?;
    // The archive holds data of every workspace the person belongs to: one that requires
    // two-factor login refuses it to an account without, as its own endpoints do.
    if two_factor::required_of(&state.db, user_id).await?
        && !two_factor::is_enabled(&state.db, user_id).await?
    {
        return Err(Error::TwoFactorSetupRequired.into());
    }
    let files = account_archive::files(&state, user_id).await?;
    let zip = tokio::task::spawn_blocking(move || account_archive::zip(&files))
        .await
        .map_err(anyhow::Error::from)??;
    let mut entry = Entry::new("account.exported").target("user", user_id);
    entry.client_addr = caller.client_addr;
    audit_log::record_for_member(&state.db, user_id, entry).await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/zip".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"catalogd-account-{user_id}.zip\""),
            ),
        ],
        zip,
    )
        .into_response())
}
