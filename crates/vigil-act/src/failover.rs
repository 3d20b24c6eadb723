//! Active/standby failover groups, decided by every member from its own view,
//! without split brain.
//!
//! Members declare a group and a priority in their metadata (`group=db`,
//! `priority=100`). In each group the alive, healthy (not `failing`) member
//! with the highest priority is active; ties go to the smallest name. Every
//! member computes the same answer from the same view. A member acts on its
//! own role only while it sees a quorum, and only after the answer held for a
//! minimum time:
//! - **promote** when it is the answer, the answer held for `hold`, and it
//!   sees a majority of the group's known members alive (or of the whole
//!   cluster, by choice) — so the minority side of a partition never promotes;
//! - **demote** at once when it loses the quorum; after `hold` when another
//!   member becomes the answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vigil::{HealthStatus, Member, State};

use crate::meta::parse_meta;

/// Metadata key naming a member's group.
pub const GROUP_KEY: &str = "group";
/// Metadata key holding a member's priority (an integer; missing means 0).
pub const PRIORITY_KEY: &str = "priority";

/// Whose majority a member must see alive to promote itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Quorum {
    /// A majority of the group's known members (left members excepted).
    #[default]
    Group,
    /// A majority of every known member of the cluster.
    Cluster,
}

/// One group as a member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// Group name.
    pub group: String,
    /// The member that should be active, if any is eligible.
    pub active: Option<String>,
    /// The other eligible members, by descending priority.
    pub standbys: Vec<String>,
    /// Known members of the group (left members excepted).
    pub known: usize,
    /// Of those, alive.
    pub alive: usize,
}

fn priority(meta: &BTreeMap<String, String>) -> i64 {
    meta.get(PRIORITY_KEY).and_then(|p| p.trim().parse().ok()).unwrap_or(0)
}

/// Every group in `members`, by name.
pub fn groups(members: &[Member]) -> Vec<GroupView> {
    let mut by_group: BTreeMap<String, Vec<(i64, String, bool)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for m in members {
        let meta = parse_meta(m.meta.as_bytes());
        // An empty group name (`group=`, or a bare `group` line) is no group.
        let Some(group) = meta.get(GROUP_KEY).filter(|g| !g.is_empty()) else { continue };
        if m.state == State::Left {
            continue;
        }
        let c = counts.entry(group.clone()).or_default();
        c.0 += 1;
        if m.state == State::Alive {
            c.1 += 1;
        }
        let eligible = m.state == State::Alive && m.health.status() != HealthStatus::Failing;
        by_group.entry(group.clone()).or_default().push((priority(&meta), m.name.to_string(), eligible));
    }
    by_group
        .into_iter()
        .map(|(group, mut ms)| {
            ms.retain(|m| m.2);
            // Highest priority first, then the smallest name.
            ms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let mut names = ms.into_iter().map(|m| m.1);
            let active = names.next();
            let (known, alive) = counts.get(&group).copied().unwrap_or_default();
            GroupView { group, active, standbys: names.collect(), known, alive }
        })
        .collect()
}

/// What the local member must do about its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Became active: run `on_promote`.
    Promote,
    /// Stopped being active: run `on_demote`.
    Demote,
}

/// The local member's role in one group, with the quorum guard and hold time.
#[derive(Debug)]
pub struct Failover {
    group: String,
    hold: Duration,
    quorum: Quorum,
    active: bool,
    /// Since when the computed answer has differed from the current role.
    pending_since: Option<Instant>,
}

impl Failover {
    /// The local member's role in `group`, starting as standby.
    pub fn new(group: impl Into<String>, hold: Duration, quorum: Quorum) -> Self {
        Failover { group: group.into(), hold, quorum, active: false, pending_since: None }
    }

    /// Whether the local member is active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether `me` sees the quorum it needs in `members`.
    pub fn has_quorum(&self, members: &[Member]) -> bool {
        let (known, alive) = match self.quorum {
            Quorum::Group => groups(members)
                .into_iter()
                .find(|g| g.group == self.group)
                .map(|g| (g.known, g.alive))
                .unwrap_or_default(),
            Quorum::Cluster => {
                let known = members.iter().filter(|m| m.state != State::Left).count();
                (known, members.iter().filter(|m| m.state == State::Alive).count())
            }
        };
        known > 0 && alive * 2 > known
    }

    /// Re-decides from the current view; returns what to do, if anything.
    pub fn update(&mut self, now: Instant, me: &str, members: &[Member]) -> Option<Transition> {
        let quorum = self.has_quorum(members);
        if self.active && !quorum {
            // Safety first: a member that lost its majority steps down at once.
            self.active = false;
            self.pending_since = None;
            return Some(Transition::Demote);
        }
        let answer = groups(members).into_iter().find(|g| g.group == self.group).and_then(|g| g.active);
        let should = quorum && answer.as_deref() == Some(me);
        if should == self.active {
            self.pending_since = None;
            return None;
        }
        let since = *self.pending_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.hold {
            return None;
        }
        self.pending_since = None;
        self.active = should;
        Some(if should { Transition::Promote } else { Transition::Demote })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::{Health, Meta, Name};

    fn m(name: &str, meta: &str, state: State, status: HealthStatus) -> Member {
        let mut member = vigil_proto::Core::new(
            vigil_proto::Config::lan(),
            vigil_proto::Identity {
                name: Name::new(name).unwrap(),
                addr: ([127, 0, 0, 1], 1).into(),
                meta: Meta::new(meta.as_bytes().to_vec()).unwrap(),
                health: Health::new(status, "").unwrap(),
            },
            1,
            1,
            vigil_proto::Instant::ZERO,
        )
        .unwrap()
        .local_member(vigil_proto::Instant::ZERO);
        member.state = state;
        member
    }

    fn db(name: &str, prio: i64, state: State) -> Member {
        m(name, &format!("group=db\npriority={prio}"), state, HealthStatus::Ok)
    }

    #[test]
    fn highest_priority_alive_healthy_member_is_active_ties_by_name() {
        let ms = vec![
            db("a", 100, State::Alive),
            db("b", 200, State::Dead),
            db("c", 100, State::Alive),
            m("d", "group=db\npriority=300", State::Alive, HealthStatus::Failing),
            m("w", "group=web", State::Alive, HealthStatus::Ok),
            m("x", "", State::Alive, HealthStatus::Ok),
        ];
        let g = groups(&ms);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].group, "db");
        assert_eq!(g[0].active.as_deref(), Some("a"));
        assert_eq!(g[0].standbys, vec!["c".to_string()]);
        assert_eq!((g[0].known, g[0].alive), (4, 3));
        assert_eq!(g[1].active.as_deref(), Some("w"));
    }

    #[test]
    fn promotion_waits_for_the_hold_time_and_a_quorum() {
        let t0 = Instant::now();
        let hold = Duration::from_secs(2);
        let mut f = Failover::new("db", hold, Quorum::Group);
        let view = vec![db("a", 200, State::Dead), db("b", 100, State::Alive), db("c", 50, State::Alive)];
        assert_eq!(f.update(t0, "b", &view), None, "not before the hold time");
        assert_eq!(f.update(t0 + Duration::from_secs(1), "b", &view), None);
        assert_eq!(f.update(t0 + hold, "b", &view), Some(Transition::Promote));
        assert_eq!(f.update(t0 + hold * 2, "b", &view), None, "exactly once");
        assert!(f.is_active());
    }

    #[test]
    fn the_minority_side_of_a_partition_never_promotes_and_a_lost_quorum_demotes_at_once() {
        let t0 = Instant::now();
        let mut f = Failover::new("db", Duration::ZERO, Quorum::Group);
        // b sees a, d, e dead: 2 of 5 alive.
        let minority = vec![
            db("a", 300, State::Dead),
            db("b", 200, State::Alive),
            db("c", 100, State::Alive),
            db("d", 50, State::Dead),
            db("e", 10, State::Dead),
        ];
        assert_eq!(f.update(t0, "b", &minority), None);
        assert!(!f.is_active());
        let whole = vec![
            db("a", 300, State::Dead),
            db("b", 200, State::Alive),
            db("c", 100, State::Alive),
            db("d", 50, State::Alive),
            db("e", 10, State::Alive),
        ];
        assert_eq!(f.update(t0, "b", &whole), Some(Transition::Promote));
        assert_eq!(f.update(t0, "b", &minority), Some(Transition::Demote), "lost quorum: step down at once");
    }

    #[test]
    fn a_returning_higher_priority_member_takes_over_after_the_hold() {
        let t0 = Instant::now();
        let hold = Duration::from_secs(1);
        let mut f = Failover::new("db", hold, Quorum::Group);
        let without_a = vec![db("a", 300, State::Dead), db("b", 200, State::Alive), db("c", 1, State::Alive)];
        f.update(t0, "b", &without_a);
        assert_eq!(f.update(t0 + hold, "b", &without_a), Some(Transition::Promote));
        let with_a = vec![db("a", 300, State::Alive), db("b", 200, State::Alive), db("c", 1, State::Alive)];
        assert_eq!(f.update(t0 + hold * 2, "b", &with_a), None, "damped");
        assert_eq!(f.update(t0 + hold * 3, "b", &with_a), Some(Transition::Demote));
    }
}
