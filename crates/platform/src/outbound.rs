//! The one policy for outbound URLs that users choose (provider base URLs, MCP servers, skill
//! imports, downloads): private, loopback, link-local and other special addresses are refused
//! unless `SAGE_OUTBOUND_ALLOW` allows their class (`loopback`, `private`, `link-local`) or a
//! CIDR. The check runs on the URL before a request and again on every DNS answer at connect
//! time ([`PolicyResolver`]), so a name cannot be re-pointed at a private address after the
//! check (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::config::IpNet;

/// Why an outbound URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("`{0}` is not a valid http(s) URL")]
    InvalidUrl(String),
    #[error(
        "`{host}` resolves to {addr}, a {class} address that this deployment does not allow (SAGE_OUTBOUND_ALLOW)"
    )]
    Forbidden {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("`{0}` cannot be resolved")]
    Unresolvable(String),
}

/// Which address classes user-chosen URLs may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    loopback: bool,
    private: bool,
    link_local: bool,
    extra: Vec<IpNet>,
}

/// The class of an address that needs an allowance, if any.
fn special_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("reserved")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)
                || first == 0x2001 && v6.segments()[1] == 0xdb8
            {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

fn v4_class(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || o[0] >= 240
    {
        Some("reserved")
    } else {
        None
    }
}

impl OutboundPolicy {
    /// From the `SAGE_OUTBOUND_ALLOW` list: class names or CIDRs.
    pub fn from_allow_list(items: &[String]) -> Result<Self, String> {
        let mut policy = OutboundPolicy::default();
        for item in items {
            match item.trim().to_ascii_lowercase().as_str() {
                "loopback" => policy.loopback = true,
                "private" => policy.private = true,
                "link-local" | "link_local" => policy.link_local = true,
                other => policy.extra.push(IpNet::parse(other)?),
            }
        }
        Ok(policy)
    }

    /// Whether an address may be reached; on refusal, its class.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.extra.iter().any(|net| net.contains(ip)) {
            return Ok(());
        }
        match special_class(ip) {
            None => Ok(()),
            Some("loopback") if self.loopback => Ok(()),
            Some("private") if self.private => Ok(()),
            Some("link-local") if self.link_local => Ok(()),
            Some(class) => Err(class),
        }
    }

    /// Checks a URL: http(s) only; every address its host resolves to must be allowed.
    pub async fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| OutboundError::InvalidUrl(url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::InvalidUrl(url.to_owned()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| OutboundError::InvalidUrl(url.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| OutboundError::Unresolvable(host.clone()))?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.is_empty() {
            return Err(OutboundError::Unresolvable(host));
        }
        for addr in addrs {
            self.check_ip(addr)
                .map_err(|class| OutboundError::Forbidden {
                    host: host.clone(),
                    addr,
                    class,
                })?;
        }
        Ok(())
    }
}

/// A DNS resolver for reqwest that drops addresses the policy refuses, so the check also holds
/// at connect time.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if found.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("`{host}` resolves to no address this deployment allows").into();
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_refused_by_default() {
        let policy = OutboundPolicy::default();
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("fd00::1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "reserved"),
            ("::ffff:127.0.0.1", "loopback"),
        ] {
            assert_eq!(policy.check_ip(ip(addr)), Err(class), "{addr}");
        }
        assert!(policy.check_ip(ip("93.184.216.34")).is_ok());
        assert!(policy.check_ip(ip("2606:4700::1111")).is_ok());
    }

    #[test]
    fn allowances_open_classes_and_cidrs() {
        let policy =
            OutboundPolicy::from_allow_list(&["loopback".into(), "10.0.0.0/8".into()]).unwrap();
        assert!(policy.check_ip(ip("127.0.0.1")).is_ok());
        assert!(policy.check_ip(ip("10.9.9.9")).is_ok());
        assert_eq!(policy.check_ip(ip("192.168.0.1")), Err("private"));
        assert!(OutboundPolicy::from_allow_list(&["everything".into()]).is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_resolved_address() {
        let policy = OutboundPolicy::default();
        assert!(matches!(
            policy.check_url("ftp://example.com").await,
            Err(OutboundError::InvalidUrl(_))
        ));
        assert!(matches!(
            policy.check_url("not a url").await,
            Err(OutboundError::InvalidUrl(_))
        ));
        assert!(matches!(
            policy.check_url("http://127.0.0.1:8080/v1").await,
            Err(OutboundError::Forbidden {
                class: "loopback",
                ..
            })
        ));
        assert!(matches!(
            policy.check_url("http://localhost:8080/v1").await,
            Err(OutboundError::Forbidden {
                class: "loopback",
                ..
            })
        ));
        assert!(matches!(
            policy.check_url("http://[::1]:8080/").await,
            Err(OutboundError::Forbidden { .. })
        ));
        let open = OutboundPolicy::from_allow_list(&["loopback".into()]).unwrap();
        assert!(open.check_url("http://localhost:8080/v1").await.is_ok());
    }
}
