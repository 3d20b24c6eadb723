//! The client subcommands: small blocking HTTP calls to a running agent's API.
//!
//! | file | what |
//! | --- | --- |
//! | `http.rs` | [`ClientArgs`] (`--http`), [`ClientError`], [`get`], [`send`] (ureq) |
//! | `members.rs` | `vigil members`, `join`, `leave` |
//! | `events.rs` | `vigil events`: the event stream, resumed after a disconnect |
//! | `info.rs` | `vigil info` |
//! | `keys.rs` | `vigil keygen`, `vigil keys` |
//! | `watch.rs` | `vigil watch`: a file rendered from the healthy set, a reload command |
//! | `top.rs` | `vigil top`: a live terminal view |

mod events;
mod http;
mod info;
mod keys;
mod members;
mod top;
mod watch;

pub use events::{EventsArgs, describe, events};
pub use http::{ClientArgs, ClientError, base_url, get, get_text, get_within, send};
pub use info::{InfoArgs, info, metric_sum};
pub use keys::{KeyArg, KeysArgs, KeysCommand, keygen, keys};
pub use members::{
    ForceLeaveArgs, HealthArgs, HealthOp, JoinArgs, MembersArgs, MetaArgs, MetaOp, force_leave, health, join,
    leave, members, meta, table,
};
pub use top::run as top;
pub use watch::{WatchArgs, WatchOptions, run as watch};
