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
//!   layered configuration, logging.
//! - [`actors`]: the supervisor and its children; [`actors::worker`] is the queue consumer that
//!   converters, the notifier and the dead-letter worker share.
//! - [`http`]: the hyper server, routing, handlers and error responses.
//! - [`storage`]: the storage traits; the embedded profile's SQLite and file backends and the
//!   cluster profile's MySQL, GridFS, MongoDB and RabbitMQ backends.
//! - [`transcode`]: in-process video-to-MP3 conversion with FFmpeg's libraries.
//! - [`security`]: argon2id password hashes (checked on a bounded thread pool), HS256 session
//!   tokens, rate limits and owner-only files.
//! - [`mailer`], [`messages`], [`metrics`], [`ids`]: email, queue messages, Prometheus
//!   metrics, ObjectId-form identifiers.
//!
//! ## The flow of one job
//!
//! `POST /upload` streams the video into the blob store, records a `queued` job and publishes
//! `{video_fid, mp3_fid: null, username, job_id}` on the `video` queue. A converter claims it,
//! transcodes, stores the MP3, publishes the result on the `mp3` queue and marks the job
//! `done`; the notifier emails the owner once. `GET /download?fid=` streams the MP3 back.

pub mod actors;
pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod ids;
pub mod mailer;
pub mod messages;
pub mod metrics;
pub mod security;
pub mod storage;
pub mod telemetry;
pub mod transcode;
