//! CPU hogs beside an agent (scenario 3). The agents themselves are
//! [`vigil_agent::harness`] processes; see [`crate::cluster`].

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};

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
