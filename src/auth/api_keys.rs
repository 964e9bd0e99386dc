//! API keys: `cmk_<prefix>_<secret>`. Only the prefix and a SHA-256 of the whole key are stored.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 40;

pub struct NewKey {
    /// Shown once, in the creation answer.
    pub key: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    // The prefix is lowercase so it reads well in lists; the secret uses the full alphabet.
    let prefix: String = (0..PREFIX_LEN)
        .map(|_| {
            let c = rng.sample(Alphanumeric) as char;
            c.to_ascii_lowercase()
        })
        .collect();
    let secret: String = (0..SECRET_LEN)
        .map(|_| rng.sample(Alphanumeric) as char)
        .collect();
    let key = format!("cmk_{prefix}_{secret}");
    let hash = hash(&key);
    NewKey { key, prefix, hash }
}

pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Splits a presented key into its prefix, or `None` if it is not shaped like one of ours.
pub fn parse_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("cmk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_LEN
        && secret.len() == SECRET_LEN
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_prefix() {
        let key = generate();
        assert_eq!(parse_prefix(&key.key), Some(key.prefix.as_str()));
        assert_eq!(hash(&key.key), key.hash);
        assert!(!key.key.contains(&hex::encode(&key.hash)));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "cmk_",
            "cmk_abc_def",
            "xyz_abcdefgh_",
            "cmk_abcdefgh",
            "cmk_abcdéfgh_x",
        ] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_presented_string_parses_without_panicking(key in ".{0,80}") {
            if let Some(prefix) = parse_prefix(&key) {
                proptest::prop_assert_eq!(prefix.len(), PREFIX_LEN);
                proptest::prop_assert!(key.starts_with("cmk_"));
            }
        }

        #[test]
        fn key_shaped_strings_parse_to_their_prefix(
            prefix in "[a-z0-9]{8}",
            secret in "[A-Za-z0-9]{40}",
        ) {
            let key = format!("cmk_{prefix}_{secret}");
            proptest::prop_assert_eq!(parse_prefix(&key), Some(prefix.as_str()));
            // One character more or less is not ours.
            let longer = format!("{key}x");
            proptest::prop_assert_eq!(parse_prefix(&longer), None);
            proptest::prop_assert_eq!(parse_prefix(&key[..key.len() - 1]), None);
        }
    }
}
