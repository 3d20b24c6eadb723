//! Network namespaces: one hub namespace holding a bridge, and one namespace
//! per member joined to it by a veth pair. Nothing touches the host's own
//! namespace: veth ends are created inside the hub and the member namespaces,
//! and the harness reaches the members' HTTP APIs from a thread that entered
//! the hub namespace (see [`Lab::in_hub`]). A [`Lab`] is the
//! [`vigil_agent::harness::Place`] of a chaos cluster.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking): the hub's
//! bridge is 198.18.0.1/16 and member `i` is 198.18.1.(i+1)/16.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::CloneFlags;
use serde_json::Value;
use vigil_agent::harness::Place;

use crate::error::{Error, Result, io};

/// Every namespace the harness creates starts with this.
pub const PREFIX: &str = "vigil-chaos-";
/// The most members one lab holds (one /24 of the benchmarking range).
pub const MAX_MEMBERS: usize = 250;
/// Beyond this many members, static neighbour (ARP) entries are installed.
pub const STATIC_NEIGHBOURS_ABOVE: usize = 30;

const HUB_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HUB_MAC: &str = "02:c6:12:00:00:01";

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// One member's place on the bridge.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Position in the lab (0-based).
    pub index: usize,
    /// The network namespace's name.
    pub ns: String,
    /// The member's address.
    pub ip: Ipv4Addr,
    /// The member's interface MAC address.
    pub mac: String,
}

/// Member `i`'s address.
pub fn member_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, u8::try_from(i + 1).unwrap_or(u8::MAX))
}

/// All member addresses, as a CIDR block nftables understands.
pub const MEMBERS_CIDR: &str = "198.18.1.0/24";

/// Namespaces, bridge, veth pairs and a scratch directory; all removed on drop.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    hub: Option<String>,
    slots: Vec<Slot>,
    dir: PathBuf,
    hub_thread: Option<HubThread>,
    keep_dir: bool,
}

impl Lab {
    /// Creates a lab of `members` namespaces. Removes stale namespaces of
    /// earlier runs first (those whose owning process is gone).
    pub fn new(members: usize) -> Result<Lab> {
        preflight()?;
        crate::signal::install();
        if members == 0 || members > MAX_MEMBERS {
            return Err(Error::Environment(format!("members must be 1..={MAX_MEMBERS}, got {members}")));
        }
        let removed = remove_stale()?;
        if removed > 0 {
            eprintln!("vigil-chaos: removed {removed} stale namespace(s) of an earlier run");
        }
        let tag = format!("{PREFIX}{}-{}", std::process::id(), LAB_SEQ.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut lab = Lab {
            tag: tag.clone(),
            hub: None,
            slots: Vec::new(),
            dir,
            hub_thread: None,
            keep_dir: std::env::var_os("VIGIL_CHAOS_KEEP").is_some(),
        };
        let hub = format!("{tag}-hub");
        ip(&["netns", "add", &hub])?;
        lab.hub = Some(hub.clone());
        let hub_cidr = format!("{HUB_IP}/16");
        ip_batch(
            &hub,
            &[
                "link set lo up".to_string(),
                "link add br0 type bridge stp_state 0".to_string(),
                format!("link set br0 address {HUB_MAC}"),
                format!("addr add {hub_cidr} dev br0"),
                "link set br0 up".to_string(),
            ],
        )?;
        for i in 0..members {
            signal_check()?;
            let slot = Slot {
                index: i,
                ns: format!("{tag}-m{i}"),
                ip: member_ip(i),
                mac: format!("02:c6:12:01:00:{:02x}", i + 1),
            };
            ip(&["netns", "add", &slot.ns])?;
            lab.slots.push(slot.clone());
            let port = format!("m{i}");
            ip_batch(
                &hub,
                &[
                    format!("link add {port} type veth peer name eth0 netns {}", slot.ns),
                    format!("link set {port} master br0"),
                    format!("link set {port} up"),
                ],
            )?;
            ip_batch(
                &slot.ns,
                &[
                    "link set lo up".to_string(),
                    format!("link set eth0 address {}", slot.mac),
                    format!("addr add {}/16 dev eth0", slot.ip),
                    "link set eth0 up".to_string(),
                ],
            )?;
        }
        if members > STATIC_NEIGHBOURS_ABOVE {
            lab.install_static_neighbours()?;
        }
        lab.hub_thread = Some(HubThread::start(&hub)?);
        Ok(lab)
    }

    /// This lab's unique prefix (also the scratch directory's name).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The members' places.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// A scratch directory removed with the lab (kept if `VIGIL_CHAOS_KEEP` is set).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `job` on the thread that entered the hub namespace (sockets it
    /// opens are the hub's) and returns its result; waits at most `timeout`
    /// for the thread to take it and finish.
    pub fn in_hub<T: Send + 'static>(
        &self,
        timeout: Duration,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        match &self.hub_thread {
            Some(h) => h.run(timeout, job),
            None => Err(Error::Environment("lab has no hub thread".into())),
        }
    }

    /// Opens a TCP connection from inside the hub namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        self.in_hub(timeout + Duration::from_secs(1), move || TcpStream::connect_timeout(&addr, timeout))?
            .map_err(io(format!("connecting to {addr}")))
    }

    fn install_static_neighbours(&self) -> Result<()> {
        let entry = |ip: Ipv4Addr, mac: &str, dev: &str| {
            format!("neigh replace {ip} lladdr {mac} dev {dev} nud permanent")
        };
        let hub = self.hub.as_deref().unwrap_or_default();
        let hub_lines: Vec<String> = self.slots.iter().map(|s| entry(s.ip, &s.mac, "br0")).collect();
        ip_batch(hub, &hub_lines)?;
        for s in &self.slots {
            signal_check()?;
            let mut lines = vec![entry(HUB_IP, HUB_MAC, "eth0")];
            lines.extend(
                self.slots.iter().filter(|o| o.index != s.index).map(|o| entry(o.ip, &o.mac, "eth0")),
            );
            ip_batch(&s.ns, &lines)?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The hub thread holds the hub namespace: end it first.
        self.hub_thread.take();
        for s in self.slots.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &s.ns]) {
                eprintln!("vigil-chaos: could not remove namespace {}: {e}", s.ns);
            }
        }
        if let Some(hub) = self.hub.take()
            && let Err(e) = ip(&["netns", "del", &hub])
        {
            eprintln!("vigil-chaos: could not remove namespace {hub}: {e}");
        }
        if self.keep_dir {
            eprintln!("vigil-chaos: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn signal_check() -> Result<()> {
    crate::signal::check()
}

/// Checks that the suite can run: root, `ip` and `nft` present.
pub fn preflight() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Environment(
            "network namespaces need root; run as root (CI does) or set VIGIL_CHAOS_SKIP=1 to skip explicitly".into(),
        ));
    }
    let have = |tool: &str| {
        Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    };
    if ["ip", "nft", "taskset"].iter().any(|t| !have(t)) {
        // A fresh Debian machine lacks nftables: install what is missing, as
        // .ci/run does, so that `cargo test --workspace` works there too.
        eprintln!("vigil-chaos: installing iproute2, nftables and util-linux with apt-get");
        let quiet = |c: &mut Command| {
            c.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        let _ = quiet(Command::new("apt-get").args(["update", "-qq"]));
        let _ = quiet(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "iproute2", "nftables", "util-linux"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
    }
    for tool in ["ip", "nft", "taskset"] {
        let found = have(tool);
        if !found {
            return Err(Error::Environment(format!(
                "`{tool}` not found (apt-get install -y iproute2 nftables util-linux)"
            )));
        }
    }
    Ok(())
}

/// Removes namespaces named `vigil-chaos-<pid>-…` whose process `<pid>` is
/// gone, killing (by PID) any `vigil` agent still inside. Returns how many
/// namespaces were removed.
pub fn remove_stale() -> Result<usize> {
    // CPU-quota groups of killed runs hold no agent once these are gone.
    let groups = crate::cgroup::remove_stale();
    if groups > 0 {
        eprintln!("vigil-chaos: removed {groups} stale cgroup(s) of an earlier run");
    }
    let out = run(Command::new("ip").args(["netns", "list"]), None)?;
    let mut removed = 0;
    for line in out.lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", name]), None) {
            for p in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                if comm.trim() == "vigil" {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        if ip(&["netns", "del", name]).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args), None)
}

/// Runs several `ip` commands inside namespace `ns` in one process.
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<String> {
    let mut input = lines.join("\n");
    input.push('\n');
    run(Command::new("ip").args(["-n", ns, "-batch", "-"]), Some(&input))
}

/// Runs a command inside namespace `ns` (`ip netns exec`).
pub fn exec_in(ns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    run(Command::new("ip").args(["netns", "exec", ns, program]).args(args), stdin)
}

/// Runs a command to completion, with optional standard input; fails with
/// its standard error when it exits non-zero.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String> {
    let line = format!("{cmd:?}").replace('"', "");
    let fail = |detail: String| Error::Command { command: line.clone(), detail };
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| fail(format!("writing stdin: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The agents' APIs are reached from the hub, with the agent's own HTTP
/// client ([`vigil_agent::client`]) run on the hub thread.
impl Place for Lab {
    fn get(&self, http: SocketAddr, path: &str, timeout: Duration) -> std::result::Result<Value, String> {
        let base = format!("http://{http}");
        let path = path.to_string();
        self.in_hub(timeout + Duration::from_secs(1), move || {
            vigil_agent::client::get_within(&base, &path, timeout).map_err(|e| e.0)
        })
        .map_err(|e| e.to_string())?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that entered the hub namespace and runs jobs there, one at a
/// time; a socket keeps its namespace, so a stream it opens works from any
/// thread.
#[derive(Debug)]
struct HubThread {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl HubThread {
    fn start(hub: &str) -> Result<HubThread> {
        let path = format!("/var/run/netns/{hub}");
        let file = File::open(&path).map_err(io(format!("opening {path}")))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vigil-chaos-hub".into())
            .spawn(move || {
                let entered = nix::sched::setns(&file, CloneFlags::CLONE_NEWNET);
                drop(file);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered.map_err(|e| e.to_string()));
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(io("spawning the hub thread"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(HubThread { tx: Some(tx), thread: Some(thread) }),
            Ok(Err(e)) => Err(Error::Environment(format!("setns into {hub}: {e}"))),
            Err(_) => Err(Error::Environment("hub thread ended".into())),
        }
    }

    fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let gone = || Error::Environment("hub thread gone".into());
        let (reply_tx, reply_rx) = mpsc::channel();
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(Box::new(move || {
            let _ = reply_tx.send(job());
        }))
        .map_err(|_| gone())?;
        reply_rx
            .recv_timeout(timeout)
            .map_err(|_| Error::Timeout { what: "a job on the hub thread".into(), after: timeout })
    }
}

impl Drop for HubThread {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
