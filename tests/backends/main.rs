//! Integration tests of each cluster-profile backend against a real server: MariaDB, a
//! MongoDB-wire server (SecantusDB) and RabbitMQ, which `scripts/test` starts on 127.0.0.1.
//! Every test gets its own database or virtual host, so tests never see each other's data.

mod gridfs;
mod mongo_jobs;
mod mysql;
mod rabbitmq;
#[allow(dead_code)] // shared with the API tests; not every helper is used here
#[path = "../support/servers.rs"]
mod servers;
