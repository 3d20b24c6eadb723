//! Ctrl-C, SIGTERM and SIGHUP become a flag that every wait checks, so that a
//! scenario returns [`Error::Interrupted`] and its guards remove namespaces and
//! processes. A second signal while the flag is set exits at once (the next
//! run removes what is left: see [`crate::net::remove_stale`]).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process). Harmless to call again.
pub fn install() {
    shared();
}

/// The flag the handlers set (installing them if needed), for harness
/// waits to check ([`vigil_agent::harness::Cluster::interrupt_on`]).
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(shared())
}

fn shared() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            // Order matters: the conditional exit sees the flag before the
            // second registration sets it, so only a second signal exits.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
}

/// True once a signal arrived.
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Fails with [`Error::Interrupted`] once a signal arrived.
pub fn check() -> Result<()> {
    if interrupted() { Err(Error::Interrupted) } else { Ok(()) }
}

/// Sleeps `d` in short steps, returning early with an error on a signal.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}
