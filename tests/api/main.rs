//! Black-box tests: each starts the real `mp3converter` binary on a free port with its own data
//! folder, and drives it over HTTP as a client would.

mod auth;
mod bad_input;
mod flow;
mod helpers;
mod resilience;
