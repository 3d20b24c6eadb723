//! A cluster of agent processes: start, stop, kill, pause and restart them
//! by index, read their events, and wait on what their HTTP APIs show.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::error::Error;
use super::events::EventLog;
use super::place::Place;
use super::process::{AgentProcess, AgentSpec, tail};
use crate::config::Preset;

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

impl MemberView {
    /// The members of a `GET /v1/members` answer; `None` if it is not a member list.
    pub fn list(v: &Value) -> Option<Vec<MemberView>> {
        v.as_array()?
            .iter()
            .map(|m| {
                Some(MemberView {
                    name: m.get("name")?.as_str()?.to_string(),
                    addr: m.get("addr").and_then(Value::as_str).unwrap_or_default().to_string(),
                    state: m.get("state")?.as_str()?.to_string(),
                    incarnation: m.get("incarnation").and_then(Value::as_u64).unwrap_or(0),
                })
            })
            .collect()
    }
}

/// Each answering agent's `GET /v1/members`, by observer name.
pub type Views = BTreeMap<String, Vec<MemberView>>;

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

#[derive(Debug)]
struct Member {
    spec: AgentSpec,
    process: Option<AgentProcess>,
    paused: bool,
}

/// Agent processes placed by `P`. Dropping it kills every agent still
/// running, then drops the place (processes go before their namespaces).
#[derive(Debug)]
pub struct Cluster<P: Place = super::place::Loopback> {
    // Field order is drop order: processes go before their place.
    members: Vec<Member>,
    exe: PathBuf,
    dir: PathBuf,
    preset: Preset,
    events: EventLog,
    interrupt: Option<Arc<AtomicBool>>,
    poll: Duration,
    http_timeout: Duration,
    place: P,
}

impl<P: Place> Cluster<P> {
    /// An empty cluster of agents of binary `exe`, with data directories,
    /// logs and the shared key file under `dir`, all running `preset`.
    pub fn new(exe: impl Into<PathBuf>, dir: impl Into<PathBuf>, preset: Preset, place: P) -> Self {
        Cluster {
            members: Vec::new(),
            exe: exe.into(),
            dir: dir.into(),
            preset,
            events: EventLog::default(),
            interrupt: None,
            poll: Duration::from_millis(50),
            http_timeout: Duration::from_secs(2),
            place,
        }
    }

    /// Every wait returns [`Error::Interrupted`] once `flag` is set (Ctrl-C).
    pub fn interrupt_on(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Sets how often waits poll the APIs, and how long one request may take.
    pub fn set_polling(&mut self, every: Duration, http_timeout: Duration) {
        self.poll = every;
        self.http_timeout = http_timeout;
    }

    fn check(&self) -> Result<(), Error> {
        match &self.interrupt {
            Some(f) if f.load(Ordering::SeqCst) => Err(Error::Interrupted),
            _ => Ok(()),
        }
    }

    /// Sleeps `d` in short steps; fails early once interrupted.
    pub fn pause_for(&self, d: Duration) -> Result<(), Error> {
        let end = Instant::now() + d;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }

    /// A spec for a new agent `name` on loopback with ports the agent picks,
    /// its data directory and log under the cluster's directory, the shared
    /// key file, the cluster's preset, a 2 s leave timeout and `RUST_LOG=info`.
    pub fn new_spec(&self, name: &str) -> Result<AgentSpec, Error> {
        Ok(AgentSpec {
            name: name.into(),
            gossip: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: false,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: self.dir.join(name),
            log: self.dir.join(format!("{name}.log")),
            preset: self.preset,
            join: Vec::new(),
            leave_timeout: Some(Duration::from_secs(2)),
            key_file: Some(self.key_file()?),
            token_file: None,
            env: vec![("RUST_LOG".into(), "info".into())],
            faults: None,
            wrapper: Vec::new(),
            cpu: None,
            args: Vec::new(),
        })
    }

    /// Starts a new agent `name` from [`Cluster::new_spec`], joining through
    /// the agents `join` (indices). Returns its index.
    pub fn add_agent(&mut self, name: &str, join: &[usize]) -> Result<usize, Error> {
        let mut spec = self.new_spec(name)?;
        spec.join = join.iter().map(|&j| self.members[j].spec.gossip).collect();
        self.add(spec)
    }

    /// Starts a new agent from `spec`. Returns its index.
    pub fn add(&mut self, spec: AgentSpec) -> Result<usize, Error> {
        self.check()?;
        self.members.push(Member { spec, process: None, paused: false });
        let i = self.members.len() - 1;
        self.start(i)?;
        Ok(i)
    }

    /// (Re)starts agent `i` from its spec (the same addresses and data
    /// directory as before).
    pub fn start(&mut self, i: usize) -> Result<(), Error> {
        if self.members[i].process.is_some() {
            return Err(Error::Agent(format!("{} is already running", self.name(i))));
        }
        if self.members[i].spec.token_file.is_none() && !self.members[i].spec.http.ip().is_loopback() {
            self.members[i].spec.token_file = Some(self.secret_file("http.token")?);
        }
        let m = &mut self.members[i];
        m.process = Some(AgentProcess::start(&self.exe, &mut m.spec, &self.events)?);
        m.paused = false;
        Ok(())
    }

    /// The key file shared by these agents (created on first use, mode 0600).
    pub fn key_file(&self) -> Result<PathBuf, Error> {
        self.secret_file("cluster.key")
    }

    /// A fresh random key in `dir/name` (mode 0600), made once: base64 of 32
    /// random bytes, a cluster key and a fine API token alike.
    fn secret_file(&self, name: &str) -> Result<PathBuf, Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(name);
        if !path.exists() {
            let context = format!("writing {}", path.display());
            let io = |source| Error::Io { context: context.clone(), source };
            std::fs::create_dir_all(&self.dir).map_err(io)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            writeln!(f, "{}", vigil::Key::generate().to_base64()).map_err(io)?;
        }
        Ok(path)
    }

    /// Number of agents (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True before the first agent is added.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Agent `i`'s name.
    pub fn name(&self, i: usize) -> String {
        self.members[i].spec.name.clone()
    }

    /// All agent names, by index.
    pub fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.spec.name.clone()).collect()
    }

    /// Agent `i`'s start parameters (with the addresses it bound).
    pub fn spec(&self, i: usize) -> &AgentSpec {
        &self.members[i].spec
    }

    /// Agent `i`'s start parameters; changes apply at its next start.
    pub fn spec_mut(&mut self, i: usize) -> &mut AgentSpec {
        &mut self.members[i].spec
    }

    /// Agent `i`'s gossip address.
    pub fn gossip(&self, i: usize) -> SocketAddr {
        self.members[i].spec.gossip
    }

    /// Agent `i`'s HTTP API address.
    pub fn http(&self, i: usize) -> SocketAddr {
        self.members[i].spec.http
    }

    /// Agent `i`'s API base URL, `http://IP:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.members[i].spec.http)
    }

    /// Agent `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.as_ref().and_then(AgentProcess::pid)
    }

    /// Agent `i`'s process, while it runs.
    pub fn process_mut(&mut self, i: usize) -> Option<&mut AgentProcess> {
        self.members[i].process.as_mut()
    }

    /// True while agent `i`'s process runs (stopped or not).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].process.as_mut().is_some_and(AgentProcess::running)
    }

    /// Indices of agents whose process runs and is not stopped.
    pub fn answering(&mut self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| !self.members[i].paused && self.is_running(i)).collect()
    }

    /// The events of every agent.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Where the agents run.
    pub fn place(&self) -> &P {
        &self.place
    }

    /// The directory holding data directories, logs and secrets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Agent `i`'s log (stderr).
    pub fn log_path(&self, i: usize) -> &Path {
        &self.members[i].spec.log
    }

    /// The last `lines` lines of agent `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        tail(&self.members[i].spec.log, lines)
    }

    fn running(&mut self, i: usize) -> Result<&mut AgentProcess, Error> {
        let name = self.name(i);
        self.members[i].process.as_mut().ok_or(Error::NotRunning(name))
    }

    /// SIGKILLs agent `i` (if it runs) and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].paused = false;
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Sends `sig` to agent `i`.
    pub fn signal(&mut self, i: usize, sig: Signal) -> Result<(), Error> {
        self.running(i)?.signal(sig)
    }

    /// SIGSTOPs agent `i`.
    pub fn pause(&mut self, i: usize) -> Result<(), Error> {
        self.signal(i, Signal::SIGSTOP)?;
        self.members[i].paused = true;
        Ok(())
    }

    /// SIGCONTs agent `i`.
    pub fn resume(&mut self, i: usize) -> Result<(), Error> {
        self.signal(i, Signal::SIGCONT)?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Waits up to `within` for agent `i` to exit by itself (after a signal
    /// sent with [`Cluster::signal`], or a `POST /v1/leave`); returns its
    /// status. At the deadline it is left running.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> Result<ExitStatus, Error> {
        let status = self.running(i)?.wait_exit(within)?;
        self.members[i].process = None;
        Ok(status)
    }

    fn finish(&mut self, i: usize, status: Result<ExitStatus, Error>) -> Result<ExitStatus, Error> {
        let p = self.members[i].process.take();
        match status {
            Ok(s) if !s.success() => Err(Error::Exited {
                name: self.name(i),
                status: s,
                log: p.as_ref().map(|p| p.log_tail(20)).unwrap_or_default(),
            }),
            other => other,
        }
    }

    /// Stops agent `i` gracefully by closing its stdin (it leaves, then
    /// exits), killing it if it has not exited within `within`. Fails unless
    /// it exits 0 in time.
    pub fn stop(&mut self, i: usize, within: Duration) -> Result<ExitStatus, Error> {
        let status = self.running(i)?.stop(within);
        self.finish(i, status)
    }

    /// SIGTERMs agent `i` and waits for it to exit (killing it if late);
    /// fails unless it exits 0 in time. Returns how long it took.
    pub fn terminate(&mut self, i: usize, within: Duration) -> Result<Duration, Error> {
        let t = Instant::now();
        let status = self.running(i)?.terminate(within);
        self.finish(i, status)?;
        Ok(t.elapsed())
    }

    /// SIGTERMs several agents at once, then waits for each (as
    /// [`Cluster::terminate`]).
    pub fn terminate_all(&mut self, which: &[usize], within: Duration) -> Result<(), Error> {
        for &i in which {
            self.signal(i, Signal::SIGTERM)?;
        }
        self.await_exits(which, within)
    }

    /// Closes the stdin of several agents at once (each leaves), then waits
    /// for each (as [`Cluster::stop`]).
    pub fn stop_all(&mut self, which: &[usize], within: Duration) -> Result<(), Error> {
        for &i in which {
            self.running(i)?.close_stdin();
        }
        self.await_exits(which, within)
    }

    fn await_exits(&mut self, which: &[usize], within: Duration) -> Result<(), Error> {
        let end = Instant::now() + within;
        let mut first_error = None;
        for &i in which {
            self.check()?;
            let left = end.saturating_duration_since(Instant::now());
            let status = self.running(i)?.exit_or_kill(left);
            if let Err(e) = self.finish(i, status) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `GET path` on agent `i`'s API, as JSON.
    pub fn get(&self, i: usize, path: &str) -> Result<Value, Error> {
        self.place.get(self.members[i].spec.http, path, self.http_timeout).map_err(Error::Agent)
    }

    /// Agent `i`'s `GET /v1/members`.
    pub fn view(&self, i: usize) -> Result<Vec<MemberView>, Error> {
        let v = self.get(i, "/v1/members")?;
        MemberView::list(&v).ok_or_else(|| {
            Error::Agent(format!(
                "{}: not a member list: {}",
                self.name(i),
                v.to_string().chars().take(200).collect::<String>()
            ))
        })
    }

    /// The views of the given observers; an observer that does not answer
    /// is left out.
    pub fn views_of(&self, observers: &[usize]) -> Views {
        observers.iter().filter_map(|&i| Some((self.name(i), self.view(i).ok()?))).collect()
    }

    /// Polls the views of `observers` until `pred` holds for them (all of
    /// them must answer), for at most `timeout`. Returns the time it took.
    pub fn wait_until(
        &self,
        what: &str,
        observers: &[usize],
        timeout: Duration,
        mut pred: impl FnMut(&Views) -> bool,
    ) -> Result<Duration, Error> {
        let t = Instant::now();
        loop {
            self.check()?;
            let views = self.views_of(observers);
            if views.len() == observers.len() && pred(&views) {
                return Ok(t.elapsed());
            }
            if t.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("{what}; last views: {}", summarize(&views)),
                    after: timeout,
                });
            }
            std::thread::sleep(self.poll);
        }
    }

    /// Waits until every observer sees each of `members` in `state`.
    pub fn wait_state(
        &self,
        observers: &[usize],
        members: &[usize],
        state: &str,
        timeout: Duration,
    ) -> Result<Duration, Error> {
        let names: Vec<String> = members.iter().map(|&m| self.name(m)).collect();
        let what = format!("{observers:?} to see {names:?} {state}");
        self.wait_until(&what, observers, timeout, |views| all_see(views, &names, state))
    }

    /// Waits until every agent that runs (and is not stopped) sees every
    /// running agent alive.
    pub fn wait_converged(&mut self, timeout: Duration) -> Result<Duration, Error> {
        let observers = self.answering();
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.members[i].process.is_some()).collect();
        self.wait_state(&observers, &running, "alive", timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_member_list_and_says_who_sees_what() {
        let body: Value = serde_json::from_str(r#"[{"name":"m0","addr":"198.18.1.1:7950","state":"alive","incarnation":3,"meta":{},"health":{"status":"ok","reason":null},"phi":0.1,"rtt_ms":0.4,"since_ms":12},{"name":"m1","addr":"198.18.1.2:7950","state":"dead","incarnation":1}]"#).unwrap();
        let m = MemberView::list(&body).expect("a list");
        assert_eq!(
            m[0],
            MemberView {
                name: "m0".into(),
                addr: "198.18.1.1:7950".into(),
                state: "alive".into(),
                incarnation: 3
            }
        );
        assert!(MemberView::list(&serde_json::json!({})).is_none());
        let views: Views = [("m0".to_string(), m)].into();
        assert!(all_see(&views, &["m0".into()], "alive") && !all_see(&views, &["m1".into()], "alive"));
        assert_eq!(summarize(&views), "m0: 2 listed, m1=dead");
        assert_eq!(summarize(&Views::new()), "no agent answered");
    }
}
