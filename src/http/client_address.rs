//! Who the client is: the TCP peer, unless the peer is a reverse proxy this node trusts
//! (`--trusted-proxies`), in which case the proxy's forwarding header names the client.
//!
//! Only one header is read, the one the operator's proxies maintain
//! (`--client-address-header`: `X-Forwarded-For`, the default, or RFC 7239 `Forwarded`): a
//! proxy appends to its own header and passes any other through untouched, so reading the
//! other one would let a client choose its address. The header's list is read from the right
//! (the hop nearest to us) past every trusted proxy; the first address that is not one is the
//! client. Whatever lies left of it was written by the client and is never believed. A peer
//! that is not trusted is the client, whatever it sends.
//!
//! The address found is what every limit, log line and metric of the request uses
//! ([`ClientAddress`], in each request's extensions).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hyper::HeaderMap;
use ipnet::IpNet;

use crate::config::ForwardingHeader;

/// The client of a request, as [`client_of`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The proxies whose forwarding header is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardingHeader,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, header: ForwardingHeader) -> Self {
        TrustedProxies { networks, header }
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|network| network.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client_of(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddress {
        let mut client = peer.ip().to_canonical();
        if !self.trusts(client) {
            return ClientAddress(client);
        }
        for hop in self.hops(headers).into_iter().rev() {
            // An entry a trusted proxy would not have written: the hop nearest to it (the
            // last trusted proxy) is all that is known of the client.
            let Some(address) = hop else { break };
            client = address.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        ClientAddress(client)
    }

    /// The header's addresses, left (farthest) to right (nearest); `None` for an entry that is
    /// not an address (`unknown`, an obfuscated name, garbage).
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let name = match self.header {
            ForwardingHeader::XForwardedFor => "x-forwarded-for",
            ForwardingHeader::Forwarded => "forwarded",
        };
        let entries = headers.get_all(name).iter().flat_map(|value| value.to_str().unwrap_or("?").split(','));
        match self.header {
            ForwardingHeader::XForwardedFor => entries.map(|entry| parse_node(entry.trim())).collect(),
            ForwardingHeader::Forwarded => entries.map(forwarded_for).collect(),
        }
    }
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))?
    })
}

/// An address with or without a port: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(node) {
        return Some(address);
    }
    if let Ok(socket) = SocketAddr::from_str(node) {
        return Some(socket.ip());
    }
    node.strip_prefix('[')?.strip_suffix(']').and_then(|inner| IpAddr::from_str(inner).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const PROXY: &str = "10.0.0.5:40000";

    fn proxies(header: ForwardingHeader) -> TrustedProxies {
        TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()], header)
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn client(peer: &str, name: &'static str, values: &[&str]) -> String {
        let header = if name == "forwarded" { ForwardingHeader::Forwarded } else { ForwardingHeader::XForwardedFor };
        proxies(header).client_of(peer.parse().unwrap(), &headers(name, values)).0.to_string()
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client_whatever_it_sends() {
        assert_eq!(client("192.0.2.7:5000", "x-forwarded-for", &["203.0.113.9"]), "192.0.2.7");
        assert_eq!(client("192.0.2.7:5000", "forwarded", &["for=203.0.113.9"]), "192.0.2.7");
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_address() {
        // The client forged its own entry; the proxy appended the address it saw.
        assert_eq!(client(PROXY, "x-forwarded-for", &["6.6.6.6, 198.51.100.2"]), "198.51.100.2");
        // Two proxies in a row, and the header split over two lines.
        assert_eq!(client(PROXY, "x-forwarded-for", &["6.6.6.6, 198.51.100.2", "10.1.2.3"]), "198.51.100.2");
        assert_eq!(client(PROXY, "x-forwarded-for", &["198.51.100.2:5555"]), "198.51.100.2");
        assert_eq!(client(PROXY, "x-forwarded-for", &["[2001:db8::2]:443"]), "2001:db8::2");
        assert_eq!(client("[::ffff:10.0.0.5]:80", "x-forwarded-for", &["::ffff:198.51.100.2"]), "198.51.100.2");
    }

    #[test]
    fn the_forwarded_header_is_read_when_the_proxies_maintain_it() {
        let value = r#"for=6.6.6.6;proto=http, for="[2001:db8:cafe::17]:4711";by=10.0.0.5"#;
        assert_eq!(client(PROXY, "forwarded", &[value]), "2001:db8:cafe::17");
        assert_eq!(client("[fd00::1]:80", "forwarded", &["For=198.51.100.2"]), "198.51.100.2");
        // The other header is the client's to forge: it is not read.
        assert_eq!(client(PROXY, "x-forwarded-for", &[]), "10.0.0.5");
        let both = {
            let mut headers = headers("x-forwarded-for", &["6.6.6.6"]);
            headers.append("forwarded", HeaderValue::from_static("for=198.51.100.2"));
            headers
        };
        let chosen = proxies(ForwardingHeader::Forwarded).client_of(PROXY.parse().unwrap(), &both);
        assert_eq!(chosen.0.to_string(), "198.51.100.2");
    }

    #[test]
    fn what_a_trusted_proxy_would_not_write_stops_the_walk_at_the_nearest_proxy() {
        assert_eq!(client(PROXY, "x-forwarded-for", &["198.51.100.2, unknown"]), "10.0.0.5");
        assert_eq!(client(PROXY, "x-forwarded-for", &["10.9.9.9, nonsense, 10.1.1.1"]), "10.1.1.1");
        assert_eq!(client(PROXY, "forwarded", &["for=_hidden"]), "10.0.0.5");
        // Only proxies all the way: the farthest of them.
        assert_eq!(client(PROXY, "x-forwarded-for", &["10.1.1.1, 10.2.2.2"]), "10.1.1.1");
        // No header at all: the proxy itself.
        assert_eq!(client(PROXY, "x-forwarded-for", &[]), "10.0.0.5");
    }
}
