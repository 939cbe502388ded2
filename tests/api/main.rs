//! Black-box tests: each starts the real `mp3converter` binary on a free port with its own data
//! folder, and drives it over HTTP as a client would.

mod actor_cluster;
mod auth;
mod bad_input;
mod cluster;
mod convert;
mod events;
mod faults;
mod flow;
mod formats;
mod fuzz;
mod helpers;
mod hostile;
mod limits;
mod memory;
mod monitoring;
mod openapi;
mod proxy;
mod resilience;
#[allow(dead_code)] // shared with the backend tests; not every helper is used here
#[path = "../support/servers.rs"]
mod servers;
mod stored_media;
mod tools;
mod web_page;
