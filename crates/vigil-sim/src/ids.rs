//! Member ids and what the engine derives from them: a name (`node-000042`)
//! and an address (10.x.y.z:7946), and back. A leaf.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A member's name: `node-000042`.
pub fn member_name(id: usize) -> String {
    format!("node-{id:06}")
}

pub(crate) fn member_id(name: &str) -> Option<usize> {
    name.strip_prefix("node-")?.parse().ok()
}

/// A member's address: 10.x.y.z:7946 from its id.
pub fn member_addr(id: usize) -> SocketAddr {
    let b = (id as u32).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])), 7946)
}

pub(crate) fn addr_id(addr: SocketAddr) -> Option<usize> {
    match addr.ip() {
        IpAddr::V4(ip) if ip.octets()[0] == 10 && addr.port() == 7946 => {
            let o = ip.octets();
            Some(u32::from_be_bytes([0, o[1], o[2], o[3]]) as usize)
        }
        _ => None,
    }
}
