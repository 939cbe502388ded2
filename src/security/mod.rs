//! Credentials and their protection: password hashing ([`password`]) and its bounded thread
//! pool ([`password_checks`]), signed session tokens ([`token`]; whether their sessions still
//! stand is the gateway's: [`crate::http::sessions`]), rate limits ([`rate_limit`]) and
//! owner-only files ([`private_files`]).

pub mod password;
pub mod password_checks;
pub mod private_files;
pub mod rate_limit;
pub mod token;
