//! bcrypt password hashing, off the async threads.

use crate::error::Error;

/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_CHARS: usize = 8;

/// A password that passed the length rules. Never printed.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn parse(raw: String) -> Result<Password, Error> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::invalid(
                "password",
                format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(Error::invalid(
                "password",
                format!("password must be at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(Password(raw))
    }
}

pub async fn hash(password: Password, cost: u32) -> anyhow::Result<String> {
    let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(password.0, cost)).await??;
    Ok(hashed)
}

/// Checks `candidate` against `stored`; with no stored hash (unknown account) it still spends
/// the time of a real check so response timing does not reveal which addresses exist.
pub async fn verify(candidate: String, stored: Option<String>, cost: u32) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || match stored {
        Some(hash) => Ok(bcrypt::verify(candidate, &hash).unwrap_or(false)),
        None => {
            let _ = bcrypt::hash(candidate, cost)?;
            Ok(false)
        }
    })
    .await?
}
