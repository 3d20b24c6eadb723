//! Plain values written the human way in scenario files and on command
//! lines: durations ([`Dur`], [`parse_duration`]) and fractions ([`Frac`]).
//! A leaf: it knows nothing of scenarios, the network or the engine.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

/// A duration written the human way in TOML and on the command line: `500ms`, `5s`, `2m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dur(pub Duration);

impl Dur {
    /// From seconds.
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    /// From milliseconds.
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl FromStr for Dur {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        parse_duration(s).map(Dur)
    }
}

impl TryFrom<String> for Dur {
    type Error = ScenarioError;
    fn try_from(s: String) -> Result<Self, ScenarioError> {
        s.parse()
    }
}

impl From<Dur> for String {
    fn from(d: Dur) -> String {
        d.to_string()
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses a duration the human way: a number (fractions allowed) and one
/// unit, `250us`, `300ms`, `1.5s`, `2m`, `1h`; or anything humantime reads
/// (`1h 30m`, `5min`, `2days`). The one duration parser of the simulator's
/// scenarios and flags and of the agent's command line.
pub fn parse_duration(s: &str) -> Result<Duration, ScenarioError> {
    let s = s.trim();
    let bad =
        || ScenarioError::Value { field: "duration", value: s.to_owned(), reason: "like 500ms, 1.5s, 2m" };
    for (suffix, scale) in [("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] {
        if let Some(num) = s.strip_suffix(suffix)
            && let Ok(v) = num.trim().parse::<f64>()
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad());
            }
            // Too large for a Duration: refused, not a panic.
            return Duration::try_from_secs_f64(v * scale).map_err(|_| bad());
        }
    }
    humantime::parse_duration(s).map_err(|_| bad())
}

/// A probability or fraction: `0.01` or `1%` (TOML: number or string).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(try_from = "FracRepr", into = "f64")]
pub struct Frac(pub f64);

#[derive(Deserialize)]
#[serde(untagged)]
enum FracRepr {
    Number(f64),
    Text(String),
}

impl TryFrom<FracRepr> for Frac {
    type Error = ScenarioError;
    fn try_from(r: FracRepr) -> Result<Self, ScenarioError> {
        match r {
            FracRepr::Number(v) => Frac::checked(v, &v.to_string()),
            FracRepr::Text(s) => s.parse(),
        }
    }
}

impl From<Frac> for f64 {
    fn from(f: Frac) -> f64 {
        f.0
    }
}

impl Frac {
    fn checked(v: f64, text: &str) -> Result<Frac, ScenarioError> {
        if (0.0..=1.0).contains(&v) {
            Ok(Frac(v))
        } else {
            Err(ScenarioError::Value {
                field: "fraction",
                value: text.to_owned(),
                reason: "between 0 and 1 (or 0% and 100%)",
            })
        }
    }
}

impl FromStr for Frac {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        let t = s.trim();
        let bad =
            || ScenarioError::Value { field: "fraction", value: s.to_owned(), reason: "like 0.01 or 1%" };
        let v = match t.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
            None => t.parse::<f64>().map_err(|_| bad())?,
        };
        Frac::checked(v, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_take_percent_or_number() {
        assert_eq!("1%".parse::<Frac>().unwrap(), Frac(0.01));
        assert_eq!("0.2".parse::<Frac>().unwrap(), Frac(0.2));
        assert!("150%".parse::<Frac>().is_err());
    }

    #[test]
    fn durations_take_a_fractional_number_and_one_unit() {
        let cases = [
            ("250us", Duration::from_micros(250)),
            ("0.3ms", Duration::from_micros(300)),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1500)),
            (" 2m ", Duration::from_secs(120)),
            ("2.5m", Duration::from_secs(150)),
            ("1h", Duration::from_secs(3600)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).unwrap(), want, "{text}");
        }
        for text in ["soon", "", "-1s", "1.5", "infs", "NaNms", "1e300h"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_humantime_reads_parse_to_the_same_value() {
        // The agent's flags (--leave-timeout, --debounce) took humantime's
        // syntax before they shared this parser: every form still means the same.
        for text in
            ["500ms", "5s", "1m", "2s", "10s", "1h 30m", "5min", "2sec", "1day", "3 s", "1ns", "250us"]
        {
            assert_eq!(parse_duration(text).ok(), humantime::parse_duration(text).ok(), "{text}");
        }
    }
}
