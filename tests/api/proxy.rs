//! A proxy in front of a test service that changes one thing in what it passes on, to show
//! how a client copes with a server that behaves otherwise (older, or stalling).

use crate::helpers::TestApp;

/// What a [`Proxy`] changes in the answers it passes on.
#[derive(Clone, Copy, PartialEq)]
pub enum Twist {
    /// No job-event stream: `/jobs/{id}/events` answered with this status (404 as an older
    /// server, 503 with `Retry-After` as a server with too many followers).
    RefusedEvents(hyper::StatusCode),
    /// Downloads send their first bytes, then nothing more.
    StalledDownloads,
}

/// A proxy in front of `app` that passes requests through, but for its [`Twist`]. It notes
/// every request.
pub struct Proxy {
    address: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start(app: &TestApp, twist: Twist) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (upstream, log) = (app.url(""), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, log) = (upstream.clone(), log.clone());
                let service =
                    hyper::service::service_fn(move |request| pass(upstream.clone(), log.clone(), twist, request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        Proxy { address, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub fn count(&self, predicate: impl Fn(&str) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|line| predicate(line)).count()
    }
}

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

async fn pass(
    upstream: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    twist: Twist,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<ProxyBody>, std::convert::Infallible> {
    use futures_util::{StreamExt, TryStreamExt};
    use http_body_util::{BodyExt, StreamBody};
    let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    log.lock().unwrap().push(format!("{} {path}", request.method()));
    if let Twist::RefusedEvents(status) = twist
        && request.uri().path().ends_with("/events")
    {
        let body = format!("{{\"error\":{{\"code\":\"refused\",\"message\":\"{status}\"}}}}");
        let body = http_body_util::Full::new(bytes::Bytes::from(body)).map_err(|never| match never {}).boxed();
        return Ok(hyper::Response::builder().status(status).header("retry-after", "1").body(body).unwrap());
    }
    let (parts, body) = request.into_parts();
    let mut forwarded = reqwest::Client::new().request(parts.method, format!("{upstream}{path}"));
    for (name, value) in parts.headers.iter().filter(|(name, _)| *name != hyper::header::HOST) {
        forwarded = forwarded.header(name, value);
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let answer = forwarded.body(body).send().await.unwrap();
    let mut response = hyper::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let stall = twist == Twist::StalledDownloads && path.starts_with("/download");
    let chunks = answer.bytes_stream().take(if stall { 1 } else { usize::MAX });
    let chunks = chunks.chain(futures_util::stream::pending().take(usize::from(stall)));
    let frames = chunks.map_ok(hyper::body::Frame::data).map_err(std::io::Error::other);
    Ok(response.body(BodyExt::boxed(StreamBody::new(frames))).unwrap())
}
