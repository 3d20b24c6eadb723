//! The snapshot of known members under `--data-dir` (`members.json`).
//!
//! Written atomically (a temporary file, fsync, rename, fsync of the
//! directory) after a membership event (at most once a second), every 30 s
//! otherwise, and once more at exit. On a restart without `--join` the agent
//! rejoins through the members it lists and starts above the incarnation it
//! records. A snapshot that cannot be read is logged and renamed
//! `members.json.corrupt`; the agent then starts as if there were none.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use vigil::{State, Vigil};

/// File name of the snapshot in the data directory.
pub const FILE: &str = "members.json";
/// Format version written.
pub const VERSION: u32 = 1;
/// Shortest gap between two writes.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// Longest gap between two writes.
pub const REFRESH: Duration = Duration::from_secs(30);

/// What is saved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// This member's name when saved.
    pub name: String,
    /// This member's incarnation when saved.
    pub incarnation: u64,
    /// When saved, Unix milliseconds.
    pub saved_ms: u64,
    /// The other members.
    pub members: Vec<SavedMember>,
}

/// One other member.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SavedMember {
    /// Name.
    pub name: String,
    /// Address.
    pub addr: String,
    /// State when saved.
    pub state: String,
}

impl Snapshot {
    /// The snapshot of what `vigil` knows now.
    pub fn of(vigil: &Vigil) -> Snapshot {
        let members = vigil.members();
        let me = members.iter().find(|m| m.name.as_str() == vigil.name());
        Snapshot {
            version: VERSION,
            name: vigil.name().to_string(),
            incarnation: me.map_or(0, |m| m.incarnation),
            saved_ms: crate::events::unix_ms(),
            members: members
                .iter()
                .filter(|m| m.name.as_str() != vigil.name())
                .map(|m| SavedMember {
                    name: m.name.to_string(),
                    addr: m.addr.to_string(),
                    state: m.state.as_str().to_string(),
                })
                .collect(),
        }
    }

    /// Addresses to rejoin through: every member but those that left.
    pub fn seeds(&self) -> Vec<String> {
        let mut seeds: Vec<String> =
            self.members.iter().filter(|m| m.state != State::Left.as_str()).map(|m| m.addr.clone()).collect();
        seeds.sort();
        seeds.dedup();
        seeds
    }
}

/// The snapshot's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the snapshot in `dir`. Missing: `None`. Unreadable or corrupt: logged,
/// renamed `members.json.corrupt`, and `None`.
pub fn load(dir: &Path) -> Option<Snapshot> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %p.display(), "cannot read the snapshot: {e}; starting without it");
            return None;
        }
    };
    let problem = match serde_json::from_slice::<Snapshot>(&bytes) {
        Ok(s) if s.version == VERSION => return Some(s),
        Ok(s) => format!("unsupported version {}", s.version),
        Err(e) => e.to_string(),
    };
    let aside = dir.join(format!("{FILE}.corrupt"));
    match std::fs::rename(&p, &aside) {
        Ok(()) => tracing::error!(
            path = %p.display(),
            moved_to = %aside.display(),
            "the snapshot is corrupt ({problem}); set it aside and starting without it"
        ),
        Err(e) => tracing::error!(
            path = %p.display(),
            "the snapshot is corrupt ({problem}) and could not be set aside ({e}); starting without it"
        ),
    }
    None
}

/// Writes the snapshot atomically.
pub fn save(dir: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path(dir))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Keeps the snapshot fresh until `stop` turns true: after each poke of
/// `changed` (at once if the last write is older than [`DEBOUNCE`], else when
/// it is, so that a burst of changes makes one write) and every [`REFRESH`].
/// A snapshot that says what the file already says is not written again
/// (an idle agent would spawn a thread and sync the disk twice every
/// [`REFRESH`] for nothing), unless the file went missing.
pub async fn writer(vigil: Arc<Vigil>, dir: PathBuf, changed: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut last = tokio::time::Instant::now() - DEBOUNCE;
    let mut written: Option<Snapshot> = None;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep_until(last + DEBOUNCE) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // The members list is republished within 50 ms of a change.
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let snap = Snapshot::of(&vigil);
        if written.as_ref().is_some_and(|w| w.same_content(&snap)) && path(&dir).exists() {
            continue;
        }
        written = write(snap.clone(), &dir).await.then_some(snap);
        last = tokio::time::Instant::now();
    }
}

impl Snapshot {
    /// The same member, incarnation and members (whenever saved).
    fn same_content(&self, other: &Snapshot) -> bool {
        (self.version, &self.name, self.incarnation, &self.members)
            == (other.version, &other.name, other.incarnation, &other.members)
    }
}

/// Writes the snapshot now (off the async threads), logging a failure.
pub async fn write_now(vigil: &Vigil, dir: &Path) {
    write(Snapshot::of(vigil), dir).await;
}

/// Writes `snap` off the async threads; false (logged) if it failed.
async fn write(snap: Snapshot, dir: &Path) -> bool {
    let dir = dir.to_owned();
    match tokio::task::spawn_blocking(move || save(&dir, &snap).map_err(|e| (dir, e))).await {
        Ok(Ok(())) => true,
        Ok(Err((dir, e))) => {
            tracing::warn!(dir = %dir.display(), "cannot write the snapshot: {e}");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            version: VERSION,
            name: "a".into(),
            incarnation: 7,
            saved_ms: 1,
            members: vec![
                SavedMember { name: "b".into(), addr: "127.0.0.1:2".into(), state: "alive".into() },
                SavedMember { name: "c".into(), addr: "127.0.0.1:3".into(), state: "left".into() },
                SavedMember { name: "d".into(), addr: "127.0.0.1:4".into(), state: "dead".into() },
            ],
        }
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &snap()).unwrap();
        assert!(!dir.path().join("members.json.tmp").exists());
        let back = load(dir.path()).unwrap();
        assert_eq!(back, snap());
        assert_eq!(back.seeds(), vec!["127.0.0.1:2".to_string(), "127.0.0.1:4".to_string()]);
    }

    #[test]
    fn a_snapshot_saved_at_another_time_has_the_same_content_and_a_change_does_not() {
        let later = Snapshot { saved_ms: 2, ..snap() };
        assert!(snap().same_content(&later));
        let mut moved = snap();
        moved.members[0].addr = "127.0.0.1:9".into();
        assert!(!snap().same_content(&moved));
        assert!(!snap().same_content(&Snapshot { incarnation: 8, ..snap() }));
    }

    #[test]
    fn a_corrupt_snapshot_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"version\": 1, \"na").unwrap();
        assert_eq!(load(dir.path()), None);
        assert!(!path(dir.path()).exists());
        assert!(dir.path().join("members.json.corrupt").exists());
        assert_eq!(load(dir.path()), None, "missing is fine too");
    }
}
