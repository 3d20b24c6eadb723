//! Agent processes: `vigil agent` started inside a member's namespace with
//! `ip netns exec` (which execs, so the child's PID is the agent's), its
//! events captured from stdout, its log written to a file. A [`Agent`]
//! kills its process on drop (after a SIGCONT, in case it was stopped).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result, io};
use crate::events::EventLog;

/// Gossip port every agent binds (each has its own address).
pub const GOSSIP_PORT: u16 = 7950;
/// HTTP API port every agent binds on its own address.
pub const HTTP_PORT: u16 = 7951;

/// The agent's protocol preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 1 s protocol period.
    Lan,
    /// 200 ms protocol period.
    Local,
}

impl Preset {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Lan => "lan",
            Preset::Local => "local",
        }
    }
}

/// How this agent binary wants to be told about encryption.
#[derive(Clone, Debug)]
enum Crypto {
    None,
    Plaintext,
    KeyFile(PathBuf),
}

/// The agent binary and the flags it understands.
#[derive(Clone, Debug)]
pub struct AgentBin {
    path: PathBuf,
    crypto: Crypto,
    /// `--http-token-file`, when the binary has it (required for an API
    /// bound beyond loopback; reads need no token).
    token: Option<PathBuf>,
}

impl AgentBin {
    /// Inspects `vigil agent --help` to learn how the binary handles keys; a
    /// key file, if needed, is written (mode 0600) under `dir`.
    pub fn probe(path: &Path, dir: &Path) -> Result<AgentBin> {
        let out = Command::new(path)
            .args(["agent", "--help"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Environment(format!("cannot run {}: {e}", path.display())))?;
        let help = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::Environment(format!(
                "`{} agent --help` failed: {}",
                path.display(),
                out.status
            )));
        }
        let crypto = if help.contains("--key-file") {
            Crypto::KeyFile(write_secret(dir, "cluster.key", 32)?)
        } else if help.contains("--insecure-plaintext") {
            Crypto::Plaintext
        } else {
            Crypto::None
        };
        let token = if help.contains("--http-token-file") {
            Some(write_secret(dir, "http.token", 24)?)
        } else {
            None
        };
        Ok(AgentBin { path: path.to_path_buf(), crypto, token })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `len` random bytes, base64-encoded, to `dir/name` (mode 0600).
fn write_secret(dir: &Path, name: &str, len: usize) -> Result<PathBuf> {
    use base64::Engine as _;
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = vec![0u8; len];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("reading /dev/urandom"))?;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(format!("creating {}", path.display())))?;
    writeln!(f, "{}", base64::engine::general_purpose::STANDARD.encode(bytes))
        .map_err(io("writing a secret"))?;
    Ok(path)
}

/// Everything needed to (re)start one agent.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// Member name.
    pub name: String,
    /// The namespace it runs in.
    pub ns: String,
    /// Gossip address (bind and advertise).
    pub gossip: SocketAddr,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Snapshot directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Preset.
    pub preset: Preset,
    /// Seeds (`--join`); empty: rejoin from the snapshot.
    pub join: Vec<SocketAddr>,
    /// `VIGIL_FAULTS` value, if any (test-only fault injection: the agent
    /// binary must be built with the feature `testing`, as `cargo test` and
    /// [`crate::find_agent_bin`] build it; other builds ignore it).
    pub faults: Option<String>,
    /// Pin to this CPU (`taskset -c`).
    pub cpu: Option<usize>,
}

/// A running agent process; killed on drop.
#[derive(Debug)]
pub struct Agent {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
    started: Instant,
}

impl Agent {
    /// Starts `spec` with `bin`, recording its events in `events`.
    pub fn start(bin: &AgentBin, spec: &AgentSpec, events: &EventLog) -> Result<Agent> {
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(io(format!("creating {}", spec.data_dir.display())))?;
        let log = spec.data_dir.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &spec.ns]);
        if let Some(cpu) = spec.cpu {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(&bin.path).arg("agent");
        cmd.args(["--name", &spec.name]);
        cmd.args(["--bind", &spec.gossip.to_string(), "--advertise", &spec.gossip.to_string()]);
        cmd.args(["--http", &spec.http.to_string()]);
        cmd.arg("--data-dir").arg(&spec.data_dir);
        cmd.args(["--preset", spec.preset.as_str(), "--events-json", "--log-format", "text"]);
        for j in &spec.join {
            cmd.args(["--join", &j.to_string()]);
        }
        match &bin.crypto {
            Crypto::None => {}
            Crypto::Plaintext => {
                cmd.arg("--insecure-plaintext");
            }
            Crypto::KeyFile(p) => {
                cmd.arg("--key-file").arg(p);
            }
        }
        if let Some(t) = &bin.token {
            cmd.arg("--http-token-file").arg(t);
        }
        // The agent exits when its stdin closes, so it never outlives the
        // harness even if the harness is killed with SIGKILL.
        cmd.env("VIGIL_EXIT_ON_STDIN_EOF", "true");
        match &spec.faults {
            Some(f) => cmd.env("VIGIL_FAULTS", f),
            None => cmd.env_remove("VIGIL_FAULTS"),
        };
        // Its own process group: a Ctrl-C in the terminal reaches only the
        // harness, which then stops the agents itself.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        let mut child =
            cmd.spawn().map_err(|e| Error::Command { command: format!("{cmd:?}"), detail: e.to_string() })?;
        let stdin = child.stdin.take();
        let mut agent =
            Agent { name: spec.name.clone(), child: None, stdin, reader: None, log, started: Instant::now() };
        let stdout = child.stdout.take();
        agent.child = Some(child);
        if let Some(out) = stdout {
            agent.reader =
                Some(events.capture(spec.name.clone(), out).map_err(io("spawning an event reader"))?);
        }
        Ok(agent)
    }

    /// The member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()).map(Pid::from_raw)
    }

    /// Sends `sig` to the agent (and only to it, by PID).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid().ok_or_else(|| Error::Assertion(format!("{} is not running", self.name)))?;
        kill(pid, sig)
            .map_err(|e| Error::Command { command: format!("kill -{sig} {pid}"), detail: e.to_string() })
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(())
    }

    /// SIGTERM, then wait up to `within` for the exit; kills it if late.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        let end = Instant::now() + within;
        let status = loop {
            let Some(c) = self.child.as_mut() else {
                return Err(Error::Assertion(format!("{} is not running", self.name)));
            };
            if let Some(s) = c.try_wait().map_err(io("waiting for an agent"))? {
                break s;
            }
            if Instant::now() >= end {
                self.kill()?;
                return Err(Error::Timeout {
                    what: format!("{} to exit after SIGTERM", self.name),
                    after: within,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child.take();
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(status)
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

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(pid) = self.pid()
            && self.running()
        {
            let _ = kill(pid, Signal::SIGCONT);
        }
        let _ = self.kill();
    }
}

/// How hard a [`Hog`] competes for its CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HogPriority {
    /// An ordinary task at this niceness (-20 to 19).
    Nice(i32),
    /// SCHED_FIFO priority 1: runs before every ordinary task, which keeps
    /// only what the kernel reserves for them (about 50 ms per second).
    RealTime,
}

/// A CPU hog: `taskset -c CPU {nice -n N | chrt -f 1} perl -e 'busy loop until a deadline'`.
/// Every wrapper execs, so the PID is the loop's own: drop sends it SIGKILL
/// (a running task takes it at its next tick, even at real-time priority),
/// and the loop's own deadline bounds its life if the harness dies first.
/// (A `timeout` wrapper would not do: at real-time priority beside the loop
/// it never runs, so it can neither forward a signal nor expire.)
#[derive(Debug)]
pub struct Hog {
    child: Option<Child>,
}

impl Hog {
    /// Starts one busy loop pinned to `cpu`, for at most `limit`.
    pub fn start(cpu: usize, priority: HogPriority, limit: Duration) -> Result<Hog> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]);
        match priority {
            HogPriority::Nice(n) => cmd.args(["nice", "-n", &n.to_string()]),
            HogPriority::RealTime => cmd.args(["chrt", "-f", "1"]),
        };
        cmd.args([
            "perl",
            "-e",
            &format!("my $end = time + {}; 1 while time < $end;", limit.as_secs().max(1)),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        let child =
            cmd.spawn().map_err(|e| Error::Command { command: format!("{cmd:?}"), detail: e.to_string() })?;
        Ok(Hog { child: Some(child) })
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
