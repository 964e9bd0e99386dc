//! The policy inside the HTTP client's connector: names are resolved and filtered before a
//! connection is attempted (so a name that resolves to a refused address — DNS rebinding
//! included — is never dialled), and every connection made is checked on its socket's peer
//! address before the request is sent on it (which also covers URLs holding an address,
//! which skip DNS, however the request was sent).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::{Policy, Refusal};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
pub(crate) struct PolicyResolver {
    pub(crate) policy: Policy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter(&host, resolved.iter().map(SocketAddr::ip))?;
            let addresses: Addrs = Box::new(
                resolved
                    .into_iter()
                    .filter(move |address| allowed.contains(&address.ip())),
            );
            Ok(addresses)
        })
    }
}

/// A connector layer refusing a connection whose peer the policy does not allow.
#[derive(Clone)]
pub(crate) struct PeerCheckLayer {
    pub(crate) policy: Policy,
}

impl<S> tower_layer::Layer<S> for PeerCheckLayer {
    type Service = PeerCheck<S>;

    fn layer(&self, inner: S) -> PeerCheck<S> {
        PeerCheck {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct PeerCheck<S> {
    inner: S,
    policy: Policy,
}

impl<S, Target> tower_service::Service<Target> for PeerCheck<S>
where
    S: tower_service::Service<Target>,
    S::Response: Connection + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let connecting = self.inner.call(target);
        let policy = self.policy.clone();
        Box::pin(async move {
            let connection = connecting.await.map_err(Into::into)?;
            let mut extras = http::Extensions::new();
            connection.connected().get_extras(&mut extras);
            // Fail closed: a connection that cannot say where it goes is not used.
            let address = extras
                .get::<HttpInfo>()
                .map(|info| info.remote_addr().ip())
                .ok_or("the connection has no peer address to check")?;
            policy.check(address).map_err(|class| Refusal {
                host: None,
                address,
                class,
            })?;
            Ok(connection)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::address::AddressClass;

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        let strict = PolicyResolver {
            policy: Policy::public_only(),
        };
        let error = match strict.resolve(Name::from_str("localhost").unwrap()).await {
            Err(error) => error,
            Ok(_) => panic!("localhost resolves to loopback only"),
        };
        let refusal = error.downcast_ref::<Refusal>().expect("a refusal");
        assert_eq!(refusal.class, AddressClass::Loopback);
        assert_eq!(refusal.host.as_deref(), Some("localhost"));

        let loopback = PolicyResolver {
            policy: Policy::allowing(["127.0.0.0/8".parse().unwrap()]),
        };
        let addresses: Vec<SocketAddr> = loopback
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .expect("127.0.0.1 is allowed")
            .collect();
        assert!(!addresses.is_empty());
        // ::1, which localhost may also resolve to, is not in the allowed range.
        assert!(addresses.iter().all(|a| a.ip().is_ipv4()), "{addresses:?}");
    }
}
