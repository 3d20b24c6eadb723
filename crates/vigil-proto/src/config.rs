//! Typed configuration with documented defaults, presets and validation.

use std::time::Duration;

use crate::error::ConfigError;

/// How a member probes, suspects, gossips and exchanges state.
///
/// Start from a preset ([`Config::lan`], [`Config::wan`], [`Config::local`]) and
/// change fields; [`Config::validate`] names any field that is out of range.
/// Several values scale with the *live* cluster size `n` while running:
/// the suspicion timeout (× log10 n), retransmissions (× log10(n+1)) and the
/// push-pull interval (× log2 n beyond 32 members). [`Config::scaled_for`]
/// additionally adapts the fixed values to an expected cluster size.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Protocol period: one probe per period. LAN: 1 s.
    pub probe_interval: Duration,
    /// Lower bound of the adaptive direct-probe timeout. LAN: 150 ms.
    pub probe_timeout_min: Duration,
    /// Upper bound of the adaptive direct-probe timeout, and its value before
    /// any round trip was measured. Must be below `probe_interval`. LAN: 500 ms.
    pub probe_timeout_max: Duration,
    /// Adaptive timeout = smoothed RTT + this × RTT deviation (then clamped). LAN: 4.
    pub rtt_deviation_mult: u32,
    /// Members asked to probe indirectly when a direct probe times out. LAN: 3.
    pub indirect_checks: usize,
    /// Also probe over a stream (TCP) when a datagram probe times out, so that
    /// a member whose datagrams alone are lost is not suspected. Default: on.
    pub tcp_fallback: bool,
    /// How often pending state changes are gossiped. LAN: 200 ms.
    pub gossip_interval: Duration,
    /// Members gossiped to per gossip interval. LAN: 3.
    pub gossip_fanout: usize,
    /// Each change is sent about `retransmit_mult × ceil(log10(n+1))` times. LAN: 4.
    pub retransmit_mult: u32,
    /// Shortest suspicion: `suspicion_min_mult × probe_interval × max(1, log10 n)`. LAN: 1.0.
    pub suspicion_min_mult: f64,
    /// Longest suspicion (where it starts without confirmations): this × the shortest. LAN: 3.0.
    pub suspicion_max_mult: f64,
    /// Independent confirmations after which the suspicion timeout reaches its minimum. LAN: 3.
    pub suspicion_confirmations: u32,
    /// Highest local health score (Lifeguard); probe interval and timeout are
    /// stretched by `score + 1`. LAN: 8.
    pub max_local_health: u32,
    /// Base interval of full-state exchanges with a random member. LAN: 30 s.
    pub push_pull_interval: Duration,
    /// How often one member recently declared dead is contacted, so that a healed
    /// partition merges by itself. LAN: 10 s.
    pub reconnect_interval: Duration,
    /// How long dead and left members are remembered before they are forgotten. LAN: 30 min.
    pub dead_retention: Duration,
    /// Largest datagram sent or accepted, in bytes. Default 1 400.
    pub max_packet_size: usize,
    /// Largest push-pull stream accepted, in bytes. Default 16 MiB.
    pub max_stream_size: usize,
    /// Inter-arrival samples kept per member for its phi level. Default 100.
    pub phi_window: usize,
    /// When set, a member whose phi level exceeds this is suspected even before a
    /// probe fails. Meant for small groups (pairs, trios) in which every member
    /// hears every other each period. Default: off.
    pub phi_threshold: Option<f64>,
    /// Patience on silence: a member that is only silent (no kernel evidence
    /// that its process exited) is never declared failed sooner than this
    /// after the first probe it left unanswered, so a pause (stop signal, GC,
    /// swap, CPU starvation) shorter than this is suspected and refuted, not
    /// failed. A host that went silent is declared failed about this long
    /// plus one protocol period after it went silent. LAN: 5 s (5 periods).
    pub pause_tolerance: Duration,
    /// Members each member watches over a long-lived stream (TCP) whose end
    /// (the watched process exited and its kernel closed it) is evidence of a
    /// crash; chosen on a ring ordered by name hash so that every member is
    /// watched by this many others. 0 turns watch streams off. Default 2.
    pub watch_count: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config::lan()
    }
}

impl Config {
    /// A local network: 1 s protocol period, sub-millisecond round trips.
    pub fn lan() -> Self {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout_min: Duration::from_millis(150),
            probe_timeout_max: Duration::from_millis(500),
            rtt_deviation_mult: 4,
            indirect_checks: 3,
            tcp_fallback: true,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            retransmit_mult: 4,
            suspicion_min_mult: 1.0,
            suspicion_max_mult: 3.0,
            suspicion_confirmations: 3,
            max_local_health: 8,
            push_pull_interval: Duration::from_secs(30),
            reconnect_interval: Duration::from_secs(10),
            dead_retention: Duration::from_secs(30 * 60),
            max_packet_size: 1400,
            max_stream_size: 16 << 20,
            phi_window: 100,
            phi_threshold: None,
            pause_tolerance: Duration::from_secs(5),
            watch_count: 2,
        }
    }

    /// A wide-area network: 5 s period, generous timeouts.
    pub fn wan() -> Self {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout_min: Duration::from_millis(500),
            probe_timeout_max: Duration::from_secs(3),
            gossip_interval: Duration::from_millis(500),
            gossip_fanout: 4,
            suspicion_min_mult: 1.5,
            suspicion_max_mult: 5.0,
            push_pull_interval: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(30),
            pause_tolerance: Duration::from_secs(25),
            ..Config::lan()
        }
    }

    /// Fast timers for tests on one machine (loopback): 200 ms period.
    pub fn local() -> Self {
        Config {
            probe_interval: Duration::from_millis(200),
            probe_timeout_min: Duration::from_millis(20),
            probe_timeout_max: Duration::from_millis(100),
            gossip_interval: Duration::from_millis(50),
            push_pull_interval: Duration::from_secs(5),
            reconnect_interval: Duration::from_secs(2),
            dead_retention: Duration::from_secs(60),
            pause_tolerance: Duration::from_secs(1),
            ..Config::lan()
        }
    }

    /// Adapts the fixed values to an expected cluster size: beyond 1 000
    /// members gossip fans out wider and push-pull starts from a longer base
    /// interval; beyond 10 000, probing asks one more intermediary.
    pub fn scaled_for(mut self, expected_members: usize) -> Self {
        if expected_members > 1_000 {
            self.gossip_fanout = self.gossip_fanout.max(4);
            self.push_pull_interval = self.push_pull_interval.max(Duration::from_secs(60));
        }
        if expected_members > 10_000 {
            self.indirect_checks = self.indirect_checks.max(4);
        }
        self
    }

    /// Checks every field; the error names the first bad one and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError { field, reason: reason.into() })
        }
        let ms = Duration::from_millis(1);
        if self.probe_interval < ms {
            return bad("probe_interval", "must be at least 1ms");
        }
        if self.probe_timeout_min < ms {
            return bad("probe_timeout_min", "must be at least 1ms");
        }
        if self.probe_timeout_max < self.probe_timeout_min {
            return bad("probe_timeout_max", "must not be below probe_timeout_min");
        }
        if self.probe_timeout_max >= self.probe_interval {
            return bad(
                "probe_timeout_max",
                "must be below probe_interval, to leave time for indirect probes",
            );
        }
        if self.indirect_checks > 16 {
            return bad("indirect_checks", "at most 16");
        }
        if self.gossip_interval < ms {
            return bad("gossip_interval", "must be at least 1ms");
        }
        if self.gossip_fanout == 0 || self.gossip_fanout > 32 {
            return bad("gossip_fanout", "must be between 1 and 32");
        }
        if self.retransmit_mult == 0 || self.retransmit_mult > 64 {
            return bad("retransmit_mult", "must be between 1 and 64");
        }
        if !(self.suspicion_min_mult.is_finite() && self.suspicion_min_mult > 0.0) {
            return bad("suspicion_min_mult", "must be a positive number");
        }
        if !(self.suspicion_max_mult.is_finite() && self.suspicion_max_mult >= 1.0) {
            return bad("suspicion_max_mult", "must be a number of at least 1");
        }
        if self.suspicion_confirmations == 0 {
            return bad("suspicion_confirmations", "must be at least 1");
        }
        if self.max_local_health == 0 || self.max_local_health > 64 {
            return bad("max_local_health", "must be between 1 and 64");
        }
        if self.push_pull_interval < ms {
            return bad("push_pull_interval", "must be at least 1ms");
        }
        if self.reconnect_interval < ms {
            return bad("reconnect_interval", "must be at least 1ms");
        }
        if !(512..=65_000).contains(&self.max_packet_size) {
            return bad("max_packet_size", "must be between 512 and 65000 bytes");
        }
        if self.max_stream_size < self.max_packet_size || self.max_stream_size > 1 << 30 {
            return bad("max_stream_size", "must be between max_packet_size and 1 GiB");
        }
        if !(4..=10_000).contains(&self.phi_window) {
            return bad("phi_window", "must be between 4 and 10000");
        }
        if let Some(t) = self.phi_threshold
            && !(t.is_finite() && t > 0.0)
        {
            return bad("phi_threshold", "must be a positive number");
        }
        if self.pause_tolerance > Duration::from_secs(3600) {
            return bad("pause_tolerance", "at most 1h");
        }
        if self.watch_count > 8 {
            return bad("watch_count", "at most 8");
        }
        Ok(())
    }

    /// Lateness of a timer beyond which the caller is taken to have stalled
    /// (not run at all): a quarter of the protocol period, at least 100 ms.
    pub fn stall_threshold(&self) -> Duration {
        (self.probe_interval / 4).max(Duration::from_millis(100))
    }

    /// The suspicion timeout bounds `(min, max)` for a cluster of `n` live members.
    pub fn suspicion_bounds(&self, n: usize) -> (Duration, Duration) {
        let scale = (n.max(1) as f64).log10().max(1.0);
        let min = self.probe_interval.mul_f64(self.suspicion_min_mult * scale);
        (min, min.mul_f64(self.suspicion_max_mult))
    }

    /// The suspicion timeout after `confirmations` independent confirmations
    /// (Lifeguard): starts at the maximum, falls logarithmically to the minimum.
    pub fn suspicion_timeout(&self, n: usize, confirmations: u32) -> Duration {
        let (min, max) = self.suspicion_bounds(n);
        let k = self.suspicion_confirmations.min(u32::try_from(n.saturating_sub(2)).unwrap_or(u32::MAX));
        if k == 0 || confirmations >= k {
            return if k == 0 { max } else { min };
        }
        let frac = f64::from(confirmations + 1).ln() / f64::from(k + 1).ln();
        let t = max.as_secs_f64() - (max.as_secs_f64() - min.as_secs_f64()) * frac;
        Duration::from_secs_f64(t.max(min.as_secs_f64()))
    }

    /// How many times one change is sent in a cluster of `n` members.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0);
        // Bounded by validate(): mult ≤ 64 and log10 of a usize ≤ 20.
        self.retransmit_mult.saturating_mul(scale as u32)
    }

    /// The push-pull interval for a cluster of `n` members.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        if n <= 32 {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - 32f64.log2()).ceil() + 1.0;
        self.push_pull_interval.mul_f64(mult)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [Config::lan(), Config::wan(), Config::local(), Config::lan().scaled_for(100_000)] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn validation_names_the_field_and_reason() {
        let c = Config { probe_timeout_max: Duration::from_secs(2), ..Config::lan() };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "probe_timeout_max");
        assert!(e.to_string().contains("below probe_interval"), "{e}");
        let c = Config { gossip_fanout: 0, ..Config::lan() };
        assert_eq!(c.validate().unwrap_err().field, "gossip_fanout");
        let c = Config { phi_threshold: Some(f64::NAN), ..Config::lan() };
        assert_eq!(c.validate().unwrap_err().field, "phi_threshold");
    }

    #[test]
    fn suspicion_timeout_shrinks_with_confirmations() {
        let c = Config::lan();
        let (min, max) = c.suspicion_bounds(50);
        assert_eq!(c.suspicion_timeout(50, 0), max);
        let mut last = max;
        for k in 1..=3 {
            let t = c.suspicion_timeout(50, k);
            assert!(t < last, "timeout must fall with each confirmation");
            last = t;
        }
        assert_eq!(c.suspicion_timeout(50, 3), min);
        assert_eq!(c.suspicion_timeout(50, 99), min);
    }

    #[test]
    fn values_scale_with_cluster_size() {
        let c = Config::lan();
        assert!(c.retransmit_limit(10_000) > c.retransmit_limit(10));
        assert_eq!(c.push_pull_interval_for(10), c.push_pull_interval);
        assert!(c.push_pull_interval_for(10_000) > c.push_pull_interval_for(100));
        assert!(c.suspicion_bounds(10_000).0 > c.suspicion_bounds(10).0);
    }
}
