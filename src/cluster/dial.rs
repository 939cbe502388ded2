//! Dialing a peer: plain TCP, or TLS with this node's certificate when the cluster uses mutual
//! TLS. Every dial is ours (the node server runs isolated), so that links to peers learnt from
//! other peers are TLS too: the library's own transitive dialing would not be.

use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// How long opening a connection may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub enum Dialer {
    Plain,
    Tls(TlsConnector),
}

impl Dialer {
    /// Opens a session with the node at `address`; `host` is the name its certificate must
    /// carry. Ok once the connection is open: whether the peer lets us in shows later, in the
    /// node server's session events.
    pub async fn dial(
        &self,
        server: &ActorRef<NodeServerMessage>,
        address: SocketAddr,
        host: &str,
    ) -> anyhow::Result<()> {
        let dial = async {
            match self {
                Dialer::Plain => ractor_cluster::client_connect(server, address).await,
                Dialer::Tls(connector) => {
                    let name = ServerName::try_from(host.to_owned())
                        .map_err(|e| anyhow::anyhow!("{host:?} cannot name a TLS peer: {e}"))?;
                    ractor_cluster::client_connect_enc(server, address, connector.clone(), name).await
                }
            }
            .map_err(|e| anyhow::anyhow!("{e}"))
        };
        tokio::time::timeout(DIAL_TIMEOUT, dial).await.map_err(|_| anyhow::anyhow!("timed out"))?
    }
}
