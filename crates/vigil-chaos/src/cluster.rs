//! A chaos cluster: the agent's process harness
//! ([`vigil_agent::harness::Cluster`]) placed in a [`Lab`], one agent per
//! network namespace, each joining through the first three members.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use vigil_agent::config::Preset;
use vigil_agent::harness::AgentSpec;

use crate::error::{Error, Result};
use crate::net::Lab;

/// N agents in N namespaces. Dropping it kills the agents, then removes
/// the namespaces.
pub type Cluster = vigil_agent::harness::Cluster<Lab>;

/// Gossip port every agent binds (each has its own address).
pub const GOSSIP_PORT: u16 = 7950;
/// HTTP API port every agent binds on its own address.
pub const HTTP_PORT: u16 = 7951;
/// How long one API request may take.
const HTTP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often waits poll the APIs.
const POLL: Duration = Duration::from_millis(200);
/// Seeds each agent is given (the first members, other than itself).
const SEEDS: usize = 3;

/// Creates `members` namespaces and starts an agent in each, all joining
/// through the first three members.
pub fn start(members: usize, preset: Preset, bin: &Path) -> Result<Cluster> {
    start_with(members, preset, bin, |_| {})
}

/// Like [`start`], letting `customize` adjust each member's spec (CPU
/// pinning, `VIGIL_FAULTS`) before it starts.
pub fn start_with(
    members: usize,
    preset: Preset,
    bin: &Path,
    customize: impl Fn(&mut AgentSpec),
) -> Result<Cluster> {
    let lab = Lab::new(members)?;
    let dir = lab.dir().to_path_buf();
    let slots = lab.slots().to_vec();
    let mut c = Cluster::new(bin, dir, preset, lab);
    c.interrupt_on(crate::signal::flag());
    c.set_polling(POLL, HTTP_TIMEOUT);
    let gossip: Vec<SocketAddr> = slots.iter().map(|s| SocketAddr::from((s.ip, GOSSIP_PORT))).collect();
    for s in &slots {
        let mut spec = c.new_spec(&format!("m{}", s.index))?;
        spec.gossip = gossip[s.index];
        spec.advertise = true;
        spec.http = SocketAddr::from((s.ip, HTTP_PORT));
        spec.join =
            gossip.iter().enumerate().filter(|(j, _)| *j != s.index).take(SEEDS).map(|(_, a)| *a).collect();
        // As operators run it: the default leave timeout, RUST_LOG inherited.
        spec.leave_timeout = None;
        spec.env.clear();
        spec.wrapper = ["ip", "netns", "exec", s.ns.as_str()].map(OsString::from).to_vec();
        customize(&mut spec);
        c.add(spec)?;
    }
    // An agent that refuses its flags exits at once: say why, now.
    crate::signal::sleep(Duration::from_millis(500))?;
    for i in 0..members {
        if !c.is_running(i) {
            return Err(Error::Environment(format!(
                "agent {} exited at start; its log:\n{}",
                c.name(i),
                c.log_tail(i, 10)
            )));
        }
    }
    Ok(c)
}
