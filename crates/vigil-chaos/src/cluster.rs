//! A cluster: a [`Lab`] with one agent per namespace, their event log, and
//! waits on what the agents' HTTP APIs show.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::agent::{Agent, AgentBin, AgentSpec, GOSSIP_PORT, HTTP_PORT, Preset};
use crate::error::{Error, Result};
use crate::events::EventLog;
use crate::http::{self, MemberView};
use crate::net::Lab;
use crate::nft;

/// Each running, unpaused agent's `GET /v1/members`, by observer name.
pub type Views = BTreeMap<String, Vec<MemberView>>;

/// How long one API request may take.
const HTTP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often waits poll the APIs.
const POLL: Duration = Duration::from_millis(200);
/// Seeds each agent is given (the first members, other than itself).
const SEEDS: usize = 3;

/// N agents in N namespaces. Dropping it kills the agents, then removes
/// the namespaces.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: processes go before their namespaces.
    agents: Vec<Option<Agent>>,
    paused: BTreeSet<usize>,
    specs: Vec<AgentSpec>,
    bin: AgentBin,
    events: EventLog,
    lab: Lab,
}

impl Cluster {
    /// Creates `members` namespaces and starts an agent in each, all joining
    /// through the first three members.
    pub fn start(members: usize, preset: Preset, bin_path: &std::path::Path) -> Result<Cluster> {
        Self::start_with(members, preset, bin_path, |_| {})
    }

    /// Like [`Cluster::start`], letting `customize` adjust each member's spec
    /// (CPU pinning, `VIGIL_FAULTS`) before anything starts.
    pub fn start_with(
        members: usize,
        preset: Preset,
        bin_path: &std::path::Path,
        customize: impl Fn(&mut AgentSpec),
    ) -> Result<Cluster> {
        let lab = Lab::new(members)?;
        let bin = AgentBin::probe(bin_path, lab.dir())?;
        let gossip: Vec<SocketAddr> =
            lab.slots().iter().map(|s| SocketAddr::from((s.ip, GOSSIP_PORT))).collect();
        let specs = lab
            .slots()
            .iter()
            .map(|s| AgentSpec {
                name: format!("m{}", s.index),
                ns: s.ns.clone(),
                gossip: gossip[s.index],
                http: SocketAddr::from((s.ip, HTTP_PORT)),
                data_dir: lab.dir().join(format!("m{}", s.index)),
                preset,
                join: gossip
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != s.index)
                    .take(SEEDS)
                    .map(|(_, a)| *a)
                    .collect(),
                faults: None,
                cpu: None,
            })
            .map(|mut s| {
                customize(&mut s);
                s
            })
            .collect();
        let mut c = Cluster {
            agents: Vec::new(),
            paused: BTreeSet::new(),
            specs,
            bin,
            events: EventLog::default(),
            lab,
        };
        for i in 0..members {
            crate::signal::check()?;
            let a = Agent::start(&c.bin, &c.specs[i], &c.events)?;
            c.agents.push(Some(a));
        }
        // An agent that refuses its flags exits at once: say why, now.
        crate::signal::sleep(Duration::from_millis(500))?;
        for i in 0..members {
            if !c.agents[i].as_mut().is_some_and(Agent::running) {
                return Err(Error::Environment(format!(
                    "agent {} exited at start; its log:\n{}",
                    c.name(i),
                    c.log_tail(i, 10)
                )));
            }
        }
        Ok(c)
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True for a cluster of no members (never: [`Lab::new`] refuses it).
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Member `i`'s name.
    pub fn name(&self, i: usize) -> String {
        self.specs[i].name.clone()
    }

    /// All member names.
    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// The lab (namespaces and addresses).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The event log of every agent.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Member `i`'s start parameters; changes apply at its next start.
    pub fn spec_mut(&mut self, i: usize) -> &mut AgentSpec {
        &mut self.specs[i]
    }

    /// Member `i`'s agent, if running.
    pub fn agent_mut(&mut self, i: usize) -> Option<&mut Agent> {
        self.agents.get_mut(i).and_then(Option::as_mut)
    }

    /// Indices of agents whose process runs and is not stopped.
    pub fn answering(&mut self) -> Vec<usize> {
        let paused = self.paused.clone();
        let mut out = Vec::new();
        for (i, a) in self.agents.iter_mut().enumerate() {
            if !paused.contains(&i) && a.as_mut().is_some_and(Agent::running) {
                out.push(i);
            }
        }
        out
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.paused.remove(&i);
        match self.agents[i].take() {
            Some(mut a) => a.kill(),
            None => Ok(()),
        }
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.running(i)?.signal(Signal::SIGSTOP)?;
        self.paused.insert(i);
        Ok(())
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.running(i)?.signal(Signal::SIGCONT)?;
        self.paused.remove(&i);
        Ok(())
    }

    /// SIGTERM member `i` and wait for it to exit; fails unless it exits 0.
    pub fn terminate(&mut self, i: usize, within: Duration) -> Result<Duration> {
        let t = Instant::now();
        let name = self.name(i);
        let mut a =
            self.agents[i].take().ok_or_else(|| Error::Assertion(format!("{name} is not running")))?;
        let status = a.terminate(within)?;
        if !status.success() {
            return Err(Error::Assertion(format!(
                "{name} exited with {status} after SIGTERM; log:\n{}",
                a.log_tail(20)
            )));
        }
        Ok(t.elapsed())
    }

    /// Sends SIGTERM to several members at once, then waits for each.
    pub fn terminate_all(&mut self, which: &[usize], within: Duration) -> Result<()> {
        for &i in which {
            self.running(i)?.signal(Signal::SIGTERM)?;
        }
        for &i in which {
            self.terminate_sent(i, within)?;
        }
        Ok(())
    }

    fn terminate_sent(&mut self, i: usize, within: Duration) -> Result<()> {
        let name = self.name(i);
        let end = Instant::now() + within;
        let a = self.running(i)?;
        while a.running() {
            if Instant::now() >= end {
                a.kill()?;
                return Err(Error::Timeout { what: format!("{name} to exit after SIGTERM"), after: within });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.agents[i].take();
        Ok(())
    }

    /// (Re)starts member `i` with its current spec.
    pub fn start_member(&mut self, i: usize) -> Result<()> {
        if self.agents[i].is_some() {
            return Err(Error::Assertion(format!("{} is already running", self.name(i))));
        }
        self.agents[i] = Some(Agent::start(&self.bin, &self.specs[i], &self.events)?);
        Ok(())
    }

    fn running(&mut self, i: usize) -> Result<&mut Agent> {
        let name = self.name(i);
        self.agents[i].as_mut().ok_or_else(|| Error::Assertion(format!("{name} is not running")))
    }

    /// Replaces member `i`'s packet-drop rules.
    pub fn set_rules(&self, i: usize, rules: &[nft::Rule]) -> Result<()> {
        nft::set(&self.lab.slots()[i].ns, rules)
    }

    /// Removes every member's rules.
    pub fn clear_rules(&self) -> Result<()> {
        self.lab.slots().iter().try_for_each(|s| nft::clear(&s.ns))
    }

    /// The views of the given observers; an observer that does not answer
    /// is left out.
    pub fn views_of(&self, observers: &[usize]) -> Views {
        let mut out = Views::new();
        for &i in observers {
            if let Ok(v) = http::members(&self.lab, self.specs[i].http, HTTP_TIMEOUT) {
                out.insert(self.name(i), v);
            }
        }
        out
    }

    /// Polls the views of `observers` until `pred` holds for them (all of
    /// them must answer), for at most `timeout`. Returns the time it took.
    pub fn wait_until(
        &self,
        what: &str,
        observers: &[usize],
        timeout: Duration,
        mut pred: impl FnMut(&Views) -> bool,
    ) -> Result<Duration> {
        let t = Instant::now();
        let mut polls = 0u32;
        loop {
            crate::signal::check()?;
            let views = self.views_of(observers);
            if views.len() == observers.len() && pred(&views) {
                return Ok(t.elapsed());
            }
            polls += 1;
            if t.elapsed() >= timeout || polls > 100_000 {
                return Err(Error::Timeout {
                    what: format!("{what}; last views: {}", summarize(&views)),
                    after: timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every observer sees each of `members` in `state`.
    pub fn wait_state(
        &self,
        observers: &[usize],
        members: &[usize],
        state: &str,
        timeout: Duration,
    ) -> Result<Duration> {
        let names: Vec<String> = members.iter().map(|&m| self.name(m)).collect();
        let what = format!("{observers:?} to see {names:?} {state}");
        self.wait_until(&what, observers, timeout, |views| all_see(views, &names, state))
    }

    /// Waits until every running member sees every member alive.
    pub fn wait_converged(&mut self, timeout: Duration) -> Result<Duration> {
        let all: Vec<usize> = (0..self.len()).collect();
        let observers = self.answering();
        self.wait_state(&observers, &all, "alive", timeout)
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        crate::agent::tail(&self.specs[i].data_dir.with_extension("log"), lines)
    }

    /// The data directory root (for reports).
    pub fn dir(&self) -> PathBuf {
        self.lab.dir().to_path_buf()
    }
}

/// True when each view lists each of `names` in `state`.
pub fn all_see(views: &Views, names: &[String], state: &str) -> bool {
    views.values().all(|v| names.iter().all(|n| v.iter().any(|m| &m.name == n && m.state == state)))
}

/// A short text of who sees what not-alive, for timeout messages.
pub fn summarize(views: &Views) -> String {
    let mut parts = Vec::new();
    for (obs, v) in views {
        let odd: Vec<String> =
            v.iter().filter(|m| m.state != "alive").map(|m| format!("{}={}", m.name, m.state)).collect();
        parts.push(format!(
            "{obs}: {} listed, {}",
            v.len(),
            if odd.is_empty() { "all alive".into() } else { odd.join(" ") }
        ));
    }
    if parts.is_empty() { "no agent answered".into() } else { parts.join("; ") }
}
