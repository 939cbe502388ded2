//! The cluster port under mutual TLS: our own accept loop, handing each finished TLS session to
//! the node server.
//!
//! The library's listener performs each TLS handshake inside its accept loop, with no time
//! limit, so one idle connection would stop every later peer from joining. Here each handshake
//! runs in a task of its own, within [`HANDSHAKE_TIMEOUT`], and at most
//! [`MAX_PENDING_HANDSHAKES`] at once (past it a new connection is closed at once): an idle or
//! slow peer holds one socket for a few seconds and nothing else. (Without TLS the library's
//! own listener does no handshake in its loop, and is used as it is.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a peer may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once; more connections are closed as they come.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// Listens on `listen` until `stop`, handing every peer that completes the handshake to
/// `server`.
pub async fn serve_tls(
    listen: SocketAddr,
    acceptor: TlsAcceptor,
    server: ActorRef<NodeServerMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding the cluster port {listen}"))?;
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "the cluster port failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(place) = pending.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many cluster handshakes in progress; a connection is closed");
                continue;
            };
            let (acceptor, server) = (acceptor.clone(), server.clone());
            tokio::spawn(async move {
                hand_over(stream, peer, &acceptor, &server).await;
                drop(place);
            });
        }
    });
    Ok(())
}

/// Finishes the TLS handshake of `stream` in time and gives the session to the node server.
async fn hand_over(stream: TcpStream, peer: SocketAddr, acceptor: &TlsAcceptor, server: &ActorRef<NodeServerMessage>) {
    let Ok(local) = stream.local_addr() else { return };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let stream = Box::new(NetworkStream::TlsServer { peer_addr: peer, local_addr: local, stream });
            if server.cast(NodeServerMessage::ConnectionOpened { stream, is_server: true }).is_err() {
                tracing::warn!(%peer, "the node server is gone; a cluster connection is dropped");
            }
        }
        Ok(Err(error)) => tracing::warn!(%peer, %error, "a cluster peer failed the TLS handshake"),
        Err(_) => tracing::warn!(%peer, "a cluster peer did not finish its TLS handshake in time"),
    }
}
