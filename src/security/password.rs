//! Password hashing with argon2id at OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashes are PHC strings, so the parameters travel with each hash and can be raised later
//! without breaking existing accounts.
//!
//! Verification works in a caller's [`Scratch`] (the 19 MiB of argon2 memory), which a thread
//! keeps and reuses: allocating that much afresh for every check fragments the allocator's
//! heap, and a process then grows by about as much per login, however few run at once.

use std::sync::LazyLock;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP's argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password for storage.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("encoding salt: {e}"))?;
    let hash =
        hasher().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
    Ok(hash.to_string())
}

/// The working memory of password checks, grown to the largest stored hash's cost and reused.
#[derive(Default)]
pub struct Scratch(Vec<Block>);

/// True when `password` matches `stored`; a malformed stored hash never matches.
pub fn verify(scratch: &mut Scratch, password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| matches(scratch, password.as_bytes(), &parsed).unwrap_or(false))
}

/// What argon2's own `verify_password` does (same algorithm, version, parameters and salt as
/// the stored hash; outputs compared in constant time), in `scratch` instead of fresh memory.
fn matches(scratch: &mut Scratch, password: &[u8], stored: &PasswordHash<'_>) -> argon2::password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let params = Params::try_from(stored)?;
    if scratch.0.len() < params.block_count() {
        scratch.0.resize(params.block_count(), Block::default());
    }
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut scratch.0)?)
    })?;
    // `Output`'s equality is constant-time.
    Ok(computed == *expected)
}

/// Spends the time of one verification, for a login whose user does not exist: the answer
/// then takes as long as a wrong password, and does not tell which user names exist.
pub fn verify_nothing(scratch: &mut Scratch, password: &str) {
    static DUMMY: LazyLock<String> = LazyLock::new(|| hash("not a real password").unwrap_or_default());
    let _ = verify(scratch, password, &DUMMY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let scratch = &mut Scratch::default();
        assert!(verify(scratch, "correct horse", &stored));
        assert!(!verify(scratch, "wrong horse", &stored));
        assert!(!verify(scratch, "correct horse", "plaintext"));
        assert!(!verify(scratch, "correct horse", &stored.replace("$argon2id$", "$argon2i$")));
    }
}
