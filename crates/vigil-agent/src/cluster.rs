//! A cluster of real agent processes on 127.0.0.1, for `vigil demo`, the
//! integration tests and the figures script.
//!
//! Every agent is a child process of the caller, started with
//! `--events-json` (its events arrive on [`LocalCluster::events`]) and with
//! standard input piped so that it leaves and exits if the caller dies.
//! Dropping the cluster kills every agent still running.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client;

/// A gossip address whose UDP and TCP ports are both free, and a free HTTP address.
pub fn free_addrs() -> std::io::Result<(SocketAddr, SocketAddr)> {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let gossip = udp.local_addr()?;
        if TcpListener::bind(gossip).is_err() {
            continue;
        }
        let http = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        if http.port() != gossip.port() {
            return Ok((gossip, http));
        }
    }
    Err(std::io::Error::other("no free port pair found"))
}

/// An event one agent printed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The agent that printed it.
    pub by: String,
    /// When the line was read.
    pub at: Instant,
    /// The event's JSON.
    pub event: Value,
}

/// One agent of a [`LocalCluster`].
#[derive(Debug)]
pub struct LocalAgent {
    /// Its name.
    pub name: String,
    /// Gossip address.
    pub gossip: SocketAddr,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The process, while it runs.
    pub child: Option<Child>,
}

impl LocalAgent {
    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its `/v1/members`, as name → state.
    pub fn states(&self) -> Option<BTreeMap<String, String>> {
        let v = client::get(&self.url(), "/v1/members").ok()?;
        Some(
            v.as_array()?
                .iter()
                .filter_map(|m| {
                    Some((m.get("name")?.as_str()?.to_string(), m.get("state")?.as_str()?.to_string()))
                })
                .collect(),
        )
    }
}

/// Agent processes on loopback; killed when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    exe: PathBuf,
    dir: PathBuf,
    preset: String,
    /// The agents, in start order.
    pub agents: Vec<LocalAgent>,
    tx: mpsc::Sender<Seen>,
    /// Every event every agent printed.
    pub events: mpsc::Receiver<Seen>,
    /// Extra environment for the agents.
    pub env: Vec<(String, String)>,
}

impl LocalCluster {
    /// A cluster of agents of binary `exe`, with data directories and logs
    /// under `dir`, all running `preset`.
    pub fn new(exe: impl Into<PathBuf>, dir: impl Into<PathBuf>, preset: &str) -> Self {
        let (tx, events) = mpsc::channel();
        LocalCluster {
            exe: exe.into(),
            dir: dir.into(),
            preset: preset.into(),
            agents: Vec::new(),
            tx,
            events,
            env: vec![("RUST_LOG".into(), "info".into())],
        }
    }

    /// Starts a new agent named `name`, joining `join` (if any). Returns its index.
    pub fn add(&mut self, name: &str, join: Option<SocketAddr>) -> std::io::Result<usize> {
        let (gossip, http) = free_addrs()?;
        self.agents.push(LocalAgent {
            name: name.into(),
            gossip,
            http,
            data_dir: self.dir.join(name),
            child: None,
        });
        let i = self.agents.len() - 1;
        self.start(i, join)?;
        Ok(i)
    }

    /// (Re)starts agent `i` on its addresses and data directory.
    pub fn start(&mut self, i: usize, join: Option<SocketAddr>) -> std::io::Result<()> {
        let a = &self.agents[i];
        std::fs::create_dir_all(&a.data_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(i))?;
        let mut cmd = Command::new(&self.exe);
        let key_file = self.key_file()?;
        cmd.arg("agent")
            .args(["--name", &a.name, "--bind", &a.gossip.to_string(), "--http", &a.http.to_string()])
            .arg("--key-file")
            .arg(&key_file)
            .args(["--preset", &self.preset, "--events-json", "--leave-timeout", "2s"])
            .arg("--data-dir")
            .arg(&a.data_dir)
            .env("VIGIL_EXIT_ON_STDIN_EOF", "true")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(seed) = join {
            cmd.args(["--join", &seed.to_string()]);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take();
        let (tx, by) = (self.tx.clone(), a.name.clone());
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if let Ok(event) = serde_json::from_str(&line) {
                    let _ = tx.send(Seen { by: by.clone(), at: Instant::now(), event });
                }
            }
        });
        self.agents[i].child = Some(child);
        Ok(())
    }

    /// The cluster key file shared by these agents (created on first use, mode 0600).
    pub fn key_file(&self) -> std::io::Result<PathBuf> {
        let path = self.dir.join("cluster.key");
        if !path.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(&self.dir)?;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            writeln!(f, "{}", vigil::Key::generate().to_base64())?;
        }
        Ok(path)
    }

    /// The stderr log of agent `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.agents[i].name))
    }

    /// The directory holding data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILLs agent `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops agent `i` gracefully (closes its stdin: it leaves and exits),
    /// killing it if it has not exited within `within`. Returns whether it
    /// exited by itself with status 0.
    pub fn stop(&mut self, i: usize, within: Duration) -> bool {
        let Some(mut c) = self.agents[i].child.take() else { return false };
        drop(c.stdin.take());
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Waits up to `within` for agent `i` to exit by itself; returns its status.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let c = self.agents[i].child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.agents[i].child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until every running agent lists every running agent alive.
    /// Returns how long it took, or `None` at the deadline.
    pub fn wait_converged(&self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let running: Vec<&LocalAgent> = self.agents.iter().filter(|a| a.child.is_some()).collect();
        while start.elapsed() < within {
            let done = running.iter().all(|a| {
                a.states()
                    .is_some_and(|s| running.iter().all(|b| s.get(&b.name).is_some_and(|st| st == "alive")))
            });
            if done {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
