//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps,
//! six digits — what every authenticator app speaks — and single-use recovery codes.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Codes from one step before or after now are accepted: clocks drift and people type slowly.
pub const WINDOW_STEPS: i64 = 1;
pub const SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;

/// A fresh random shared secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// HOTP (RFC 4226 §5.3) of `counter`.
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(DIGITS)
}

/// The time step a Unix time falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The six-digit code for a Unix time, zero-padded.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step_at(unix_secs).max(0) as u64),
        width = DIGITS as usize
    )
}

/// The step `code` was made for, if it matches one within the window around `unix_secs` and is
/// later than `last_used_step` (a code is good once).
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_secs: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut matched = None;
    // Every candidate is compared, so timing does not tell which step matched.
    for step in (now - WINDOW_STEPS)..=(now + WINDOW_STEPS) {
        if step < 0 {
            continue;
        }
        let expected = format!(
            "{:0width$}",
            hotp(secret, step as u64),
            width = DIGITS as usize
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    matched.filter(|step| last_used_step.is_none_or(|last| *step > last))
}

/// RFC 4648 base32 without padding, as authenticator apps expect the secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(secret: &[u8], account: &str, issuer: &str) -> String {
    let label = format!("{issuer}:{account}");
    let label = percent_encoding::utf8_percent_encode(&label, percent_encoding::NON_ALPHANUMERIC);
    let issuer = percent_encoding::utf8_percent_encode(issuer, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{label}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(secret)
    )
}

/// New recovery codes (`xxxxx-xxxxx`, lowercase base32) and their hashes.
pub fn new_recovery_codes() -> Vec<(String, Vec<u8>)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 7];
            rand::rng().fill_bytes(&mut bytes);
            let raw = base32(&bytes).to_ascii_lowercase();
            let code = format!("{}-{}", &raw[..5], &raw[5..10]);
            let hash = hash_recovery_code(&code);
            (code, hash)
        })
        .collect()
}

/// Recovery codes are compared without case, spaces or dashes.
pub fn hash_recovery_code(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(format!("catalogd recovery code\0{normal}").as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 rows (8-digit codes; six digits are their last six).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        for (time, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, time), eight_digits[2..], "at {time}");
        }
    }

    #[test]
    fn matches_the_rfc_4226_hotp_values() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64), *value);
        }
    }

    #[test]
    fn accepts_the_neighbouring_steps_once_each() {
        let now = 1_700_000_000;
        let secret = new_secret();
        let previous = code_at(&secret, now - STEP_SECS);
        let current = code_at(&secret, now);
        let next = code_at(&secret, now + STEP_SECS);
        assert_eq!(
            verify(&secret, &previous, now, None),
            Some(step_at(now) - 1)
        );
        assert_eq!(verify(&secret, &current, now, None), Some(step_at(now)));
        assert_eq!(verify(&secret, &next, now, None), Some(step_at(now) + 1));
        // Replay: a step at or before the last used one is refused.
        assert_eq!(verify(&secret, &current, now, Some(step_at(now))), None);
        assert_eq!(verify(&secret, &previous, now, Some(step_at(now))), None);
        let far = code_at(&secret, now - 5 * STEP_SECS);
        assert_eq!(verify(&secret, &far, now, None), None);
    }

    #[test]
    fn refuses_malformed_codes() {
        let secret = new_secret();
        for code in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123 456"] {
            assert_eq!(verify(&secret, code, 1_700_000_000, None), None, "{code:?}");
        }
    }

    #[test]
    fn base32_follows_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_about_format() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(
            &hash_recovery_code(&code.to_uppercase().replace('-', " ")),
            hash
        );
    }
}
