//! CPU starvation with a cgroup v1 CPU quota (scenario 12): a group under
//! `/sys/fs/cgroup/cpu` whose tasks may run `quota` of every `period`
//! (1 ms per 1 s: the member runs in short bursts up to a second apart, like
//! a process on a host that is badly overcommitted). [`Starve`] moves every
//! thread of a process into such a group; dropping it moves them back to
//! the root group and removes the group.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Error, Result, io};

/// Names of the groups this crate makes (the lab's namespaces use the same
/// prefix, so one look at a machine shows what vigil-chaos left).
const PREFIX: &str = "vigil-chaos-";

/// Where the cgroup v1 CPU controller is mounted.
pub const ROOT: &str = "/sys/fs/cgroup/cpu";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A CPU-quota group holding one process's threads; removed on drop.
#[derive(Debug)]
pub struct Starve {
    dir: PathBuf,
}

impl Starve {
    /// Creates a group `vigil-chaos-<pid>-<n>` allowed `quota` of CPU per
    /// `period`, and moves every thread of process `pid` into it.
    pub fn start(pid: u32, quota: Duration, period: Duration) -> Result<Starve> {
        let root = Path::new(ROOT);
        if !root.join("cpu.cfs_quota_us").is_file() {
            return Err(Error::Environment(format!("no cgroup v1 CPU controller at {ROOT}")));
        }
        let dir =
            root.join(format!("{PREFIX}{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        // From here on, drop removes the group whatever fails next.
        let group = Starve { dir };
        // The period first: a quota is checked against the current period.
        group.write("cpu.cfs_period_us", &period.as_micros().to_string())?;
        group.write("cpu.cfs_quota_us", &quota.as_micros().to_string())?;
        let moved = group.add(pid)?;
        if moved == 0 {
            return Err(Error::Environment(format!("process {pid} has no threads to starve")));
        }
        Ok(group)
    }

    /// The group's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves every thread of `pid` into the group (a thread it creates
    /// later inherits its creator's group). Returns how many moved.
    fn add(&self, pid: u32) -> Result<usize> {
        let task_dir = format!("/proc/{pid}/task");
        let tids = std::fs::read_dir(&task_dir).map_err(io(format!("listing {task_dir}")))?;
        let mut moved = 0;
        for tid in tids.flatten() {
            let tid = tid.file_name().to_string_lossy().into_owned();
            // A thread that ended meanwhile cannot be moved: not an error.
            if std::fs::write(self.dir.join("tasks"), &tid).is_ok() {
                moved += 1;
            }
        }
        Ok(moved)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(io(format!("writing {value} to {}", path.display())))
    }
}

impl Drop for Starve {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.dir) {
            eprintln!("vigil-chaos: could not remove cgroup {}: {e}", self.dir.display());
        }
    }
}

/// Moves the tasks of group `dir` to the root group and removes it; a few
/// tries, as a thread being created may land in the group meanwhile.
fn remove(dir: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..20 {
        let tasks = std::fs::read_to_string(dir.join("tasks")).unwrap_or_default();
        for tid in tasks.split_whitespace() {
            let _ = std::fs::write(Path::new(ROOT).join("tasks"), tid);
        }
        last = std::fs::remove_dir(dir);
        match &last {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    last
}

/// Removes groups `vigil-chaos-<pid>-…` whose process `<pid>` is gone (a
/// killed run's). Returns how many were removed.
pub fn remove_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(ROOT) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if remove(&e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
