//! Key material: the JWT signing key and the master key for credentials at rest.
//!
//! Taken from configuration when set; otherwise generated once into the data directory
//! with mode 0600 and reused on every later start. There is no built-in default key.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The 32-byte AES-256-GCM key for store credentials.
pub type MasterKey = SecretBox<[u8; 32]>;

/// A signing key replaced by a rotation, and when (Unix seconds).
pub struct RetiredJwtSecret {
    pub secret: SecretSlice<u8>,
    pub retired_at: i64,
}

pub struct KeyMaterial {
    pub jwt_secret: SecretSlice<u8>,
    pub previous_jwt_secrets: Vec<RetiredJwtSecret>,
    pub master_key: MasterKey,
    pub previous_master_keys: Vec<MasterKey>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

const MIN_JWT_SECRET_BYTES: usize = 32;
pub const MASTER_KEY_FILE: &str = "master.key";
pub const RETIRED_KEYS_FILE: &str = "master.key.previous";
pub const JWT_KEY_FILE: &str = "jwt.key";
/// Lines of `<unix time retired> <base64 key>`, written by `catalogd rotate-jwt-key`.
pub const RETIRED_JWT_KEYS_FILE: &str = "jwt.key.previous";

impl KeyMaterial {
    pub fn load_or_generate(settings: &Settings) -> Result<KeyMaterial, SecretsError> {
        let jwt_configured = settings.jwt_secret.expose_secret();
        let jwt_secret: Vec<u8> = if jwt_configured.is_empty() {
            let encoded = read_or_generate(&settings.data_dir.join(JWT_KEY_FILE), "jwt_secret")?;
            decode_base64("jwt_secret", &encoded)?
        } else {
            jwt_configured.as_bytes().to_vec()
        };
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(SecretsError::Invalid {
                key: "jwt_secret",
                problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }

        let master_configured = settings.master_key.expose_secret();
        let master_encoded = if master_configured.is_empty() {
            read_or_generate(&settings.data_dir.join(MASTER_KEY_FILE), "master_key")?
        } else {
            master_configured.to_string()
        };
        let master_key = parse_master_key("master_key", &master_encoded)?;
        let mut previous_master_keys: Vec<MasterKey> = settings
            .previous_master_keys
            .iter()
            .map(|k| parse_master_key("previous_master_keys", k.expose_secret()))
            .collect::<Result<_, _>>()?;
        // Keys retired by `catalogd rotate-key` when the key lives in the data directory.
        let retired_file = settings.data_dir.join(RETIRED_KEYS_FILE);
        match std::fs::read_to_string(&retired_file) {
            Ok(text) => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    previous_master_keys.push(parse_master_key("master.key.previous", line)?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SecretsError::Io {
                    path: retired_file,
                    source,
                });
            }
        }

        let previous_jwt_secrets = load_previous_jwt_secrets(settings)?;

        Ok(KeyMaterial {
            jwt_secret: SecretSlice::from(jwt_secret),
            previous_jwt_secrets,
            master_key,
            previous_master_keys,
        })
    }
}

/// Retired signing keys: from configuration (counted as retired when this process started, so
/// the grace period runs from the restart that deployed the rotation) and from the data
/// directory's `jwt.key.previous` (with the time `rotate-jwt-key` retired them).
fn load_previous_jwt_secrets(settings: &Settings) -> Result<Vec<RetiredJwtSecret>, SecretsError> {
    let started = chrono::Utc::now().timestamp();
    let mut retired: Vec<RetiredJwtSecret> = settings
        .previous_jwt_secrets
        .iter()
        .map(|s| RetiredJwtSecret {
            secret: SecretSlice::from(s.expose_secret().as_bytes().to_vec()),
            retired_at: started,
        })
        .collect();
    let path = settings.data_dir.join(RETIRED_JWT_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let invalid = || SecretsError::Invalid {
                    key: "jwt.key.previous",
                    problem: "each line must be `<unix time> <base64 key>`".into(),
                };
                let (at, key) = line.split_once(' ').ok_or_else(invalid)?;
                let retired_at: i64 = at.parse().map_err(|_| invalid())?;
                retired.push(RetiredJwtSecret {
                    secret: SecretSlice::from(decode_base64("jwt.key.previous", key)?),
                    retired_at,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(SecretsError::Io { path, source }),
    }
    Ok(retired)
}

/// Replaces the data directory's signing key with a fresh one and keeps the old one, with the
/// time of retirement, for the grace period.
pub fn rotate_jwt_key_file(settings: &Settings) -> Result<(), SecretsError> {
    let current_path = settings.data_dir.join(JWT_KEY_FILE);
    let current = read_or_generate(&current_path, "jwt_secret")?;
    let retired_path = settings.data_dir.join(RETIRED_JWT_KEYS_FILE);
    let mut lines = match std::fs::read_to_string(&retired_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(SecretsError::Io {
                path: retired_path,
                source,
            });
        }
    };
    // Keys retired longer ago than the grace period are refused anyway: drop them.
    let now = chrono::Utc::now().timestamp();
    let grace = i64::try_from(settings.auth.previous_jwt_secret_grace_secs).unwrap_or(i64::MAX);
    lines = lines
        .lines()
        .filter(|l| {
            l.split_once(' ')
                .and_then(|(at, _)| at.parse::<i64>().ok())
                .is_some_and(|at| now.saturating_sub(at) < grace)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    lines.push_str(&format!("{now} {current}\n"));
    write_private(&retired_path, &lines)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    write_private(&current_path, &B64.encode(bytes))
}

pub fn parse_master_key(key: &'static str, encoded: &str) -> Result<MasterKey, SecretsError> {
    let bytes = decode_base64(key, encoded)?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| SecretsError::Invalid {
            key,
            problem: format!("must be base64 of exactly 32 bytes, got {}", bytes.len()),
        })?;
    Ok(SecretBox::new(Box::new(array)))
}

fn decode_base64(key: &'static str, value: &str) -> Result<Vec<u8>, SecretsError> {
    B64.decode(value.trim()).map_err(|_| SecretsError::Invalid {
        key,
        problem: "is not valid base64".into(),
    })
}

/// Writes `contents` to `path` with mode 0600, replacing it atomically.
pub fn write_private(path: &Path, contents: &str) -> Result<(), SecretsError> {
    let io = |source| SecretsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn encode_key(key: &[u8; 32]) -> String {
    B64.encode(key)
}

fn read_or_generate(path: &Path, key: &'static str) -> Result<String, SecretsError> {
    let io = |source| SecretsError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = B64.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(encoded.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::warn!(
                path = %path.display(),
                "generated a new {key}; keep this file safe and back it up (or set CATALOGD_{})",
                key.to_ascii_uppercase()
            );
            Ok(encoded)
        }
        // Another process generated it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(io),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        let env = [("CATALOGD_DATA_DIR".to_string(), dir.display().to_string())];
        Settings::load_from(None, env).unwrap()
    }

    #[test]
    fn generates_keys_once_with_private_permissions() {
        let dir = std::env::temp_dir().join(format!("catalogd-keys-{}", uuid::Uuid::new_v4()));
        let first = KeyMaterial::load_or_generate(&settings(&dir)).unwrap();
        let second = KeyMaterial::load_or_generate(&settings(&dir)).unwrap();
        assert_eq!(
            first.jwt_secret.expose_secret(),
            second.jwt_secret.expose_secret()
        );
        assert_eq!(
            first.master_key.expose_secret(),
            second.master_key.expose_secret()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["jwt.key", "master.key"] {
                let mode = std::fs::metadata(dir.join(name))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }
        assert!(!format!("{first:?}").contains(&B64.encode(first.master_key.expose_secret())));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_a_master_key_of_the_wrong_length() {
        let dir = std::env::temp_dir().join(format!("catalogd-keys-{}", uuid::Uuid::new_v4()));
        let env = [
            ("CATALOGD_MASTER_KEY".to_string(), B64.encode([1u8; 16])),
            ("CATALOGD_DATA_DIR".to_string(), dir.display().to_string()),
        ];
        let settings = Settings::load_from(None, env).unwrap();
        let err = KeyMaterial::load_or_generate(&settings).unwrap_err();
        assert!(err.to_string().contains("master_key"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
