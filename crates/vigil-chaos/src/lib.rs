//! vigil-chaos: a fault-injection suite that runs real `vigil agent`
//! processes, each in its own network namespace on one bridge, and subjects
//! them to the faults operators meet: crashes (SIGKILL), pauses (SIGSTOP),
//! CPU starvation, partitions, one-way and random loss (nftables), rolling
//! and mass restarts.
//!
//! # Map
//!
//! - [`net`]: namespaces, bridge, veth pairs, addresses from 198.18.0.0/15;
//!   [`Lab`] removes them all on drop; [`net::remove_stale`] removes what a
//!   killed run left.
//! - [`nft`]: packet-drop rules inside a namespace (loss, one-way, partitions).
//! - [`cluster`]: N agents in a lab: the agent crate's process harness
//!   ([`vigil_agent::harness`]: agent processes killed on drop, their
//!   events, waits on what their APIs show) with the lab as its place.
//! - [`events`]: the agents' `--events-json` lines, captured from stdout.
//! - [`hog`]: CPU hogs beside an agent.
//! - [`cgroup`]: CPU starvation by a cgroup v1 quota (1 ms per 1 s).
//! - [`scenarios`]: the eight reliability scenarios, and five benchmarks by
//!   failure class (9–13, issue 13); each returns a [`Report`].
//! - [`report`]: the table and docs/RELIABILITY.md.
//! - [`mod@bench`]: the idle footprint of N agents (CPU, RSS, bytes on the
//!   interface), for docs/BENCHMARKS.md.
//! - [`signal`]: Ctrl-C/SIGTERM/SIGHUP become an error every wait returns,
//!   so cleanup runs through the guards.
//!
//! Everything needs root; [`net::preflight`] says so.
//!
//! # Example
//!
//! ```no_run
//! use vigil_chaos::scenarios::{self, Options};
//!
//! let opts = Options { members: 10, long: false, bin: "target/debug/vigil".into(), verbose: true };
//! let report = scenarios::run(1, &opts)?;
//! println!("{}", vigil_chaos::report::table(&[report]));
//! # Ok::<(), vigil_chaos::Error>(())
//! ```

pub mod bench;
pub mod cgroup;
pub mod cluster;
mod error;
pub mod events;
pub mod hog;
pub mod net;
pub mod nft;
pub mod report;
pub mod scenarios;
pub mod signal;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::cluster::Cluster;
pub use crate::error::{Error, Result};
pub use crate::net::Lab;
pub use crate::report::Report;

/// The workspace root (this crate lives in `crates/vigil-chaos`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Finds the agent binary: `explicit`, then `$VIGIL_BIN`, then the newest
/// of `target/{release,debug}/vigil` (honouring `CARGO_TARGET_DIR`); builds
/// it with `cargo build -p vigil-agent --features testing` (so that
/// `VIGIL_FAULTS` works, as in the binary `cargo test` builds) when none
/// exists.
pub fn find_agent_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing(p);
    }
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return existing(Path::new(&p));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let newest = |t: &Path| {
        ["release", "debug"]
            .iter()
            .map(|p| t.join(p).join("vigil"))
            .filter_map(|p| std::fs::metadata(&p).and_then(|m| m.modified()).ok().map(|m| (m, p)))
            .max()
            .map(|(_, p)| p)
    };
    if let Some(p) = newest(&target) {
        return Ok(p);
    }
    eprintln!(
        "vigil-chaos: no agent binary under {}; running `cargo build -p vigil-agent --features testing`",
        target.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "vigil-agent", "--features", "testing"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| Error::Environment(format!("running cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Environment(format!(
            "`cargo build -p vigil-agent --features testing` failed: {status}"
        )));
    }
    newest(&target).ok_or_else(|| Error::Environment("the agent binary `vigil` was not built".into()))
}

fn existing(p: &Path) -> Result<PathBuf> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        Err(Error::Environment(format!("no agent binary at {}", p.display())))
    }
}
