//! The agent started exactly as deploy/ starts it: the DaemonSet's
//! arguments (deploy/kubernetes/vigil.yaml) and the systemd unit's
//! `ExecStart` (deploy/systemd/vigil.service), read from those files, with
//! only the machine's addresses and paths put in: secrets mounted 0440
//! (owner root, group the agent's, as the kubelet does with `fsGroup`), a
//! fresh data directory handed to the agent's user, and the agent running
//! as that other, unprivileged user.
//!
//! Running as another user needs root: without it these tests are skipped,
//! saying why, except under CI (`CI` set), where they fail. The agents are
//! killed when their guard drops (panics included); every wait is bounded.

mod support;

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{EXE, try_wait_until, wait_until};

/// The user the DaemonSet runs as (`runAsUser`, `fsGroup`).
const K8S_UID: u32 = 10001;
/// A stand-in for the unit's `DynamicUser`.
const UNIT_UID: u32 = 61_234;

fn root_or_skip(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} needs root (to run the agent as another user); CI is set"
    );
    eprintln!(
        "SKIPPED {what}: it needs root to run the agent as another user (under CI, with CI set, it fails)"
    );
    false
}

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An agent process, killed when this drops.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(args: &[String], uid: u32, log: PathBuf) -> Agent {
        // setpriv(1) execs the agent as `uid`, with no supplementary group.
        let id = uid.to_string();
        let child = Command::new("setpriv")
            .args(["--reuid", &id, "--regid", &id, "--clear-groups", EXE])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped()) // kept open: the agent does not watch it here
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the "started" line; returns the API address.
    fn http(&mut self) -> String {
        let mut http = None;
        let ok = try_wait_until(Duration::from_secs(20), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited with {status}:\n{}", self.log());
            }
            http = self.log().lines().find(|l| l.contains(vigil_agent::agent::STARTED)).and_then(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v.pointer("/fields/http").and_then(|h| h.as_str()).map(str::to_string)
            });
            http.is_some()
        });
        assert!(ok, "no \"started\" line:\n{}", self.log());
        http.unwrap()
    }

    /// SIGTERM; the exit status code.
    fn terminate(&mut self) -> Option<i32> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let mut code = None;
        wait_until("the agent exits after SIGTERM", Duration::from_secs(20), || {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    code = s.code();
                    true
                }
                _ => false,
            }
        });
        code
    }
}

/// A directory the agent's user can enter (the test's temporary directory
/// is private to root).
fn open_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A secret as the kubelet mounts it with `fsGroup`: root-owned, the
/// agent's group, 0440.
fn secret(path: &Path, text: &str, gid: u32) {
    open_dir(path.parent().unwrap());
    std::fs::write(path, text).unwrap();
    chown(path, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o440)).unwrap();
}

/// A fresh data directory, created by root and handed to `uid` (the
/// DaemonSet's init container; systemd's `StateDirectory`).
fn data_dir(path: &Path, uid: u32) {
    std::fs::create_dir_all(path).unwrap();
    chown(path, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Runs the agent until it answers, stops it with SIGTERM, and checks what
/// it left in its data directory.
fn run_and_check(args: &[String], uid: u32, data: &Path, log: PathBuf) {
    let mut agent = Agent::start(args, uid, log);
    let http = vigil_agent::client::base_url(&agent.http());
    wait_until("/healthz answers", Duration::from_secs(10), || {
        vigil_agent::client::get_text(&http, "/healthz").is_ok()
    });
    // The persisted keyring, private.
    let keyring = data.join("keyring");
    wait_until("the keyring is saved in the data directory", Duration::from_secs(10), || keyring.exists());
    assert_eq!(std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
    assert!(data.join("members.json").exists(), "snapshot written at exit:\n{}", agent.log());
    assert!(!agent.log().contains("ERROR"), "{}", agent.log());
}

#[test]
fn the_agent_starts_with_the_daemonsets_arguments_0440_secrets_and_a_data_dir_it_was_handed() {
    if !root_or_skip("the DaemonSet start test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    open_dir(root);
    let yaml = repo_file("deploy/kubernetes/vigil.yaml");
    // The container's arguments, as the DaemonSet lists them.
    let args: Vec<String> = yaml
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- ").to_string())
        .collect();
    assert!(args.first().is_some_and(|a| a == "agent") && args.len() > 5, "{args:?}");
    let key_path = root.join("etc/vigil/key/key");
    let token_path = root.join("etc/vigil/token/token");
    let data = root.join("var/lib/vigil");
    // This machine's values for the pod's (the ports: any free one).
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("$(NODE_NAME)", "node-a")
                .replace("$(NAMESPACE)", "vigil")
                .replace("$(POD_IP):7950", "127.0.0.1:0")
                .replace("0.0.0.0:7950", "127.0.0.1:0")
                .replace("0.0.0.0:7951", "127.0.0.1:0")
                .replace("vigil-seeds.vigil.svc.cluster.local:7950", "127.0.0.1:9")
                .replace("/etc/vigil/key/key", &key_path.display().to_string())
                .replace("/etc/vigil/token/token", &token_path.display().to_string())
                .replace("/var/lib/vigil", &data.display().to_string())
        })
        .collect();
    let key = String::from_utf8(Command::new(EXE).arg("keygen").output().unwrap().stdout).unwrap();
    secret(&key_path, &key, K8S_UID);
    secret(&token_path, "a-token-of-enough-length-0123456789\n", K8S_UID);
    data_dir(&data, K8S_UID);
    run_and_check(&args, K8S_UID, &data, root.join("agent.log"));
}

#[test]
fn the_agent_starts_with_the_units_execstart_a_credential_and_a_state_directory() {
    if !root_or_skip("the systemd unit start test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    open_dir(root);
    let unit = repo_file("deploy/systemd/vigil.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let state = root.join("state/vigil");
    let creds = root.join("credentials");
    let config = root.join("etc/vigil/vigil.toml");
    open_dir(config.parent().unwrap());
    open_dir(state.parent().unwrap());
    std::fs::write(
        &config,
        "name = \"host-a\"\nbind = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1) // the binary
        .map(|a| {
            a.replace("/etc/vigil/vigil.toml", &config.display().to_string())
                .replace("${STATE_DIRECTORY}", &state.display().to_string())
                .replace("${CREDENTIALS_DIRECTORY}", &creds.display().to_string())
        })
        .collect();
    let key = String::from_utf8(Command::new(EXE).arg("keygen").output().unwrap().stdout).unwrap();
    // systemd hands a credential to the service user, read-only.
    let key_path = creds.join("vigil.key");
    secret(&key_path, &key, UNIT_UID);
    chown(&key_path, Some(UNIT_UID), Some(UNIT_UID)).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
    data_dir(&state, UNIT_UID);
    run_and_check(&args, UNIT_UID, &state, root.join("agent.log"));
}
