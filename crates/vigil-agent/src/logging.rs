//! Logs on stderr, text or JSON. The level filter (`log_level`, else
//! `RUST_LOG`, else `info`; `tracing` env-filter syntax such as
//! `info,vigil=debug`) can be changed while the agent runs ([`set_level`],
//! on SIGHUP).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The filter for `level` (none: `RUST_LOG`, else `info`).
fn filter(level: Option<&str>) -> Result<EnvFilter, String> {
    match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("log level `{l}`: {e}")),
        None => Ok(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))),
    }
}

/// Sets up logs on stderr once per process (later calls change nothing).
/// `level`: the `log_level` setting (none: `RUST_LOG`, else `info`).
pub fn init(format: LogFormat, level: Option<&str>) {
    let (layer, handle) = reload::Layer::new(filter(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => Registry::default().with(layer).with(fmt.json()).try_init(),
        LogFormat::Text => {
            Registry::default().with(layer).with(fmt.with_ansi(std::io::stderr().is_terminal())).try_init()
        }
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Changes the level filter of the logs set up by [`init`] (none: back to
/// `RUST_LOG`, else `info`).
pub fn set_level(level: Option<&str>) -> Result<(), String> {
    let f = filter(level)?;
    match FILTER.get() {
        Some(h) => h.reload(f).map_err(|e| format!("cannot change the log level: {e}")),
        None => Ok(()),
    }
}
