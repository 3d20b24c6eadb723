//! The member shape that several endpoints answer with ([`MemberJson`]:
//! `/v1/members`, `/v1/self`, the text feeds).

use std::collections::BTreeMap;

use serde::Serialize;
use vigil::Member;

use crate::events::HealthJson;
use crate::meta;

/// A member in API responses.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberJson {
    /// Unique name.
    pub name: String,
    /// Gossip address.
    pub addr: String,
    /// `alive`, `suspect`, `dead`, `left`.
    pub state: &'static str,
    /// Incarnation of the latest claim.
    pub incarnation: u64,
    /// Metadata, decoded from `key=value` lines.
    pub meta: BTreeMap<String, String>,
    /// Health.
    pub health: HealthJson,
    /// Phi-accrual suspicion level (0 when too little is known).
    pub phi: f64,
    /// Smoothed round-trip time of direct probes, if measured.
    pub rtt_ms: Option<f64>,
    /// When the member's state last changed, Unix milliseconds.
    pub since_ms: u64,
    /// The local member only: its Lifeguard local health score (0 is
    /// healthy; it rises when this member misses acks, nacks or was not
    /// scheduled), so that a sick member shows which one it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_health: Option<u32>,
}

impl MemberJson {
    /// A member as the API shows it; `origin_ms` is the Unix time (ms) at
    /// which the local member started (its `since` instants count from there).
    pub fn new(m: &Member, origin_ms: u64) -> Self {
        MemberJson {
            name: m.name.to_string(),
            addr: m.addr.to_string(),
            state: m.state.as_str(),
            incarnation: m.incarnation,
            meta: meta::decode(m.meta.as_bytes()),
            health: HealthJson::of(&m.health),
            phi: if m.phi.is_finite() { m.phi } else { f64::MAX },
            rtt_ms: m.rtt.map(|d| d.as_secs_f64() * 1e3),
            since_ms: origin_ms + m.since.as_micros() / 1000,
            local_health: None,
        }
    }
}
