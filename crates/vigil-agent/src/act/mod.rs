//! The agent's wiring of [`vigil_act`] ([`vigil_act::checks`],
//! [`vigil_act::handlers`], [`vigil_act::failover`]): health checks
//! (`[[check]]`), event handlers (`[[handler]]`) and the failover role
//! (`[failover]`).
//!
//! - `schema.rs`: the TOML tables, their defaults and their validation into
//!   one checked [`ActConfig`].
//! - `tasks.rs`: what runs for one agent lifetime ([`start`], [`Act`]) and
//!   what the HTTP API reads of it ([`ActShared`]).
//!
//! - Checks run in the background and publish the worst status as the
//!   member's health (`/v1/members`, `vigil members`, `updated` events).
//! - Handlers receive every event of the agent's event log (the same JSON as
//!   `--events-json` and `GET /v1/events`), filtered by kind and metadata.
//! - The failover task re-decides the member's role on every membership event
//!   and every second, and runs `on_promote` / `on_demote` once per
//!   transition, one at a time; on a graceful stop an active member demotes
//!   before it leaves. `GET /v1/groups` shows every group.
//!
//! A TOML example:
//!
//! ```toml
//! [[check]]
//! name = "http"
//! http = "http://127.0.0.1:8080/health"
//! interval = "5s"
//! timeout = "2s"
//! threshold = 2
//!
//! [[handler]]
//! name = "page-db"
//! kinds = ["failed"]
//! meta = { role = "db" }
//! webhook = "http://127.0.0.1:9000/hook"
//! retries = 3
//!
//! [failover]
//! on_promote = "/etc/vigil/promote.sh"
//! on_demote = "/etc/vigil/demote.sh"
//! hold = "2s"
//! quorum = "group"
//! ```

mod schema;
mod tasks;

pub use schema::{
    ActConfig, CheckFile, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_HOLD, DEFAULT_SCRIPT_TIMEOUT, DEFAULT_WEBHOOK_RETRIES, FailoverConfig, FailoverFile, HandlerFile,
    Invalid, KINDS,
};
pub use tasks::{Act, ActShared, handler_event, start};
