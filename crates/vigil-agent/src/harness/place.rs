//! Where a cluster's agents run, and how the harness reaches their APIs.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// Where a cluster's agents run, seen from the harness: how their HTTP APIs
/// are reached. (How they are started is in each [`AgentSpec`](super::AgentSpec): its
/// addresses and `wrapper`.)
pub trait Place: std::fmt::Debug {
    /// `GET path` on the API at `http`, as JSON, within `timeout`; the error
    /// says what went wrong.
    fn get(&self, http: SocketAddr, path: &str, timeout: Duration) -> Result<Value, String>;
}

/// Agents on this host's loopback, reached directly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loopback;

impl Place for Loopback {
    fn get(&self, http: SocketAddr, path: &str, timeout: Duration) -> Result<Value, String> {
        crate::client::get_within(&format!("http://{http}"), path, timeout).map_err(|e| e.0)
    }
}
