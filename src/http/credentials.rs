//! Reading credentials from request headers: HTTP Basic for login, Bearer tokens elsewhere.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;

use super::error::ApiError;
use super::sessions::{SessionError, Sessions};
use crate::security::token::{Claims, TokenError, TokenKeys};

/// The user name and password of an `Authorization: Basic` header.
pub fn basic(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let missing = || ApiError::unauthorized("Basic", "missing_credentials", "HTTP Basic credentials are required");
    let encoded = scheme_value(headers, "Basic").ok_or_else(missing)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| missing())?;
    let decoded = String::from_utf8(decoded).map_err(|_| missing())?;
    let (user, password) = decoded.split_once(':').ok_or_else(missing)?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Who a request's bearer is: the keys that check a token's signature, and the check that its
/// session still stands.
pub struct Identity {
    pub tokens: TokenKeys,
    pub sessions: Sessions,
}

impl Identity {
    /// The claims of a valid `Authorization: Bearer` token whose session still stands: the
    /// signature checked locally with the shared key, the session against the user store
    /// (through a short cache).
    pub async fn bearer(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let token = scheme_value(headers, "Bearer")
            .ok_or_else(|| ApiError::unauthorized("Bearer", "missing_token", "a Bearer token is required"))?;
        let claims = self.tokens.validate(token).map_err(|error| match error {
            TokenError::Expired => {
                ApiError::unauthorized("Bearer", "token_expired", "the token has expired; log in again")
            }
            TokenError::Invalid => ApiError::unauthorized("Bearer", "invalid_token", "the token is not valid"),
        })?;
        match self.sessions.check(&claims).await {
            Ok(()) => Ok(claims),
            Err(SessionError::Ended) => {
                Err(ApiError::unauthorized("Bearer", "session_ended", "the session has ended; log in again"))
            }
            Err(SessionError::Unavailable(error)) => Err(error.into()),
        }
    }

    /// The claims of an admin's bearer token; 403 for anyone else.
    pub async fn admin(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let claims = self.bearer(headers).await?;
        match claims.admin {
            true => Ok(claims),
            false => Err(ApiError::new(hyper::StatusCode::FORBIDDEN, "forbidden", "admins only")),
        }
    }
}

/// The token of an `Authorization: Bearer` header, unchecked.
pub fn bearer_value(headers: &HeaderMap) -> Option<&str> {
    scheme_value(headers, "Bearer")
}

/// The value after `scheme ` in the Authorization header (the scheme is case-insensitive).
fn scheme_value<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn reads_basic_credentials_with_colons_in_the_password() {
        let encoded = STANDARD.encode("a@b.c:pa:ss");
        assert_eq!(basic(&with_auth(&format!("Basic {encoded}"))).unwrap(), ("a@b.c".into(), "pa:ss".into()));
        assert_eq!(basic(&with_auth(&format!("basic {encoded}"))).unwrap().0, "a@b.c");
    }

    #[test]
    fn refuses_missing_or_malformed_basic_credentials() {
        for value in ["Basic", "Basic !!!", "Bearer abc", &format!("Basic {}", STANDARD.encode("nocolon"))] {
            let error = basic(&with_auth(value)).unwrap_err();
            assert_eq!(error.status, hyper::StatusCode::UNAUTHORIZED, "{value}");
        }
        assert!(basic(&HeaderMap::new()).is_err());
    }
}
