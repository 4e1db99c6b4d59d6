//! Requests the server sends to URLs its users give it (alert webhooks,
//! retraining webhooks).
//!
//! A user who may set a webhook must not be able to make the server reach
//! what only the server can reach: its own loopback services, the private
//! network, a cloud's metadata endpoint (server-side request forgery).
//! Every such request goes through one [`OutboundClient`]: its DNS
//! resolver drops addresses on loopback, private, link-local, shared and
//! metadata ranges (so a name that resolves there, or is made to resolve
//! there later, reaches nothing), URLs naming such an address are refused
//! before any connection, and redirects are not followed (a public URL
//! could redirect inward). Hosts an admin allows (`--webhook-allowed-hosts`,
//! and the server's own `--alert-webhook` targets) are exempt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Which internal hosts user-given URLs may reach anyway: names
/// (`hooks.internal`, `*.corp.example`), addresses or CIDR ranges
/// (`10.20.0.0/16`), or `*` for any.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    pub allowed_hosts: Vec<String>,
}

impl OutboundPolicy {
    fn allows_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            pattern == "*"
                || pattern == host
                || pattern
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }

    fn allows_address(&self, ip: IpAddr) -> bool {
        self.allowed_hosts
            .iter()
            .any(|pattern| cidr_contains(pattern.trim(), ip))
    }

    /// Whether a URL's host (a name, resolved to `ip`) may be reached.
    fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip) || self.allows_name(host) || self.allows_address(ip)
    }

    /// Checks a URL before it is stored or called: http(s), and not naming
    /// an internal address outright. Names are checked when resolved.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|parsed| matches!(parsed.scheme(), "http" | "https"))
            .ok_or_else(|| format!("'{url}' is not an http(s) URL"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("webhook URLs may not carry credentials in the URL".into());
        }
        let internal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.refuses(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.refuses(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.to_ascii_lowercase();
                let local_name = name == "localhost" || name.ends_with(".localhost");
                local_name && !self.allows_name(&name)
            }
            None => true,
        };
        if internal {
            return Err(format!(
                "'{url}' points at an internal address (loopback, private, link-local or metadata), which webhooks may not reach unless an admin allows it with --webhook-allowed-hosts"
            ));
        }
        Ok(parsed)
    }

    fn refuses(&self, host: &str, ip: IpAddr) -> bool {
        !self.permits(host, ip)
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local (which holds the 169.254.169.254 metadata service),
/// shared (100.64/10), unspecified, multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x0064)
}

/// `10.0.0.0/8`, `fd00::/8` or a bare address.
fn cidr_contains(pattern: &str, ip: IpAddr) -> bool {
    let (network, bits) = match pattern.split_once('/') {
        Some((network, bits)) => (network, bits.parse::<u32>().ok()),
        None => (pattern, None),
    };
    let Ok(network) = network.trim_matches(['[', ']']).parse::<IpAddr>() else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(network), IpAddr::V4(ip)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(network) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(ip)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(network) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Resolves names, keeping only the addresses the policy permits.
struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> = resolved
                .filter(|address| policy.permits(&host, address.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(format!(
                    "'{host}' resolves only to internal addresses, which webhooks may not reach"
                )
                .into());
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one client for user-given URLs.
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Default for OutboundClient {
    fn default() -> Self {
        OutboundClient::new(OutboundPolicy::default())
    }
}

impl OutboundClient {
    pub fn new(policy: OutboundPolicy) -> OutboundClient {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
            .unwrap_or_default();
        OutboundClient { client, policy }
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// POSTs `body` as JSON. The error is for the server's log: it may name
    /// the target's address or the reason it was refused.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::StatusCode, String> {
        let url = self.policy.check_url(url)?;
        let response = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|err| format!("{err:#}"))?;
        Ok(response.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_naming_internal_hosts_are_refused_unless_allowed() {
        let policy = OutboundPolicy::default();
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
        ] {
            assert!(policy.check_url(url).is_err(), "{url}");
        }
        assert!(policy.check_url("https://hooks.example.com/x").is_ok());
        let allowing = OutboundPolicy {
            allowed_hosts: vec!["127.0.0.1".into(), "10.0.0.0/8".into(), "localhost".into()],
        };
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.9.8.7/",
            "http://localhost/",
        ] {
            assert!(allowing.check_url(url).is_ok(), "{url}");
        }
        assert!(allowing.check_url("http://192.168.0.1/").is_err());
    }

    #[tokio::test]
    async fn names_that_resolve_inward_reach_nothing() {
        use reqwest::dns::Resolve;
        let guarded = GuardedResolver {
            policy: Arc::new(OutboundPolicy::default()),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err());
        let allowing = GuardedResolver {
            policy: Arc::new(OutboundPolicy {
                allowed_hosts: vec!["localhost".into()],
            }),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(allowing.resolve(name).await.is_ok());
    }
}
