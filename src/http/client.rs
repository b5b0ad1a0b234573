//! Who is on the other end of a request: the client's address, seen through trusted
//! proxies, and its user agent. Both transports (HTTP and WebSocket) read it here, as an
//! extractor or from a request's parts.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};

use super::AppState;
use crate::auth::ClientInfo;

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(info(state, parts))
    }
}

/// The client of the request whose parts these are.
pub fn info(state: &AppState, parts: &Parts) -> ClientInfo {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    ClientInfo {
        ip: ip(&state.config.server.trusted_proxies, peer, &parts.headers),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The client's address: the socket peer, unless that is a trusted proxy, in which case
/// the right-most address in `X-Forwarded-For` that is not itself a trusted proxy. A hop
/// that cannot be read ends the walk at the last trusted address, so that nothing written
/// to its left by the client counts.
fn ip(trusted_proxies: &[IpAddr], peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| trusted_proxies.contains(&ip.to_canonical());
    let mut client = peer?.ip().to_canonical();
    if !trusted(&client) {
        return Some(client);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop.trim()) else {
            break;
        };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// An address as proxies write it in `X-Forwarded-For`: `ip`, `ip:port` or `[ip]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}
