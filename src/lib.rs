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
//! - [`cli`], [`app`], [`config`], [`telemetry`]: the command line, building and running a node,
//!   layered configuration, logging; [`client`]: the command line's client of the HTTP API
//!   (`login`, `convert`, `jobs`, `download`); [`prompt`]: asking for an email or a password.
//! - [`cluster`]: the actor cluster across nodes (membership, what crosses nodes).
//! - [`actors`]: the supervisor and its children; [`actors::worker`] is the queue consumer that
//!   converters, the notifiers and the dead-letter workers share, [`actors::periodic`] the timer
//!   of the sweeper and the gauge refresher.
//! - [`http`]: the hyper server, routing, handlers and error responses.
//! - [`storage`]: the storage traits; the embedded profile's SQLite and file backends and the
//!   cluster profile's MySQL, GridFS, MongoDB and RabbitMQ backends.
//! - [`transcode`]: video-to-MP3 conversion with FFmpeg's libraries; [`audio_copy`]: the
//!   audio-only copy of an upload that the cluster profile stores; [`media_formats`]: the
//!   demuxers an upload may be opened with; [`sandbox`]: the worker process in which all of
//!   these run on user data, locked down, one per call.
//! - [`security`]: argon2id password hashes (checked on a bounded thread pool), HS256 session
//!   tokens, rate limits and owner-only files.
//! - [`job_events`]: live job events, from the converters to the clients following a job.
//! - [`mailer`], [`emails`], [`messages`], [`metrics`], [`ids`], [`scratch`]: sending email, what
//!   the emails say, queue messages, Prometheus metrics, ObjectId-form identifiers, temporary files.
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
