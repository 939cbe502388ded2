//! Session tokens: HS256 JWTs carrying the legacy design's claims (`username`, `exp`, `iat`, `admin`),
//! and the session they belong to (`sid`, `gen`), which [`crate::http::sessions`] checks so
//! that a session can end before its token expires.
//!
//! The algorithm is pinned on validation: a token signed any other way, or not signed at all
//! (`alg: none`), is refused whatever its header claims.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub username: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// True only for admin users (the legacy design made everyone admin).
    pub admin: bool,
    /// The session's id (random), by which it can be ended alone. Empty in a token another
    /// issuer made (the legacy design's auth service), which only a new generation ends.
    #[serde(default, rename = "sid", skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    /// The user's session generation when the token was issued.
    #[serde(default, rename = "gen")]
    pub session_generation: u64,
}

/// A freshly issued token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// Shortest signing key accepted: an HS256 key shorter than its 32-byte hash is weaker than the
/// hash, and a short one can be guessed offline from any token it signed.
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the key is {0} bytes long; it must be at least {MIN_KEY_BYTES}")]
pub struct KeyTooShort(pub usize);

/// Issues and validates tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, KeyTooShort> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// A token for a new session of `username`, in the user's current session `generation`.
    pub fn issue(&self, username: &str, admin: bool, generation: u64) -> anyhow::Result<IssuedToken> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            username: username.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            admin,
            session_id: new_session_id()?,
            session_generation: generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { token, expires_in: self.ttl.as_secs() })
    }

    pub fn validate(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// 128 random bits, in hex.
fn new_session_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a session id: {e}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"a test secret of at least 32 bytes", Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn a_key_shorter_than_the_hash_is_refused() {
        let short = [7u8; MIN_KEY_BYTES - 1];
        assert_eq!(TokenKeys::new(&short, Duration::from_secs(60)).err(), Some(KeyTooShort(MIN_KEY_BYTES - 1)));
        assert!(TokenKeys::new(&[7u8; MIN_KEY_BYTES], Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn an_issued_token_validates_to_its_claims() {
        let issued = keys().issue("a@b.c", true, 7).unwrap();
        let claims = keys().validate(&issued.token).unwrap();
        assert_eq!(claims.username, "a@b.c");
        assert!(claims.admin);
        assert_eq!((claims.session_id.len(), claims.session_generation), (32, 7));
        assert_ne!(
            keys().validate(&keys().issue("a@b.c", true, 7).unwrap().token).unwrap().session_id,
            claims.session_id
        );
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn wrong_key_tampered_and_unsigned_tokens_are_refused() {
        let token = keys().issue("a@b.c", false, 0).unwrap().token;
        let other = TokenKeys::new(b"another secret of at least 32 bytes", Duration::from_secs(60)).unwrap();
        assert_eq!(other.validate(&token), Err(TokenError::Invalid));

        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"username":"a@b.c","exp":9999999999,"iat":0,"admin":true}"#);
        let tampered = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(keys().validate(&tampered), Err(TokenError::Invalid));

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(keys().validate(&format!("{none_header}.{forged_claims}.")), Err(TokenError::Invalid));
        assert_eq!(keys().validate("not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_says_so() {
        let keys = keys();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            username: "a@b.c".into(),
            iat: now - 120,
            exp: now - 60,
            admin: false,
            session_id: String::new(),
            session_generation: 0,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.validate(&token), Err(TokenError::Expired));
    }
}
