//! The address a request came from, for rate limits and logs: the TCP
//! peer, unless the peer is a reverse proxy or CDN the operator trusts;
//! then the address that proxy reports in `Forwarded` (RFC 7239 `for=`) or,
//! failing that, `X-Forwarded-For`.
//!
//! Proxies append, so the list is read from the right: the first address
//! that is not itself a trusted proxy is the client. Anything a client
//! wrote further left (a forged `X-Forwarded-For`) is never reached, and
//! headers from an untrusted peer are ignored altogether.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses and CIDR ranges (`10.0.0.0/8`, `::1`).
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {s:?} is not an address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `for=` value of a `Forwarded` element, or an `X-Forwarded-For`
/// item: an address, maybe quoted, bracketed, with a port.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
}

/// The addresses a proxy chain reported, leftmost first: from `Forwarded`
/// if present, else `X-Forwarded-For`. An unparsable item ends the list at
/// the right of it (nothing left of garbage is believed).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let fwd: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !fwd.is_empty() {
        return fwd
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(v))?
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(parse_node)
        .collect()
}

/// The client address of a request from `peer` (see the module doc).
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(ip);
                if !trusted.contains(client) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_trusted_proxies_are_believed_reading_from_the_right() {
        let t = TrustedProxies::parse(&["127.0.0.9".into(), "10.0.0.0/8".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.1.2.3")]);
        // From the trusted proxy: the rightmost untrusted hop.
        assert_eq!(client_addr(ip("127.0.0.9"), &xff, &t), ip("192.0.2.7"));
        // From anyone else: the peer, whatever it claims.
        assert_eq!(client_addr(ip("127.0.0.1"), &xff, &t), ip("127.0.0.1"));
        // Forwarded wins over X-Forwarded-For, with quotes, brackets, ports.
        let f = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https",
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.9"), &f, &t),
            ip("2001:db8::1")
        );
        // Garbage stops the walk: nothing left of it is believed.
        let g = headers(&[("x-forwarded-for", "6.6.6.6, not-an-ip, 10.0.0.5")]);
        assert_eq!(client_addr(ip("127.0.0.9"), &g, &t), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(
            client_addr(ip("127.0.0.9"), &HeaderMap::new(), &t),
            ip("127.0.0.9")
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
