//! Passwords and API tokens.
//!
//! Passwords are hashed with argon2id (RFC 9106) at the `argon2` crate's
//! default cost (19 MiB, 2 passes): tens of milliseconds, which is why
//! verified logins are cached and never hashed per request. API tokens are
//! 256 random bits; being unguessable, they need no slow hash, and only their
//! SHA-256 is stored (as GitHub and PyPI do with theirs).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Every Sextant token starts with this, so that secret scanners and people
/// can recognise one.
pub const TOKEN_PREFIX: &str = "sxt_";

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The PHC string of `password` (salt and parameters included).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| format!("cannot hash the password: {err}"))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A PHC string of no password, verified against when a user does not
/// exist so that the answer takes as long as for a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("sextant-decoy-password").unwrap_or_default())
}

pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "Passwords must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// A new token: the secret shown once, its public id and the hash to store.
pub struct NewToken {
    pub secret: String,
    pub token_id: String,
    pub secret_sha256: String,
}

pub fn new_token() -> Result<NewToken, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| format!("no randomness available: {err}"))?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let secret = format!("{TOKEN_PREFIX}{body}");
    let mut id_bytes = [0u8; 6];
    getrandom::fill(&mut id_bytes).map_err(|err| format!("no randomness available: {err}"))?;
    let token_id = format!(
        "tok_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id_bytes)
    );
    Ok(NewToken {
        secret_sha256: sha256_hex(secret.as_bytes()),
        secret,
        token_id,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsE", &phc));
        assert!(!verify_password("correct horse", "not a phc string"));
        // Same password, new salt: a different hash.
        assert_ne!(phc, hash_password("correct horse").unwrap());
    }

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.token_id, b.token_id);
        assert_eq!(a.secret_sha256, sha256_hex(a.secret.as_bytes()));
        assert_eq!(a.secret_sha256.len(), 64);
    }
}
