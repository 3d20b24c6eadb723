//! What the handle ([`crate::Vigil`]) asks of the driver, one message per
//! call; answers come back on the `reply` channels.

use std::time::Duration;

use tokio::sync::oneshot;
use vigil_proto::{Health, Member};

use crate::crypto::Key;
use crate::error::CommandError;
#[cfg(feature = "testing")]
use crate::fault::Faults;
use crate::join::JoinReply;
use crate::keys::{KeyOp, KeyReply};

/// Commands from the handle to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        seeds: Vec<String>,
        reply: Option<JoinReply>,
    },
    Leave {
        timeout: Duration,
        reply: oneshot::Sender<bool>,
    },
    SetMeta {
        meta: Vec<u8>,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    SetHealth {
        health: Health,
    },
    #[cfg(feature = "testing")]
    SetFaults {
        faults: Option<Faults>,
    },
    Members {
        reply: oneshot::Sender<Vec<Member>>,
    },
    /// Mark a failed member left (`Core::force_leave`).
    ForceLeave {
        name: String,
        reply: oneshot::Sender<Option<vigil_proto::State>>,
    },
    /// A key operation, here only or on every member.
    Keys {
        op: KeyOp,
        key: Key,
        cluster: bool,
        reply: KeyReply,
    },
    ListKeys {
        reply: oneshot::Sender<Option<Vec<String>>>,
    },
    /// The keys themselves, the primary first, to save them.
    ExportKeys {
        reply: oneshot::Sender<Option<Vec<crate::crypto::Key>>>,
    },
    Shutdown,
}
