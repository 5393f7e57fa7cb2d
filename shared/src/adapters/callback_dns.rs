//! Resolving a callback host for [`super::callback_http::HttpCallbacks`], keeping only the
//! addresses [`CallbackHosts`] allows.
//!
//! The check has to happen here, when connecting, not only when the URL is accepted: a name
//! can resolve to anything, and differently each time (DNS rebinding). reqwest connects to
//! exactly the addresses this resolver returns, so what is judged is what is dialled.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::callback_host::CallbackHosts;

/// Name resolution, injectable so that tests never ask real DNS.
#[async_trait]
pub trait HostResolver: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Why a name led nowhere. Kept as a type so that the sender can find it in reqwest's error
/// chain and record it as the attempt's error; it never names the addresses a name resolved to
/// (that would tell a token holder what the internal DNS holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("callback host could not be resolved")]
    Unresolved,
    #[error("callback host resolves only to forbidden addresses")]
    OnlyForbidden,
}

/// reqwest's resolver: `inner`'s answer, less what `hosts` refuses.
pub(crate) struct FilteringResolver {
    pub inner: Arc<dyn HostResolver>,
    pub hosts: CallbackHosts,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (inner, hosts) = (self.inner.clone(), self.hosts);
        Box::pin(async move {
            let found = inner
                .lookup(name.as_str())
                .await
                .map_err(|_| boxed(Refused::Unresolved))?;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| hosts.allows(*ip))
                // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(boxed(Refused::OnlyForbidden));
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn boxed(r: Refused) -> Box<dyn Error + Send + Sync> {
    Box::new(r)
}

/// The [`Refused`] somewhere in `e`'s chain of sources, if a resolution was refused.
pub(crate) fn refusal(e: &(dyn Error + 'static)) -> Option<Refused> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(*r);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use reqwest::dns::{Name, Resolve};

    use super::*;

    /// Answers every name with the same addresses.
    struct Fixed(Vec<IpAddr>);

    #[async_trait]
    impl HostResolver for Fixed {
        async fn lookup(&self, _: &str) -> std::io::Result<Vec<IpAddr>> {
            Ok(self.0.clone())
        }
    }

    async fn resolve(hosts: CallbackHosts, ips: &[&str]) -> Result<Vec<IpAddr>, String> {
        let inner = Arc::new(Fixed(ips.iter().map(|s| s.parse().unwrap()).collect()));
        FilteringResolver { inner, hosts }
            .resolve(Name::from_str("mixed.test").unwrap())
            .await
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn only_allowed_addresses_are_handed_to_the_client() {
        let mixed = [
            "10.0.0.1",
            "8.8.8.8",
            "127.0.0.1",
            "fd00::1",
            "2606:4700::1111",
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            resolve(CallbackHosts::Deployment, &mixed).await,
            Ok(vec![ip("8.8.8.8"), ip("2606:4700::1111")])
        );
        assert_eq!(
            resolve(CallbackHosts::Local, &mixed).await,
            Ok(vec![ip("8.8.8.8"), ip("127.0.0.1"), ip("2606:4700::1111")])
        );
        assert_eq!(
            resolve(CallbackHosts::Deployment, &["169.254.169.254", "::1"]).await,
            Err("callback host resolves only to forbidden addresses".into())
        );
        assert_eq!(
            resolve(CallbackHosts::Deployment, &[]).await,
            Err("callback host resolves only to forbidden addresses".into())
        );
    }
}
