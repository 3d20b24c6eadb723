//! Per-source-IP rate limiting of incoming datagrams, checked before any
//! decryption or decoding, so that a flood from one source costs little and
//! cannot crowd out the members' own traffic. Keyed by IP address, not
//! address and port: a flood from many ports of one host shares one bucket.
//! A datagram that authenticates gets its token back ([`RateLimiter::refund`]):
//! members' own traffic never drains a bucket, however many of them share
//! an address; junk, replays and floods do.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Sources tracked at once; beyond this, idle ones are forgotten, and new
/// sources share one bucket until there is room.
const MAX_SOURCES: usize = 4096;
/// A source idle this long is forgotten.
const IDLE: Duration = Duration::from_secs(10);
/// Datagrams per second accepted from one source IP that do not
/// authenticate, and the burst. Members send a few per second to each
/// other, and are refunded; this only stops floods.
const RATE_PER_SOURCE: f64 = 500.0;
const RATE_BURST: f64 = 1000.0;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets, one per source IP.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: BTreeMap<IpAddr, Bucket>,
    overflow: Bucket,
}

impl Default for RateLimiter {
    /// The limit for member traffic: 500 datagrams per second per source, bursts of 1 000.
    fn default() -> Self {
        RateLimiter::new(RATE_PER_SOURCE, RATE_BURST)
    }
}

impl RateLimiter {
    /// `rate` packets per second per source, bursts of `burst`.
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst,
            buckets: BTreeMap::new(),
            overflow: Bucket { tokens: burst, last: Instant::now() },
        }
    }

    /// Whether a packet from `src` arriving at `now` may be processed.
    pub(crate) fn allow(&mut self, src: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&src) && self.buckets.len() >= MAX_SOURCES {
            self.buckets.retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = if self.buckets.len() < MAX_SOURCES || self.buckets.contains_key(&src) {
            self.buckets.entry(src).or_insert(Bucket { tokens: burst, last: now })
        } else {
            &mut self.overflow
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A packet from `src` that was allowed authenticated: its token back.
    pub(crate) fn refund(&mut self, src: IpAddr) {
        let burst = self.burst;
        if let Some(b) = self.buckets.get_mut(&src) {
            b.tokens = (b.tokens + 1.0).min(burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_source_is_limited_and_others_are_not() {
        let mut l = RateLimiter::new(100.0, 10.0);
        let now = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let allowed = (0..1000).filter(|_| l.allow(a, now)).count();
        assert_eq!(allowed, 10, "the burst, then nothing until tokens refill");
        assert!(l.allow(b, now), "another source is unaffected");
        assert!(l.allow(a, now + Duration::from_millis(20)), "refills at the rate");
    }

    #[test]
    fn authenticated_packets_never_drain_a_bucket() {
        let mut l = RateLimiter::new(100.0, 10.0);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(l.allow(a, now));
            l.refund(a);
        }
    }

    #[test]
    fn the_number_of_tracked_sources_is_bounded() {
        let mut l = RateLimiter::new(100.0, 10.0);
        let now = Instant::now();
        for i in 0..20_000u32 {
            let src = IpAddr::from(i.to_be_bytes());
            l.allow(src, now);
        }
        assert!(l.buckets.len() <= MAX_SOURCES);
    }
}
