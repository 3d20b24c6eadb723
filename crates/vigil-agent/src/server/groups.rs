//! `GET /v1/groups`: every failover group as this agent sees it, and its
//! own role.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::state::AppState;
use crate::act::ActShared;

/// One group in `GET /v1/groups`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupJson {
    /// Group name.
    pub group: String,
    /// The member that should be active by this agent's view, if any.
    pub active: Option<String>,
    /// The other eligible members, by descending priority.
    pub standbys: Vec<String>,
    /// Known members (left ones excepted).
    pub known: usize,
    /// Of those, alive.
    pub alive: usize,
    /// This agent's own role in the group: what it acted on (`active` or
    /// `standby`, which can lag the computed `active` by the hold time), or
    /// `none` when it is not a failover member of the group.
    pub local_role: &'static str,
}

/// The groups as one agent sees them.
pub fn groups_json(members: &[vigil::Member], shared: Option<&ActShared>) -> Vec<GroupJson> {
    let (my_group, active) = shared.map(ActShared::role).unwrap_or_default();
    vigil_act::failover::groups(members)
        .into_iter()
        .map(|g| {
            let local_role = match &my_group {
                Some(mine) if *mine == g.group && active => "active",
                Some(mine) if *mine == g.group => "standby",
                _ => "none",
            };
            GroupJson {
                group: g.group,
                active: g.active,
                standbys: g.standbys,
                known: g.known,
                alive: g.alive,
                local_role,
            }
        })
        .collect()
}

/// `GET /v1/groups`.
pub(crate) async fn list(State(s): State<AppState>) -> Json<Vec<GroupJson>> {
    Json(groups_json(&s.vigil().members(), s.act().as_deref()))
}
