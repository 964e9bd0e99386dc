//! The API's side of authorisation: reads the caller, the client's address and the addressed
//! resource from a request, and leaves the decisions to [`crate::auth`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::ApiError;
use crate::auth::caller::authenticate;
use crate::auth::{Access, Caller, Permission, PersonAccess, Resource};
use crate::error::Error;
use crate::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Ok(ClientAddr(client_addr)) = ClientAddr::from_request_parts(parts, state).await;
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(Error::Unauthenticated("missing Authorization header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthenticated(
                "Authorization must be `Bearer <token>`",
            ))?;
        let caller = Caller {
            principal: authenticate(state, token).await?,
            client_addr,
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl<R: Resource, P: Permission> FromRequestParts<AppState> for Access<R, P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound(R::NAME))?;
        let id = params
            .iter()
            .find(|(name, _)| *name == R::PATH_PARAM)
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .ok_or(Error::NotFound(R::NAME))?;
        Ok(Access::check(&state.db, caller, id).await?)
    }
}

impl<R: Resource, P: Permission> FromRequestParts<AppState> for PersonAccess<R, P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Access::<R, P>::from_request_parts(parts, state)
            .await?
            .by_person()?)
    }
}

/// The client's address: the peer, or with `http.trust_forwarded_for` the client our proxies
/// saw (see [`forwarded_client`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let http = &state.settings.http;
        if http.trust_forwarded_for
            && let Some(ip) = forwarded_client(&parts.headers, &http.trusted_proxies)
        {
            return Ok(ClientAddr(Some(ip)));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(peer))
    }
}

/// The client behind our proxies, from `X-Forwarded-For` (every such header, in order). Each
/// proxy appends the address it was connected from, so the list is read from the right: the
/// operator's own proxies (`trusted`) are skipped and the first other address is the client.
/// Everything left of it was written by the client itself and proves nothing. An unreadable
/// hop met before the client gives `None` (the peer is used) rather than a guess.
pub fn forwarded_client(
    headers: &axum::http::HeaderMap,
    trusted: &[egress::Cidr],
) -> Option<IpAddr> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.to_str().ok()?.split(',').map(str::trim));
    }
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
            .ok()?;
        if !trusted.iter().any(|range| range.contains(ip)) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    // Every hop is one of ours: the first proxy's own peer is all there is.
    leftmost
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_client_is_the_rightmost_hop_not_the_one_it_wrote() {
        let none: &[egress::Cidr] = &[];
        // The client wrote 10.0.0.1 itself; our proxy appended the address it saw.
        let spoofed = headers(&["10.0.0.1, 203.0.113.7"]);
        assert_eq!(forwarded_client(&spoofed, none), ip("203.0.113.7"));
        assert_eq!(
            forwarded_client(&headers(&["198.51.100.2"]), none),
            ip("198.51.100.2")
        );
        // Several headers are one list, in order.
        assert_eq!(
            forwarded_client(&headers(&["10.0.0.1", "203.0.113.7"]), none),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&headers(&["[2001:db8::5]:4711"]), none),
            ip("2001:db8::5")
        );
        assert_eq!(forwarded_client(&HeaderMap::new(), none), None);
        assert_eq!(forwarded_client(&headers(&["1.2.3.4, junk"]), none), None);
    }

    #[test]
    fn the_operators_proxies_are_read_past() {
        let trusted: Vec<egress::Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = headers(&["192.0.2.9, 203.0.113.7, 10.1.2.3, 10.4.5.6"]);
        assert_eq!(forwarded_client(&chain, &trusted), ip("203.0.113.7"));
        // Junk left of the client does not matter.
        let chain = headers(&["junk, 203.0.113.7, 10.1.2.3"]);
        assert_eq!(forwarded_client(&chain, &trusted), ip("203.0.113.7"));
        let ours = headers(&["10.9.9.9, 10.1.2.3"]);
        assert_eq!(forwarded_client(&ours, &trusted), ip("10.9.9.9"));
    }
}
