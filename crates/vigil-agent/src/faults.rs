//! Test-only fault injection (feature `testing`): `VIGIL_FAULTS` at start
//! and `VIGIL_FAULTS_FILE` at runtime make the agent drop, delay or block its
//! own packets, so that tests and vigil-chaos can partition real agents.
//! Without the feature, a binary that is given either variable says it
//! ignores them.

#[cfg(not(feature = "testing"))]
pub(crate) use disabled::warn_if_requested;
#[cfg(feature = "testing")]
pub use enabled::parse_faults;
#[cfg(feature = "testing")]
pub(crate) use enabled::{from_env, watch_file};

#[cfg(feature = "testing")]
mod enabled {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::task::JoinHandle;
    use vigil::{Faults, Vigil};

    /// Parses a `VIGIL_FAULTS` value: comma-separated `delay=DURATION`,
    /// `drop_in=P`, `drop_out=P` (probabilities 0 to 1), `block=IP:PORT`
    /// (both ways, repeatable).
    pub fn parse_faults(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not KEY=VALUE"))?;
            let prob = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("`{k}` must be a probability between 0 and 1, not `{v}`"))
            };
            match k {
                "delay" => f.delay = humantime::parse_duration(v).map_err(|e| format!("`delay`: {e}"))?,
                "drop_in" => f.drop_inbound = prob(v)?,
                "drop_out" => f.drop_outbound = prob(v)?,
                "block" => f = f.block(v.parse().map_err(|e| format!("`block`: {v}: {e}"))?),
                _ => return Err(format!("unknown key `{k}`: expected delay, drop_in, drop_out or block")),
            }
        }
        Ok(f)
    }

    /// The faults `VIGIL_FAULTS` asks for at start, if any (logged loudly).
    pub(crate) fn from_env() -> Result<Option<Faults>, String> {
        let Ok(spec) = std::env::var("VIGIL_FAULTS") else { return Ok(None) };
        if spec.trim().is_empty() {
            return Ok(None);
        }
        let faults = parse_faults(&spec)?;
        tracing::warn!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        tracing::warn!("!!! VIGIL_FAULTS={spec}: FAULT INJECTION IS ON. TEST USE ONLY.");
        tracing::warn!("!!! This agent drops and delays its own packets ON PURPOSE.");
        tracing::warn!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        Ok(Some(faults))
    }

    /// `VIGIL_FAULTS_FILE=PATH` makes the agent re-read `PATH` (the
    /// `VIGIL_FAULTS` syntax; empty or missing: no faults) every 200 ms and
    /// apply it at runtime, so a test can partition running agents and heal
    /// them.
    pub(crate) fn watch_file(vigil: Arc<Vigil>) -> Option<JoinHandle<()>> {
        let path = PathBuf::from(std::env::var_os("VIGIL_FAULTS_FILE")?);
        tracing::warn!(
            "!!! VIGIL_FAULTS_FILE={}: RUNTIME FAULT INJECTION IS ON. TEST USE ONLY.",
            path.display()
        );
        Some(tokio::spawn(async move {
            let mut applied: Option<String> = None;
            loop {
                let spec = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
                if applied.as_deref() != Some(spec.as_str()) {
                    let faults = if spec.is_empty() { Ok(None) } else { parse_faults(&spec).map(Some) };
                    match faults {
                        Ok(f) => {
                            tracing::warn!("fault injection now: `{spec}`");
                            if vigil.set_faults(f).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::error!("VIGIL_FAULTS_FILE: {e}"),
                    }
                    applied = Some(spec);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn faults_parse_and_bad_ones_are_named() {
            let f = parse_faults("delay=200ms, drop_in=0.1,drop_out=0.2,block=127.0.0.1:9").unwrap();
            assert_eq!(f.delay, Duration::from_millis(200));
            assert_eq!((f.drop_inbound, f.drop_outbound), (0.1, 0.2));
            assert_eq!(f.blocked_inbound.len(), 1);
            assert!(parse_faults("drop_in=2").unwrap_err().contains("drop_in"));
            assert!(parse_faults("jitter=1ms").unwrap_err().contains("jitter"));
        }
    }
}

#[cfg(not(feature = "testing"))]
mod disabled {
    /// Says that `VIGIL_FAULTS` / `VIGIL_FAULTS_FILE` are ignored, if set.
    pub(crate) fn warn_if_requested() {
        if std::env::var_os("VIGIL_FAULTS").is_some() || std::env::var_os("VIGIL_FAULTS_FILE").is_some() {
            tracing::warn!(
                "VIGIL_FAULTS/VIGIL_FAULTS_FILE ignored: this binary has no fault injection (feature `testing`)"
            );
        }
    }
}
