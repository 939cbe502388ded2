//! Credentials and their protection: password hashing ([`password`]), signed session tokens
//! ([`token`]) and owner-only files ([`private_files`]).

pub mod password;
pub mod private_files;
pub mod token;
