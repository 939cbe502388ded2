//! # mp3converter
//!
//! A self-hosted video-to-MP3 conversion service. A client logs in (HTTP Basic, gets a JWT),
//! uploads a video, is emailed when the MP3 is ready, and downloads it.
//!
//! Inside, a node is a tree of supervised actors ([`actors`]): the gateway (HTTP), auth, a pool
//! of converters competing for jobs on a persistent mailbox, and the notifier. They reach every
//! backend through the traits in [`storage`], so the same actors run in every profile.
//!
//! ## Layout
//!
//! The shared foundations first, then what builds on them (the README's architecture section
//! has the rules of who may import whom; `architecture_tests` keeps them):
//!
//! - [`node`]: what one node is (configuration, stores, services, lifecycle, what its workers
//!   hold, its actors' names); [`config`]: the settings, each defined once; [`metrics`]: one
//!   module per subsystem; [`backoff`]: the one doubling backoff every retry uses.
//! - [`storage`]: the storage traits and every job rule ([`storage::jobs`]); the embedded
//!   profile's SQLite and file backends and the cluster profile's MySQL, GridFS, MongoDB and
//!   RabbitMQ backends.
//! - [`transcode`]: video-to-MP3 conversion with FFmpeg's libraries; [`audio_copy`]: the
//!   audio-only copy of an upload that the cluster profile stores; [`media_formats`]: the
//!   demuxers an upload may be opened with; [`sandbox`]: the worker process in which all of
//!   these run on user data, locked down, one per call; [`job_input`]: what of an upload the
//!   blob store keeps.
//! - [`actors`]: auth, converters, notifiers, dead-letter workers, sweeper, gauges;
//!   [`actors::worker`] is the queue consumer they share.
//! - [`http`]: the gateway actor and its state, the hyper server, routing, handlers, errors.
//! - [`cluster`]: the actor cluster across nodes; [`cluster::protocol`] every payload that
//!   crosses them; [`job_events`]: live job events, from the converters to the clients.
//! - [`app`]: building and running a node under its supervisor; [`cli`], [`telemetry`]: the
//!   command line, logging; [`client`]: the command line's client of the HTTP API (`login`,
//!   `convert`, `jobs`, `download`); [`prompt`]: asking for an email or a password.
//! - [`security`]: argon2id password hashes (checked on a bounded thread pool), HS256 session
//!   tokens, rate limits and owner-only files.
//! - [`mailer`], [`emails`], [`messages`], [`ids`], [`scratch`]: sending email, what the emails
//!   say, queue messages, ObjectId-form identifiers, temporary files.
//!
//! Two words: the **legacy design** (the "seed", the Python/Flask services we replace, whose
//! routes and queue messages we keep: [`messages::LegacyUpload`]) and the cluster's **seeds**
//! (`--cluster-seeds`, the peers a node dials first).
//!
//! ## The flow of one job
//!
//! `POST /upload` streams the video into the blob store, then records a `queued` job and
//! publishes `{video_fid, mp3_fid: null, username, job_id}` on the `video` queue, together. A
//! converter takes the job (a compare-and-set on its record), transcodes, stores the MP3 as
//! its attempt's own blob, marks the job `done` (another compare-and-set) and publishes the
//! notice on the `mp3` queue (`failures` for a failed job); the notifier claims, sends and
//! records the owner's email. `GET /download?fid=` streams the MP3 back. Every step is decided
//! from the job record ([`storage::jobs`]), so duplicates and crashes change nothing.

pub mod actors;
pub mod app;
#[cfg(test)]
mod architecture_tests;
pub mod audio_copy;
pub mod backoff;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod emails;
pub mod http;
pub mod ids;
pub mod job_events;
pub mod job_input;
pub mod mailer;
pub mod media_formats;
pub mod messages;
pub mod metrics;
pub mod node;
pub mod prompt;
pub mod sandbox;
pub mod scratch;
pub mod security;
pub mod storage;
pub mod telemetry;
#[cfg(test)]
mod test_media;
pub mod transcode;
