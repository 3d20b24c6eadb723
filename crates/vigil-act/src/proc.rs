//! Child processes of checks and handlers: each script runs in its own
//! process group, and a script that is abandoned (timed out) is killed with
//! everything it started, so that `sh -c 'sleep 100'` leaves nothing behind.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Kills a child's whole process group when dropped, unless disarmed.
#[derive(Debug)]
pub(crate) struct GroupGuard(Option<i32>);

impl GroupGuard {
    /// Guards the group led by the child with this pid (spawned with
    /// `process_group(0)`).
    pub(crate) fn new(pid: Option<u32>) -> Self {
        GroupGuard(pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0))
    }

    /// The script finished by itself: leave whatever it started running (a
    /// promote script may start a daemon on purpose).
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
