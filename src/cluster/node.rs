//! Starting this node's part of the actor cluster: the node server (listening for peers, with
//! the cookie and optional mutual TLS, whose handshakes [`super::listener`] completes), run
//! isolated so that every link is dialled by us.

use std::net::SocketAddr;

use anyhow::Context;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};

use tokio_util::sync::CancellationToken;

use super::dial::Dialer;
use super::protocol::Hello;
use super::{listener, tls};
use crate::config::{Config, Secret};

/// What the membership and agents of a cluster node need, made once at start.
#[derive(Clone)]
pub struct ClusterLink {
    pub server: ActorRef<NodeServerMessage>,
    pub dialer: Dialer,
    pub hello: Hello,
    pub seeds: Vec<String>,
}

/// Starts the node server if the configuration turns the actor cluster on; its port is served
/// until `stop`.
pub async fn start(config: &Config, stop: &CancellationToken) -> anyhow::Result<Option<ClusterLink>> {
    let Some(listen) = config.cluster.cluster_listen else { return Ok(None) };
    let cookie = Secret::from_env_or_file("MP3C_CLUSTER_COOKIE", config.cluster.cluster_cookie_file.as_deref())?
        .context("the actor cluster needs a cookie: MP3C_CLUSTER_COOKIE or --cluster-cookie-file")?;
    let advertise = advertise(config, listen)?;
    let host = advertise.rsplit_once(':').map_or(advertise.as_str(), |(host, _)| host).to_owned();
    let tls = match (&config.cluster.cluster_tls_cert, &config.cluster.cluster_tls_key, &config.cluster.cluster_tls_ca)
    {
        (Some(cert), Some(key), Some(ca)) => Some(tls::load(cert, key, ca)?),
        _ => None,
    };
    // Under TLS the cluster port is ours (handshakes with a time limit); the library's own
    // listener is then left on a loopback port nobody is told of.
    let (library_listen, encryption) = match &tls {
        Some(tls) => (SocketAddr::from(([127, 0, 0, 1], 0)), IncomingEncryptionMode::Tls(tls.acceptor.clone())),
        None => (listen, IncomingEncryptionMode::Raw),
    };
    let node = NodeServer::new(
        library_listen.port(),
        cookie.expose().to_owned(),
        config.server.node_name.clone(),
        host,
        Some(encryption),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(library_listen.ip());
    let (server, _) = Actor::spawn(None, node, ()).await.context("starting the cluster's node server")?;
    let dialer = match tls {
        Some(tls) => {
            // The name this node gives peers carries the real cluster port, not the loopback one.
            server
                .cast(NodeServerMessage::PortChanged { port: listen.port() })
                .map_err(|e| anyhow::anyhow!("telling the node server its port: {e}"))?;
            listener::serve_tls(listen, tls.acceptor, server.clone(), stop.clone()).await?;
            Dialer::Tls(tls.connector)
        }
        None => Dialer::Plain,
    };
    let hello = Hello {
        node: config.server.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: super::protocol_version(config),
        advertise,
        roles: config.server.role_names(),
        peers: Vec::new(),
    };
    tracing::info!(%listen, advertise = %hello.advertise, tls = config.cluster.cluster_tls_ca.is_some(), "actor cluster listening");
    Ok(Some(ClusterLink { server, dialer, hello, seeds: config.cluster.cluster_seeds.clone() }))
}

/// `--cluster-advertise`, else this host's name and the listen port.
fn advertise(config: &Config, listen: SocketAddr) -> anyhow::Result<String> {
    if let Some(advertise) = &config.cluster.cluster_advertise {
        return Ok(advertise.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").context("reading this host's name")?;
    Ok(format!("{}:{}", host.trim(), listen.port()))
}
