//! Real packet loss with nftables, inside a member's namespace: rules on the
//! input hook drop what the member receives, from everyone or from chosen
//! source addresses (one-way loss, partitions).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::error::Result;
use crate::net::{self, Lab, MEMBERS_CIDR};

const TABLE: &str = "vigil_chaos";

/// Which senders a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum From {
    /// Every member (not the hub, so the harness still reads the HTTP API).
    AllMembers,
    /// These addresses only.
    Addrs(Vec<Ipv4Addr>),
}

/// One input rule: drop `percent` % of the packets from `from` (100: all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Senders.
    pub from: From,
    /// Share of their packets dropped, 1 to 100.
    pub percent: u8,
}

impl Rule {
    /// Drops every packet from these senders.
    pub fn all_from(addrs: Vec<Ipv4Addr>) -> Self {
        Rule { from: From::Addrs(addrs), percent: 100 }
    }

    /// Drops `percent` % of every member's packets.
    pub fn loss(percent: u8) -> Self {
        Rule { from: From::AllMembers, percent }
    }

    fn rule(&self) -> Option<String> {
        let from = match &self.from {
            From::AllMembers => MEMBERS_CIDR.to_string(),
            From::Addrs(a) if a.is_empty() => return None,
            From::Addrs(a) => {
                format!("{{ {} }}", a.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            }
        };
        let share = match self.percent {
            0 => return None,
            p if p >= 100 => String::new(),
            p => format!("numgen random mod 100 < {p} "),
        };
        Some(format!("ip saddr {from} {share}drop"))
    }
}

/// The ruleset text that replaces this harness's table with `rules`.
pub fn ruleset(rules: &[Rule]) -> String {
    // Creating then deleting makes the delete succeed whether or not the
    // table existed; the whole file is applied atomically.
    let mut s = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n");
    let body: Vec<String> = rules.iter().filter_map(Rule::rule).collect();
    if !body.is_empty() {
        let _ = writeln!(
            s,
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;"
        );
        for r in body {
            let _ = writeln!(s, "    {r}");
        }
        s.push_str("  }\n}\n");
    }
    s
}

/// Replaces the rules in namespace `ns` (an empty list removes them).
pub fn set(ns: &str, rules: &[Rule]) -> Result<()> {
    net::exec_in(ns, "nft", &["-f", "-"], Some(&ruleset(rules))).map(|_| ())
}

/// Removes the rules in namespace `ns`.
pub fn clear(ns: &str) -> Result<()> {
    set(ns, &[])
}

/// Replaces the rules of member `i` of `lab`.
pub fn set_member(lab: &Lab, i: usize, rules: &[Rule]) -> Result<()> {
    set(&lab.slots()[i].ns, rules)
}

/// Removes the rules of every member of `lab`.
pub fn clear_all(lab: &Lab) -> Result<()> {
    lab.slots().iter().try_for_each(|s| clear(&s.ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_drops_a_share_from_all_members() {
        let s = ruleset(&[Rule::loss(10)]);
        assert!(s.contains("ip saddr 198.18.1.0/24 numgen random mod 100 < 10 drop"), "{s}");
    }

    #[test]
    fn ruleset_drops_everything_from_listed_senders() {
        let s = ruleset(&[Rule::all_from(vec![Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)])]);
        assert!(s.contains("ip saddr { 198.18.1.2, 198.18.1.3 } drop"), "{s}");
    }

    #[test]
    fn empty_ruleset_only_removes_the_table() {
        assert_eq!(ruleset(&[]), "table inet vigil_chaos {}\ndelete table inet vigil_chaos\n");
    }
}
