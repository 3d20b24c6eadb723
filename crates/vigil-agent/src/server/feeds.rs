//! Feeds for load balancers: `GET /v1/members?...&format=text` (or with
//! `Accept: text/plain`) answers one `host:port` line per member instead of
//! JSON. The port is the member's `port` metadata if it has one, else its
//! gossip port; IPv6 hosts are bracketed (`[::1]:80`), as nginx and HAProxy
//! expect.
//!
//! ```text
//! $ curl -s 'http://127.0.0.1:7951/v1/members?state=alive&health=ok&meta.role=web&format=text'
//! 10.0.0.11:8080
//! 10.0.0.12:8080
//! ```

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::json::MemberJson;

/// Takes `format` out of the query; true when plain text is wanted
/// (`format=text`, or no `format` and an `Accept` header that puts
/// `text/plain` first).
pub(crate) fn wants_text(
    query: &mut BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<bool, ApiError> {
    match query.remove("format").as_deref() {
        Some("text") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!("unknown format `{other}`: expected json or text"))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|first| first.trim().starts_with("text/plain"))),
    }
}

/// `host:port` of a member for a load balancer.
pub(crate) fn host_port(m: &MemberJson) -> String {
    let (host, gossip_port) = m.addr.rsplit_once(':').unwrap_or((m.addr.as_str(), ""));
    let port = m.meta.get("port").map(|p| p.trim()).filter(|p| !p.is_empty()).unwrap_or(gossip_port);
    format!("{host}:{port}")
}

/// The plain-text answer: one `host:port` line per member, sorted by member name.
pub(crate) fn text(members: &[MemberJson]) -> Response {
    let mut sorted: Vec<&MemberJson> = members.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let body: String = sorted.iter().map(|m| host_port(m) + "\n").collect();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::HealthJson;

    fn m(name: &str, addr: &str, port: Option<&str>) -> MemberJson {
        MemberJson {
            name: name.into(),
            addr: addr.into(),
            state: "alive",
            incarnation: 1,
            meta: port.map(|p| ("port".to_string(), p.to_string())).into_iter().collect(),
            health: HealthJson { status: "ok", reason: String::new() },
            phi: 0.0,
            rtt_ms: None,
            since_ms: 0,
            local_health: None,
        }
    }

    #[test]
    fn lines_use_the_port_metadata_else_the_gossip_port() {
        assert_eq!(host_port(&m("a", "10.0.0.1:7950", Some("8080"))), "10.0.0.1:8080");
        assert_eq!(host_port(&m("a", "10.0.0.1:7950", None)), "10.0.0.1:7950");
        assert_eq!(host_port(&m("a", "[::1]:7950", Some("80"))), "[::1]:80");
    }

    #[test]
    fn format_and_accept_select_text() {
        let mut q: BTreeMap<String, String> = [("format".to_string(), "text".to_string())].into();
        assert!(wants_text(&mut q, &HeaderMap::new()).unwrap());
        assert!(q.is_empty(), "format is not a member filter");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "text/plain".parse().unwrap());
        assert!(wants_text(&mut BTreeMap::new(), &h).unwrap());
        h.insert(header::ACCEPT, "text/html,text/plain".parse().unwrap());
        assert!(!wants_text(&mut BTreeMap::new(), &h).unwrap());
        let mut q: BTreeMap<String, String> = [("format".to_string(), "xml".to_string())].into();
        assert!(wants_text(&mut q, &HeaderMap::new()).is_err());
    }
}
