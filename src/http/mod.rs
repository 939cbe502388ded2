//! The HTTP API on hyper 1: the legacy design's routes (`/login`, `/validate`, `/upload`, `/download`)
//! plus job status, health and metrics, and the web page and OpenAPI document that describe
//! and use them ([`handlers::web`]).
//!
//! - [`serve`]: the accept loop, with graceful draining on stop, on the API's address and on
//!   the metrics address when there is one ([`serve_all`]);
//! - [`routes`]: the route table, which handler a request goes to, and the label it is
//!   measured under;
//! - [`handlers`]: one module per group of routes;
//! - [`gateway`]: the actor that owns the server, and the gateway's own state ([`Gateway`]);
//! - [`error`], [`response`], [`credentials`], [`body`]: what the handlers share;
//! - [`sessions`]: whether a token's session still stands;
//! - [`malformed`]: JSON answers to requests hyper cannot parse, like every other error;
//! - [`client_address`]: who the client is, behind trusted reverse proxies;
//! - [`limits`], [`stall`], [`preamble`]: bounds on the work clients can cause (login rates,
//!   uploads in progress, an upload's minimum transfer rate, what a multipart body may send
//!   besides its file);
//!
//! A panic inside a handler is caught and answered with a 500; it never takes the process down.

pub mod body;
pub mod client_address;
pub mod credentials;
pub mod error;
pub mod gateway;
pub mod handlers;
pub mod limits;
pub mod malformed;
pub mod preamble;
pub mod response;
pub mod routes;
pub mod sessions;
pub mod stall;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tracing::Instrument;

use crate::config::Role;
use crate::metrics::ActorMetrics;
use crate::node::Node;
use client_address::ClientAddress;
use error::ApiError;
pub use gateway::Gateway;
use response::Response;

/// Largest request headers accepted, all names and values together; past it the answer is 431.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The connection's read buffer, which also bounds what a request head may occupy in memory.
const MAX_BUFFER_BYTES: usize = 256 * 1024;
/// A client must finish sending its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The node's listening sockets, bound once by the application so that a restarted gateway
/// serves on the same addresses.
#[derive(Clone)]
pub struct Listeners {
    /// The API, the web page and operations.
    pub api: Arc<TcpListener>,
    /// `/metrics` alone, when `--metrics-listen` puts it on an address of its own (then the
    /// API's address does not serve it).
    pub metrics: Option<Arc<TcpListener>>,
}

/// Which of the node's listeners a server answers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Api,
    /// `/metrics` only.
    Metrics,
}

/// Serves every listener of `listeners` until `stop` (see [`serve`]); ends as soon as one
/// server does.
pub async fn serve_all(
    listeners: Listeners,
    node: Arc<Node>,
    gateway: Arc<Gateway>,
    metrics: ActorMetrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let server = Server { node, gateway, metrics, stop };
    let api = server.clone().serve(listeners.api, Surface::Api);
    match listeners.metrics {
        Some(listener) => tokio::try_join!(api, server.serve(listener, Surface::Metrics)).map(drop),
        None => api.await,
    }
}

/// The server's stop signal (cancelled at node shutdown and when its gateway stops), put in
/// every request's extensions: a response that would run on (an event stream) ends with it, so
/// that draining the server never waits for it.
#[derive(Clone, Debug)]
pub struct ServerStop(pub CancellationToken);

/// What every connection of a gateway's servers is answered with.
#[derive(Clone)]
struct Server {
    node: Arc<Node>,
    gateway: Arc<Gateway>,
    /// The gateway actor's handles: each request is one of its messages.
    metrics: ActorMetrics,
    /// Cancelled at node shutdown and when the gateway stops.
    stop: CancellationToken,
}

impl Server {
    /// Accepts connections on `listener` until the stop, then waits (up to the shutdown grace
    /// period) for the requests in flight.
    async fn serve(self, listener: Arc<TcpListener>, surface: Surface) -> anyhow::Result<()> {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Running out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = self.stop.cancelled() => break,
            };
            // A trusted proxy carries many clients; any other peer is one, with a cap on its
            // connections.
            let limits = &self.gateway.limits;
            let slot = match self.gateway.proxies.trusts(peer.ip()) {
                true => None,
                false => match limits.connections.take(peer.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        tokio::spawn(refuse_connection(stream, limits.connections.limit()));
                        continue;
                    }
                },
            };
            let server = self.clone();
            let service = service_fn(move |mut request: hyper::Request<Incoming>| {
                let client = server.gateway.proxies.client_of(peer, request.headers());
                request.extensions_mut().insert(client);
                request.extensions_mut().insert(ServerStop(server.stop.clone()));
                server.clone().answer(request, surface)
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_BUFFER_BYTES)
                .serve_connection(TokioIo::new(malformed::JsonParseErrors::new(stream)), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
                drop(slot);
            });
        }
        drop(listener);
        if tokio::time::timeout(self.node.config.server.shutdown_grace(), graceful.shutdown()).await.is_err() {
            tracing::warn!("requests still running after the grace period");
        }
        Ok(())
    }

    /// Answers one request, measuring it and turning errors and panics into responses.
    async fn answer(self, request: hyper::Request<Incoming>, surface: Surface) -> Result<Response, Infallible> {
        let started = Instant::now();
        let _handling = self.metrics.begin();
        let client = request.extensions().get::<ClientAddress>().map(|ClientAddress(address)| address.to_string());
        let span = tracing::info_span!("request", client = %client.unwrap_or_default(), method = %request.method());
        let config = &self.node.config;
        let api = config.server.has_role(Role::Gateway);
        let route = match (
            surface,
            routes::Route::of(request.method(), request.uri().path(), api, config.faults.fault_hooks),
        ) {
            (Surface::Metrics, routes::Route::Metrics) => routes::Route::Metrics,
            (Surface::Metrics, _) => routes::Route::Unknown,
            (Surface::Api, routes::Route::Metrics) if config.server.metrics_listen.is_some() => routes::Route::Unknown,
            (Surface::Api, route) => route,
        };
        let handled = if header_bytes(&request) > MAX_HEADER_BYTES {
            Ok(Err(ApiError::new(
                hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("request headers may take at most {MAX_HEADER_BYTES} bytes"),
            )))
        } else {
            let dispatched = routes::dispatch(&self.node, &self.gateway, route, request);
            AssertUnwindSafe(dispatched).catch_unwind().instrument(span).await
        };
        let response = match handled {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => error.into_response(),
            Err(panic) => {
                self.metrics.failed();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                ApiError::internal(format!("handler panicked: {}", what.unwrap_or_default())).into_response()
            }
        };
        self.node.services.metrics.http.request(route.label(), response.status(), started);
        Ok(response)
    }
}

/// Answers a connection over its address's cap with 429 `too_many_connections` (whatever it
/// asked) and closes it, within a few seconds however slowly the client reads.
async fn refuse_connection(mut stream: tokio::net::TcpStream, limit: usize) {
    use tokio::io::AsyncWriteExt;
    let message = format!("at most {limit} connections may be open at once from one address");
    let body = format!("{}\n", serde_json::json!({ "error": { "code": "too_many_connections", "message": message } }));
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 5\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

fn header_bytes(request: &hyper::Request<Incoming>) -> usize {
    request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}
