//! The one policy for outbound URLs that users choose (provider base URLs, MCP servers, skill
//! imports, downloads): private, loopback, link-local and other special addresses are refused
//! unless `SAGE_OUTBOUND_ALLOW` allows their class (`loopback`, `private`, `link-local`) or a
//! CIDR. The check runs on the URL before a request and again on every DNS answer at connect
//! time ([`PolicyResolver`]), so a name cannot be re-pointed at a private address after the
//! check (DNS rebinding).
//!
//! Which addresses are special is one table per family, [`SPECIAL_V4`] and [`SPECIAL_V6`],
//! taken from the IANA special-purpose address registries (every block that is not globally
//! reachable, plus multicast). IPv6 forms that embed an IPv4 address the kernel would route
//! to it (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged by that IPv4
//! address; the tunnelling and translation prefixes whose embedded address cannot be trusted
//! (6to4, Teredo, local-use NAT64, IPv4-compatible `::a.b.c.d`) are refused whole.
//!
//! Clients that use this policy must not go through a proxy from the environment
//! (`HTTP_PROXY`, …): the resolver would then check the proxy's address, not the target's.
//! [`http_client_builder`] builds such a client.

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

/// IPv4 special-purpose blocks (RFC 6890 and the IANA IPv4 special-purpose registry):
/// (network, prefix length, class).
pub const SPECIAL_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "reserved"), // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "private"), // shared address space (CGN)
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "reserved"), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24, "reserved"), // TEST-NET-1
    (Ipv4Addr::new(192, 88, 99, 0), 24, "reserved"), // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "reserved"), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24, "reserved"), // TEST-NET-2
    (Ipv4Addr::new(203, 0, 113, 0), 24, "reserved"), // TEST-NET-3
    (Ipv4Addr::new(224, 0, 0, 0), 4, "reserved"),   // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),   // reserved, and the broadcast address
];

/// IPv6 special-purpose blocks (the IANA IPv6 special-purpose registry): (network, prefix
/// length, class). IPv4-mapped and well-known NAT64 addresses are judged by their IPv4 address
/// before this table is consulted.
pub const SPECIAL_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "reserved"), // unspecified, IPv4-compatible
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "private"), // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "reserved"), // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64, "reserved"), // dummy prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "reserved"), // IETF protocol assignments, Teredo
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "reserved",
    ), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "reserved"), // 6to4
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "reserved"), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, "reserved"), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "private"),   // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "private"), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "reserved"), // multicast
];

/// The well-known NAT64 prefix `64:ff9b::/96`: the last 32 bits are the IPv4 target.
const NAT64_WELL_KNOWN: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The class of an address that needs an allowance, if any.
pub fn special_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            let bits = u128::from(v6);
            if bits >> 32 == NAT64_WELL_KNOWN >> 32 {
                // Truncation intended: the low 32 bits are the IPv4 address.
                return v4_class(Ipv4Addr::from(bits as u32));
            }
            // The most specific block wins (`::1` inside `::/96`).
            SPECIAL_V6
                .iter()
                .filter(|(net, prefix, _)| in_v6(v6, *net, *prefix))
                .max_by_key(|(_, prefix, _)| *prefix)
                .map(|(_, _, class)| *class)
        }
    }
}

fn v4_class(v4: Ipv4Addr) -> Option<&'static str> {
    SPECIAL_V4
        .iter()
        .filter(|(net, prefix, _)| in_v4(v4, *net, *prefix))
        .max_by_key(|(_, prefix, _)| *prefix)
        .map(|(_, _, class)| *class)
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

/// A reqwest client builder for user-chosen URLs: every DNS answer passes `policy`, redirects
/// are not followed, and proxies from the environment are ignored (with a proxy, the resolver
/// would check the proxy instead of the target).
pub fn http_client_builder(policy: Arc<OutboundPolicy>) -> reqwest::ClientBuilder {
    crate::tls::ensure_crypto_provider();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver::new(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// Why a [`fetch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL (or a redirect's target) is refused by the policy.
    #[error(transparent)]
    Refused(#[from] OutboundError),
    #[error("`{url}` answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the answer of `{0}` is larger than allowed")]
    TooLarge(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("`{url}` could not be fetched: {reason}")]
    Transport { url: String, reason: String },
}

/// The most redirects [`fetch`] follows.
pub const MAX_REDIRECTS: usize = 5;

/// GETs `url` with `client` (built by [`http_client_builder`]): every hop's URL passes
/// `policy` (redirects are followed here, each checked, at most [`MAX_REDIRECTS`]), a non-2xx
/// answer is an error, and at most `limit` bytes of the body are read.
pub async fn fetch(
    client: &reqwest::Client,
    policy: &OutboundPolicy,
    url: &str,
    headers: &[(&str, &str)],
    limit: usize,
) -> Result<bytes::Bytes, FetchError> {
    use futures_util::StreamExt;
    let transport = |url: &str, e: reqwest::Error| FetchError::Transport {
        url: url.to_owned(),
        reason: e.without_url().to_string(),
    };
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        policy.check_url(&current).await?;
        let mut request = client.get(&current);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| transport(&current, e))?;
        let status = response.status();
        if status.is_redirection() {
            let next = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| response.url().join(location).ok())
                .ok_or_else(|| FetchError::Status {
                    url: current.clone(),
                    status: status.as_u16(),
                })?;
            current = next.to_string();
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: current,
                status: status.as_u16(),
            });
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge(current));
        }
        let mut body = bytes::BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport(&current, e))?;
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(current));
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(body.freeze());
    }
    Err(FetchError::TooManyRedirects(MAX_REDIRECTS))
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

    fn v4_at(net: Ipv4Addr, prefix: u8, last: bool) -> Ipv4Addr {
        let host = if prefix == 32 { 0 } else { u32::MAX >> prefix };
        Ipv4Addr::from(if last {
            u32::from(net) | host
        } else {
            u32::from(net)
        })
    }

    fn v6_at(net: Ipv6Addr, prefix: u8, last: bool) -> Ipv6Addr {
        let host = if prefix == 128 {
            0
        } else {
            u128::MAX >> prefix
        };
        Ipv6Addr::from(if last {
            u128::from(net) | host
        } else {
            u128::from(net)
        })
    }

    /// The class the most specific table entry gives `ip` (what the classifier must answer).
    fn expected_v6(ip: Ipv6Addr) -> &'static str {
        SPECIAL_V6
            .iter()
            .filter(|(n, p, _)| in_v6(ip, *n, *p))
            .max_by_key(|(_, p, _)| *p)
            .map(|(_, _, c)| *c)
            .unwrap()
    }

    #[test]
    fn every_special_purpose_block_is_refused_at_both_ends() {
        let policy = OutboundPolicy::default();
        for (net, prefix, class) in SPECIAL_V4 {
            for last in [false, true] {
                let addr = v4_at(*net, *prefix, last);
                assert_eq!(policy.check_ip(IpAddr::V4(addr)), Err(*class), "{addr}");
                // The same address written as IPv4-mapped and as well-known NAT64 IPv6.
                let mapped = addr.to_ipv6_mapped();
                assert_eq!(policy.check_ip(IpAddr::V6(mapped)), Err(*class), "{mapped}");
                let nat64 = Ipv6Addr::from(NAT64_WELL_KNOWN | u128::from(u32::from(addr)));
                assert_eq!(policy.check_ip(IpAddr::V6(nat64)), Err(*class), "{nat64}");
            }
        }
        for (net, prefix, _) in SPECIAL_V6 {
            for last in [false, true] {
                let addr = v6_at(*net, *prefix, last);
                assert_eq!(
                    policy.check_ip(IpAddr::V6(addr)),
                    Err(expected_v6(addr)),
                    "{addr}"
                );
            }
        }
    }

    #[test]
    fn the_findings_of_the_review_are_refused() {
        let policy = OutboundPolicy::default();
        for (addr, class) in [
            ("198.18.0.1", "reserved"),
            ("198.19.255.254", "reserved"),
            ("192.0.0.8", "reserved"),
            ("64:ff9b:1::a00:1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:a00:1::1", "reserved"),
            ("2002:7f00:1::", "reserved"),
            ("::10.0.0.1", "reserved"),
            ("::127.0.0.1", "reserved"),
            ("::", "reserved"),
            ("2001::1", "reserved"),
            ("ff02::1", "reserved"),
            ("255.255.255.255", "reserved"),
        ] {
            assert_eq!(policy.check_ip(ip(addr)), Err(class), "{addr}");
        }
    }

    #[test]
    fn addresses_just_outside_the_blocks_are_public() {
        let policy = OutboundPolicy::default();
        for addr in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "191.255.255.255",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "64:ff9b::101:101",
            "64:ff9b:2::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2003::1",
            "2606:4700::1111",
            "fbff:ffff::1",
        ] {
            assert!(policy.check_ip(ip(addr)).is_ok(), "{addr}");
        }
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
