//! Two-factor login: enrolment, confirmation, the login check and switching it off.
//!
//! The shared secret is sealed with the master key like every other secret at rest (and
//! re-sealed by `catalogd rotate-key`). A code is accepted once: the last accepted time step is
//! kept, and the check locks the user's row so two logins cannot spend one code.

use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::totp;
use crate::crypto::Keyring;
use crate::error::Error;

pub fn secret_context(user_id: Uuid) -> String {
    format!("users.totp_secret:{user_id}")
}

pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

/// Starts (or restarts) enrolment with a fresh secret. Two-factor login is only switched on by
/// [`confirm`], so an abandoned enrolment changes nothing.
pub async fn start(db: &PgPool, keyring: &Keyring, user_id: Uuid) -> Result<Enrolment, Error> {
    let secret = totp::new_secret();
    let sealed = keyring.seal(&secret, &secret_context(user_id));
    let email: Option<String> = sqlx::query_scalar(
        "UPDATE users SET totp_secret = $2, totp_last_step = NULL
         WHERE id = $1 AND totp_enabled_at IS NULL RETURNING email::text",
    )
    .bind(user_id)
    .bind(sealed)
    .fetch_optional(db)
    .await?;
    let Some(email) = email else {
        return Err(Error::Conflict(
            "two-factor login is already on; switch it off first to enrol a new device".into(),
        ));
    };
    Ok(Enrolment {
        secret_base32: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(&secret, &email, "catalogd"),
    })
}

#[derive(sqlx::FromRow)]
struct TotpRow {
    totp_secret: Option<Vec<u8>>,
    enabled: bool,
    totp_last_step: Option<i64>,
    /// Wrong codes in the current hour.
    recent_failures: i64,
    /// Seconds until that hour is over.
    failure_window_left_secs: i64,
}

/// The hour wrong codes are counted in, from the first of them.
const FAILURE_WINDOW: &str = "interval '1 hour'";

async fn lock_row(tx: &mut PgConnection, user_id: Uuid) -> Result<Option<TotpRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT totp_secret, totp_enabled_at IS NOT NULL AS enabled, totp_last_step,
                CASE WHEN totp_failures_since > now() - {FAILURE_WINDOW}
                     THEN totp_failures ELSE 0 END::bigint AS recent_failures,
                coalesce(ceil(extract(epoch FROM
                    totp_failures_since + {FAILURE_WINDOW} - now())), 0)::bigint
                    AS failure_window_left_secs
         FROM users WHERE id = $1 FOR UPDATE"
    )))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Counts a wrong code in the current hour, or starts a new hour with it.
async fn count_failure(tx: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET
            totp_failures = CASE WHEN totp_failures_since > now() - {FAILURE_WINDOW}
                                 THEN totp_failures + 1 ELSE 1 END,
            totp_failures_since = CASE WHEN totp_failures_since > now() - {FAILURE_WINDOW}
                                       THEN totp_failures_since ELSE now() END
         WHERE id = $1"
    )))
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn open_secret(
    keyring: &Keyring,
    user_id: Uuid,
    sealed: &[u8],
) -> Result<secrecy::SecretSlice<u8>, Error> {
    keyring
        .open(sealed, &secret_context(user_id))
        .map(secrecy::SecretSlice::from)
        .map_err(|e| Error::Internal(anyhow::anyhow!("two-factor secret of {user_id}: {e}")))
}

/// Switches two-factor login on with a code from the enrolled app; returns the recovery codes,
/// shown this once.
pub async fn confirm(
    db: &PgPool,
    keyring: &Keyring,
    user_id: Uuid,
    code: &str,
) -> Result<Vec<String>, Error> {
    let mut tx = db.begin().await?;
    let row = lock_row(&mut tx, user_id)
        .await?
        .ok_or(Error::Unauthenticated("account no longer exists"))?;
    if row.enabled {
        return Err(Error::Conflict("two-factor login is already on".into()));
    }
    let sealed = row
        .totp_secret
        .ok_or_else(|| Error::Conflict("start enrolment first with POST /api/v1/me/totp".into()))?;
    let secret = open_secret(keyring, user_id, &sealed)?;
    let now = chrono::Utc::now().timestamp();
    let step =
        totp::verify(secret.expose_secret(), code, now, row.totp_last_step).ok_or_else(|| {
            Error::invalid(
                "code",
                "the code does not match; check the device's clock and try the current code",
            )
        })?;
    sqlx::query("UPDATE users SET totp_enabled_at = now(), totp_last_step = $2 WHERE id = $1")
        .bind(user_id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
    let codes = replace_recovery_codes(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(codes)
}

async fn replace_recovery_codes(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|(_, h)| h.clone()).collect();
    let ids: Vec<Uuid> = codes.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO totp_recovery_codes (id, user_id, code_hash)
         SELECT id, $2, hash FROM UNNEST($1::uuid[], $3::bytea[]) AS t(id, hash)",
    )
    .bind(&ids)
    .bind(user_id)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    Ok(codes.into_iter().map(|(code, _)| code).collect())
}

/// What a login's second factor came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The account has no second factor.
    NotEnabled,
    /// A valid authenticator code.
    Code,
    /// A recovery code, now spent.
    RecoveryCode { remaining: i64 },
}

/// Checks a login's second factor. `Err(TotpRequired)` when the account has one and `totp` is
/// missing or wrong; `Err(TooManyRequests)` once `max_failures_per_hour` wrong codes were
/// sent within the hour from the first of them (a right code is refused too until then, or
/// guessing would go on).
pub async fn check_login(
    db: &PgPool,
    keyring: &Keyring,
    user_id: Uuid,
    totp_input: Option<&str>,
    max_failures_per_hour: u32,
) -> Result<Check, Error> {
    let mut tx = db.begin().await?;
    let Some(row) = lock_row(&mut tx, user_id).await? else {
        return Err(Error::Unauthenticated("invalid email or password"));
    };
    if !row.enabled {
        return Ok(Check::NotEnabled);
    }
    let input = totp_input
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Error::TwoFactorRequired)?;
    if row.recent_failures >= i64::from(max_failures_per_hour) {
        return Err(Error::TooManyAttempts {
            retry_after_secs: row.failure_window_left_secs.max(1) as u64,
        });
    }
    let sealed = row
        .totp_secret
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("two-factor on without a secret")))?;
    let secret = open_secret(keyring, user_id, &sealed)?;
    let now = chrono::Utc::now().timestamp();
    if let Some(step) = totp::verify(secret.expose_secret(), input, now, row.totp_last_step) {
        sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1")
            .bind(user_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Check::Code);
    }
    let spent = sqlx::query(
        "UPDATE totp_recovery_codes SET used_at = now()
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(totp::hash_recovery_code(input))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if spent == 0 {
        count_failure(&mut tx, user_id).await?;
        tx.commit().await?;
        return Err(Error::TwoFactorRequired);
    }
    let remaining: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM totp_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Check::RecoveryCode { remaining })
}

/// Switches two-factor login off and forgets the secret and the recovery codes.
pub async fn disable(db: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL
         WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(changed > 0)
}

pub async fn is_enabled(db: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT totp_enabled_at IS NOT NULL FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
        .map(|v| v.unwrap_or(false))
}

/// Whether a workspace the person belongs to requires two-factor login.
pub async fn required_of(db: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
                        WHERE m.user_id = $1 AND coalesce((w.settings->>'require_totp')::boolean, false))",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
}
