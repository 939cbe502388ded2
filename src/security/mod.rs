//! Credentials: password hashing ([`password`]) and signed session tokens ([`token`]).

pub mod password;
pub mod token;
