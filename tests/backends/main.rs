//! Integration tests of the storage backends: one contract suite per storage trait, run against
//! every backend of it ([`contract`]: SQLite and files; MariaDB, a MongoDB-wire server
//! (SecantusDB) with GridFS, and RabbitMQ, which `scripts/test` starts on 127.0.0.1), and what
//! only one backend promises (GridFS's layout, RabbitMQ's fair dispatch, MariaDB's migrations).
//! Every test gets its own database, virtual host or ids, so tests never see each other's data.

mod contract;
mod gridfs;
mod mysql;
mod rabbitmq;
#[allow(dead_code)] // shared with the API tests; not every helper is used here
#[path = "../support/servers.rs"]
mod servers;
