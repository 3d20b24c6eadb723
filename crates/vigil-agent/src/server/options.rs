//! The API's own settings ([`ApiOptions`]): which `Host` names it answers
//! to, and its limits (connections, event subscribers, idle time).

use std::net::IpAddr;
use std::time::Duration;

/// Default cap on open HTTP connections (`http_max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default cap on `GET /v1/events` subscribers at once (`http_max_subscribers`).
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 64;
/// Default time a connection may stay silent, or take to send a request's
/// headers, before it is closed (`http_idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP API's names and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiOptions {
    /// `Host` names accepted besides IP addresses and `localhost`
    /// (lower case, without port); `*` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Event-stream subscribers at most; one more gets 503.
    pub max_subscribers: usize,
    /// A connection silent this long between requests, or this slow to send
    /// a request's headers, is closed.
    pub idle_timeout: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            allowed_hosts: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ApiOptions {
    /// Whether a request with this `Host` header may be answered: an IP
    /// address (no DNS, so nothing to rebind), `localhost` or a name under
    /// it (browsers resolve those to loopback themselves), or a configured
    /// name. A DNS-rebinding page sends its own name, none of these.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.allowed_hosts.iter().any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(&name))
    }
}

/// The name of a `Host` header, without its port (and without the brackets
/// of an IPv6 address).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_localhost_are_answered_other_names_only_when_configured() {
        let o = ApiOptions { allowed_hosts: vec!["vigil.example".into()], ..ApiOptions::default() };
        for ok in [
            "127.0.0.1:7951",
            "10.0.0.1",
            "[::1]:7951",
            "localhost:7951",
            "LOCALHOST",
            "a.localhost",
            "Vigil.Example:80",
        ] {
            assert!(o.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:7951",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "",
            "vigil.example.evil",
        ] {
            assert!(!o.host_allowed(bad), "{bad}");
        }
        let any = ApiOptions { allowed_hosts: vec!["*".into()], ..ApiOptions::default() };
        assert!(any.host_allowed("evil.example"));
    }
}
