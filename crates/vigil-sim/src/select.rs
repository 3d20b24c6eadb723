//! Which members an action or a link rule applies to ([`Select`]), written
//! the human way. A leaf, like [`crate::units`].

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

/// Which members an action applies to.
///
/// Text forms: `7` (one member id), `0..10` (ids), `0%..50%` (a share of the
/// initial members), `random:3` (three live members drawn at the time of the
/// action), `all`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Select {
    /// Ids `start..end`.
    Range(usize, usize),
    /// Shares of the initial member count, in percent, `start%..end%`.
    Share(u32, u32),
    /// `k` live members drawn at random when the action happens.
    Random(usize),
    /// Every member.
    All,
}

impl Select {
    /// The fixed ids this selects in a cluster of `n` initial members (empty for `Random`).
    pub fn ids(&self, n: usize) -> std::ops::Range<usize> {
        match *self {
            Select::Range(a, b) => a.min(n)..b.min(n),
            Select::Share(a, b) => {
                let at = |p: u32| (n as u64 * u64::from(p.min(100)) / 100) as usize;
                at(a)..at(b)
            }
            Select::Random(_) => 0..0,
            Select::All => 0..n,
        }
    }
}

impl FromStr for Select {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        let t = s.trim();
        let bad = || ScenarioError::Value {
            field: "members",
            value: s.to_owned(),
            reason: "like 7, 0..10, 0%..50%, random:3 or all",
        };
        if t == "all" {
            return Ok(Select::All);
        }
        if let Some(k) = t.strip_prefix("random:") {
            return k.trim().parse().map(Select::Random).map_err(|_| bad());
        }
        if let Some((a, b)) = t.split_once("..") {
            if let (Some(a), Some(b)) = (a.trim().strip_suffix('%'), b.trim().strip_suffix('%')) {
                let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                return if a <= b && b <= 100 { Ok(Select::Share(a, b)) } else { Err(bad()) };
            }
            let (a, b) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            return if a <= b { Ok(Select::Range(a, b)) } else { Err(bad()) };
        }
        if let Some(p) = t.strip_suffix('%') {
            let p: u32 = p.parse().map_err(|_| bad())?;
            return if p <= 100 { Ok(Select::Share(0, p)) } else { Err(bad()) };
        }
        let i: usize = t.parse().map_err(|_| bad())?;
        Ok(Select::Range(i, i + 1))
    }
}

impl TryFrom<String> for Select {
    type Error = ScenarioError;
    fn try_from(s: String) -> Result<Self, ScenarioError> {
        s.parse()
    }
}

impl From<Select> for String {
    fn from(s: Select) -> String {
        match s {
            Select::Range(a, b) if b == a + 1 => a.to_string(),
            Select::Range(a, b) => format!("{a}..{b}"),
            Select::Share(a, b) => format!("{a}%..{b}%"),
            Select::Random(k) => format!("random:{k}"),
            Select::All => "all".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_print_back() {
        for s in ["7", "0..10", "0%..50%", "random:3", "all"] {
            let sel: Select = s.parse().unwrap();
            assert_eq!(String::from(sel), s);
        }
        assert_eq!("0%..50%".parse::<Select>().unwrap().ids(10), 0..5);
        assert!("5..2".parse::<Select>().is_err());
    }
}
