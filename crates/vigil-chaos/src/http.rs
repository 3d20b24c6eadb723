//! A tiny HTTP/1.0 client for the agents' API, over connections opened in the
//! hub namespace.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result, io};
use crate::net::Lab;

/// One member as an agent's `GET /v1/members` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Name.
    pub name: String,
    /// Gossip address.
    pub addr: String,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    /// Incarnation.
    pub incarnation: u64,
}

/// `GET path` on `addr`; returns the status and body.
pub fn get(lab: &Lab, addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let mut s = lab.connect(addr, timeout)?;
    s.set_read_timeout(Some(timeout)).map_err(io("set_read_timeout"))?;
    s.set_write_timeout(Some(timeout)).map_err(io("set_write_timeout"))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n")
        .map_err(io(format!("writing to {addr}")))?;
    let mut buf = Vec::new();
    s.take(64 << 20).read_to_end(&mut buf).map_err(io(format!("reading from {addr}")))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| {
        Error::Command { command: format!("GET {addr}{path}"), detail: "no HTTP status line".into() }
    })?;
    Ok((status, body.to_string()))
}

/// `GET /v1/members` on the agent whose API is at `addr`.
pub fn members(lab: &Lab, addr: SocketAddr, timeout: Duration) -> Result<Vec<MemberView>> {
    let (status, body) = get(lab, addr, "/v1/members", timeout)?;
    let fail = |detail: String| Error::Command { command: format!("GET http://{addr}/v1/members"), detail };
    if status != 200 {
        return Err(fail(format!("status {status}: {}", body.chars().take(200).collect::<String>())));
    }
    parse_members(&body)
        .ok_or_else(|| fail(format!("not a member list: {}", body.chars().take(200).collect::<String>())))
}

fn parse_members(body: &str) -> Option<Vec<MemberView>> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.as_array()?
        .iter()
        .map(|m| {
            Some(MemberView {
                name: m.get("name")?.as_str()?.to_string(),
                addr: m.get("addr").and_then(serde_json::Value::as_str).unwrap_or_default().to_string(),
                state: m.get("state")?.as_str()?.to_string(),
                incarnation: m.get("incarnation").and_then(serde_json::Value::as_u64).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_member_list() {
        let body = r#"[{"name":"m0","addr":"198.18.1.1:7950","state":"alive","incarnation":3,"meta":{},"health":{"status":"ok","reason":null},"phi":0.1,"rtt_ms":0.4,"since_ms":12}]"#;
        let m = parse_members(body).expect("a list");
        assert_eq!(
            m,
            vec![MemberView {
                name: "m0".into(),
                addr: "198.18.1.1:7950".into(),
                state: "alive".into(),
                incarnation: 3
            }]
        );
        assert!(parse_members("{}").is_none());
    }
}
