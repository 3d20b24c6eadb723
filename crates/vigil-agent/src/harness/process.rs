//! One agent process: `vigil agent` started from an [`AgentSpec`], its
//! events captured from stdout, its log (stderr) appended to a file.
//!
//! The agent runs in its own process group (a Ctrl-C in the terminal
//! reaches only the harness, which stops the agents itself) with its stdin
//! piped and `VIGIL_EXIT_ON_STDIN_EOF` set, so that it leaves and exits if
//! the harness dies, even by SIGKILL. An [`AgentProcess`] kills its process
//! on drop (after a SIGCONT, in case it was stopped).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::Error;
use super::events::EventLog;
use crate::agent::STARTED;
use crate::config::Preset;

/// How long a new agent may take to say which addresses it bound.
const START_WITHIN: Duration = Duration::from_secs(10);
/// How often exits and logs are polled.
const POLL: Duration = Duration::from_millis(20);
/// Starts on ports the harness picked, when the ones picked were taken.
const PICK_ATTEMPTS: u32 = 3;
/// What the OS says of a port already bound (`EADDRINUSE`), as an agent
/// that cannot bind logs it.
const ADDR_IN_USE: &str = "Address already in use";

/// Gives a loopback address of port 0 in `spec` a free port below the
/// kernel's ephemeral range, kept for restarts. A port the kernel chose
/// (port 0) is an ephemeral one: while the agent is stopped, any outgoing
/// connection on the host (another agent's stream, an HTTP poll) may be
/// given it, and the restarted agent cannot bind it ("Address already in
/// use", seen once in ~15 runs of a test that restarts an agent 50 times).
/// A port below the range is never given to a connection. Other addresses
/// (a namespace's), or no free port found: left at 0 for the agent.
fn settled_ports(spec: &mut AgentSpec) {
    if spec.gossip.port() == 0
        && spec.gossip.ip().is_loopback()
        && let Some(port) = unused_port(spec.gossip.ip(), true)
    {
        spec.gossip.set_port(port);
    }
    if spec.http.port() == 0
        && spec.http.ip().is_loopback()
        && let Some(port) = unused_port(spec.http.ip(), false)
    {
        spec.http.set_port(port);
    }
}

/// A port on `ip` free for TCP (and UDP: `udp_too`) now, drawn at random
/// from the half of the ports below the ephemeral range nearest to it.
fn unused_port(ip: std::net::IpAddr, udp_too: bool) -> Option<u16> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = u64::from(low / 2);
    if span < 1024 {
        return None;
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut x =
        u64::from(std::process::id()) << 32 ^ (nanos as u64) ^ DRAWS.fetch_add(1, Ordering::Relaxed) << 48;
    for _ in 0..200 {
        // splitmix64: parallel test processes draw different ports.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let port = low - 1 - u16::try_from(z % span).unwrap_or(0);
        let tcp = std::net::TcpListener::bind((ip, port));
        let udp = if udp_too { std::net::UdpSocket::bind((ip, port)).map(|_| ()) } else { Ok(()) };
        if tcp.is_ok() && udp.is_ok() {
            return Some(port);
        }
    }
    None
}

/// Everything needed to (re)start one agent.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// Member name.
    pub name: String,
    /// Gossip address (UDP and TCP). Port 0: one is picked at its first
    /// start (on loopback a free port below the ephemeral range, else by
    /// the agent, read from its log), kept for restarts.
    pub gossip: SocketAddr,
    /// Also pass the gossip address as `--advertise`.
    pub advertise: bool,
    /// HTTP API address; port 0 as for `gossip`.
    pub http: SocketAddr,
    /// Snapshot directory (kept across restarts).
    pub data_dir: PathBuf,
    /// The agent's log (stderr), appended across restarts.
    pub log: PathBuf,
    /// Protocol preset.
    pub preset: Preset,
    /// Seeds (`--join`); empty: rejoin from the snapshot.
    pub join: Vec<SocketAddr>,
    /// Time allowed for a graceful leave (`--leave-timeout`); none: the agent's default.
    pub leave_timeout: Option<Duration>,
    /// Cluster key file; none: `--insecure-plaintext`.
    pub key_file: Option<PathBuf>,
    /// API token file (`--http-token-file`), required for an API beyond loopback.
    pub token_file: Option<PathBuf>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// `VIGIL_FAULTS` value, if any (test-only fault injection: the agent
    /// binary must be built with the feature `testing`, as `cargo test`
    /// builds it; other builds ignore it).
    pub faults: Option<String>,
    /// A program (and its arguments) that runs the agent's command line,
    /// e.g. `ip netns exec NS`; it must exec, so that the process is the agent.
    pub wrapper: Vec<OsString>,
    /// Pin to this CPU (`taskset -c`).
    pub cpu: Option<usize>,
    /// More `vigil agent` arguments, after the others (e.g. `--config FILE`).
    pub args: Vec<OsString>,
}

impl AgentSpec {
    /// The command line that starts this agent with binary `exe`.
    pub fn command(&self, exe: &Path) -> Command {
        let mut parts: Vec<OsString> = self.wrapper.clone();
        if let Some(cpu) = self.cpu {
            parts.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        parts.push(exe.into());
        let mut cmd = Command::new(&parts[0]);
        cmd.args(&parts[1..]).arg("agent");
        cmd.args(["--name", &self.name, "--bind", &self.gossip.to_string()]);
        if self.advertise {
            cmd.args(["--advertise", &self.gossip.to_string()]);
        }
        cmd.args(["--http", &self.http.to_string()]);
        cmd.arg("--data-dir").arg(&self.data_dir);
        cmd.args(["--preset", self.preset.as_str(), "--events-json", "--log-format", "text"]);
        if let Some(t) = self.leave_timeout {
            cmd.args(["--leave-timeout", &humantime::format_duration(t).to_string()]);
        }
        for j in &self.join {
            cmd.args(["--join", &j.to_string()]);
        }
        match &self.key_file {
            Some(k) => cmd.arg("--key-file").arg(k),
            None => cmd.arg("--insecure-plaintext"),
        };
        if let Some(t) = &self.token_file {
            cmd.arg("--http-token-file").arg(t);
        }
        cmd.args(&self.args);
        cmd.env("VIGIL_EXIT_ON_STDIN_EOF", "true");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        match &self.faults {
            Some(f) => cmd.env("VIGIL_FAULTS", f),
            None => cmd.env_remove("VIGIL_FAULTS"),
        };
        cmd
    }
}

/// A running agent process; killed on drop.
#[derive(Debug)]
pub struct AgentProcess {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    reader: Option<(JoinHandle<()>, mpsc::Receiver<()>)>,
    log: PathBuf,
    started: Instant,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

impl AgentProcess {
    /// Starts `spec` with binary `exe`, recording its events in `events`.
    /// When a port of `spec` is 0, waits for the agent to report what it
    /// bound and writes the addresses into `spec`.
    ///
    /// A port the harness picked was free when it looked, but another
    /// process (a test running beside this one) may bind it before the
    /// agent does; the agent then exits with "Address already in use" and
    /// is started again on other ports (three starts at most).
    pub fn start(exe: &Path, spec: &mut AgentSpec, events: &EventLog) -> Result<AgentProcess, Error> {
        let asked = (spec.gossip, spec.http);
        let picks = asked.0.port() == 0 || asked.1.port() == 0;
        let mut attempt = 1;
        loop {
            match Self::start_once(exe, spec, events) {
                Err(Error::Start(log)) if picks && attempt < PICK_ATTEMPTS && log.contains(ADDR_IN_USE) => {
                    (spec.gossip, spec.http) = asked;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(exe: &Path, spec: &mut AgentSpec, events: &EventLog) -> Result<AgentProcess, Error> {
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(io(format!("creating {}", spec.data_dir.display())))?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(io(format!("opening {}", spec.log.display())))?;
        let log_start = stderr.metadata().map_or(0, |m| m.len());
        let pick = spec.gossip.port() == 0 || spec.http.port() == 0;
        if pick {
            settled_ports(spec);
        }
        let mut cmd = spec.command(exe);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().map_err(io(format!("starting {cmd:?}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut agent = AgentProcess {
            name: spec.name.clone(),
            child: Some(child),
            stdin,
            reader: None,
            log: spec.log.clone(),
            started: Instant::now(),
        };
        if let Some(out) = stdout {
            agent.reader =
                Some(events.capture(spec.name.clone(), out).map_err(io("spawning an event reader"))?);
        }
        if pick {
            let (gossip, http) = agent.bound_addresses(log_start)?;
            spec.gossip = gossip;
            spec.http = http;
        }
        Ok(agent)
    }

    /// Reads the addresses the agent bound from its "started" log line
    /// (written from `offset` of the log on).
    fn bound_addresses(&mut self, offset: u64) -> Result<(SocketAddr, SocketAddr), Error> {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let text = std::fs::read(&self.log).unwrap_or_default();
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
            let text = String::from_utf8_lossy(&text[start..]);
            if let Some(addrs) = text.lines().find(|l| l.contains(STARTED)).and_then(started_addresses) {
                return Ok(addrs);
            }
            if !self.running() {
                return Err(Error::Start(format!(
                    "{} exited at start; its log:\n{}",
                    self.name,
                    self.log_tail(20)
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Start(format!(
                    "{} did not log \"{STARTED}\" with its addresses within {START_WITHIN:?} \
                     (RUST_LOG must let `info` through); its log:\n{}",
                    self.name,
                    self.log_tail(20)
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` to the agent (and only to it, by PID).
    pub fn signal(&self, sig: Signal) -> Result<(), Error> {
        let pid = self.pid().ok_or_else(|| Error::NotRunning(self.name.clone()))?;
        let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        kill(pid, sig).map_err(|e| Error::Io { context: format!("kill -{sig} {pid}"), source: e.into() })
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdin.take();
        self.finish_reader();
    }

    /// Closes the agent's stdin: it leaves gracefully and exits.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits up to `within` for the process to exit by itself; returns its
    /// status. At the deadline it is left running ([`Error::Timeout`]).
    pub fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        let end = Instant::now() + within;
        loop {
            let c = self.child.as_mut().ok_or_else(|| Error::NotRunning(self.name.clone()))?;
            if let Some(status) = c.try_wait().map_err(io("waiting for an agent"))? {
                self.child = None;
                self.stdin.take();
                self.finish_reader();
                return Ok(status);
            }
            if Instant::now() >= end {
                return Err(Error::Timeout { what: format!("{} to exit", self.name), after: within });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits up to `within` for an exit asked for (a signal, closed stdin);
    /// kills the process if it is late.
    pub fn exit_or_kill(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        let r = self.wait_exit(within);
        if r.is_err() {
            self.kill();
        }
        r
    }

    /// SIGTERM, then waits up to `within` for the exit; kills it if late.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        self.signal(Signal::SIGTERM)?;
        self.exit_or_kill(within)
    }

    /// Closes stdin (a graceful leave), then waits up to `within` for the
    /// exit; kills it if late.
    pub fn stop(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        self.close_stdin();
        self.exit_or_kill(within)
    }

    /// Lets the event reader take the last lines (bounded: a grandchild
    /// that kept the pipe open must not hang the harness).
    fn finish_reader(&mut self) {
        if let Some((thread, done)) = self.reader.take()
            && done.recv_timeout(Duration::from_secs(2)).is_ok()
        {
            let _ = thread.join();
        }
    }

    /// The last `lines` lines of the agent's log (stderr), for failure reports.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// How long ago it was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.signal(Signal::SIGCONT);
        }
        self.kill();
    }
}

/// The gossip and HTTP addresses in an agent's "started" log line
/// (`... gossip=IP:PORT http=IP:PORT ...`, text or JSON format).
fn started_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let field = |key: &str| -> Option<SocketAddr> {
        let text = [format!("{key}="), format!("\"{key}\":\"")]
            .iter()
            .find_map(|p| line.find(p.as_str()).map(|i| &line[i + p.len()..]))?;
        let end = text.find(|c: char| c.is_whitespace() || c == '"' || c == ',').unwrap_or(text.len());
        text[..end].parse().ok()
    };
    Some((field("gossip")?, field("http")?))
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_started_line_gives_both_addresses_in_either_format() {
        let text = "2026-11-28T09:00:00Z  INFO vigil_agent::agent: vigil agent started name=a gossip=127.0.0.1:4100 http=127.0.0.1:4101 preset=Local";
        let json = r#"{"fields":{"message":"vigil agent started","name":"a","gossip":"[::1]:4100","http":"127.0.0.1:4101"}}"#;
        assert_eq!(
            started_addresses(text),
            Some(("127.0.0.1:4100".parse().unwrap(), "127.0.0.1:4101".parse().unwrap()))
        );
        assert_eq!(started_addresses(json).map(|a| a.0), Some("[::1]:4100".parse().unwrap()));
        assert_eq!(started_addresses("vigil agent started name=a"), None);
    }

    fn sample_spec() -> AgentSpec {
        AgentSpec {
            name: "m1".into(),
            gossip: "10.0.0.1:7950".parse().unwrap(),
            advertise: true,
            http: "10.0.0.1:7951".parse().unwrap(),
            data_dir: "/d/m1".into(),
            log: "/d/m1.log".into(),
            preset: Preset::Lan,
            join: vec!["10.0.0.2:7950".parse().unwrap()],
            leave_timeout: Some(Duration::from_secs(2)),
            key_file: None,
            token_file: Some("/d/token".into()),
            env: Vec::new(),
            faults: None,
            wrapper: vec!["ip".into(), "netns".into(), "exec".into(), "ns1".into()],
            cpu: Some(1),
            args: Vec::new(),
        }
    }

    #[test]
    fn the_command_line_carries_the_spec() {
        let spec = sample_spec();
        let cmd = spec.command(Path::new("/bin/vigil"));
        let line: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            line.join(" "),
            "ip netns exec ns1 taskset -c 1 /bin/vigil agent --name m1 --bind 10.0.0.1:7950 \
             --advertise 10.0.0.1:7950 --http 10.0.0.1:7951 --data-dir /d/m1 --preset lan --events-json \
             --log-format text --leave-timeout 2s --join 10.0.0.2:7950 --insecure-plaintext \
             --http-token-file /d/token"
        );
    }

    #[test]
    fn ports_picked_on_loopback_lie_below_the_ephemeral_range_and_are_free() {
        let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map_or(32_768, |s| s.split_whitespace().next().unwrap().parse().unwrap());
        let mut spec = AgentSpec {
            gossip: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:0".parse().unwrap(),
            ..sample_spec()
        };
        settled_ports(&mut spec);
        for port in [spec.gossip.port(), spec.http.port()] {
            assert!((low / 2..low).contains(&port), "{port} not below {low}");
        }
        std::net::UdpSocket::bind(spec.gossip).unwrap();
        std::net::TcpListener::bind(spec.http).unwrap();
        // A namespace's address is left to the agent.
        let mut lab = AgentSpec { gossip: "198.18.0.1:0".parse().unwrap(), ..sample_spec() };
        settled_ports(&mut lab);
        assert_eq!(lab.gossip.port(), 0);
    }
}
