//! Secret files: the cluster key file (a keyring: one base64 key per line,
//! the first used for sending), the keyring the agent keeps in its data
//! directory, and the HTTP API token file. None may be readable by other
//! users.
//!
//! **The persisted keyring.** With `--data-dir`, the agent keeps the keys it
//! runs with in `DIR/keyring` (mode 0600, the key file's format), rewritten
//! whenever they change (`vigil keys install/use/remove` from any member), so
//! that a rotation survives a restart. The file records the fingerprints of
//! the key file it last read: at a start the saved keyring is used unless
//! the key file changed since (then the key file wins). On SIGHUP a changed
//! key file's new keys are added to the running ones, none removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use vigil::{Key, KeyOp, Keyring, Vigil};

/// Longest key or token file read.
const MAX_SECRET_FILE: u64 = 4096;
/// Shortest API token accepted.
const MIN_TOKEN_LEN: usize = 16;
/// The keyring's file name in the data directory.
pub const KEYRING_FILE: &str = "keyring";
/// The comment line of a saved keyring that records the key file's keys.
const FROM_KEY_FILE: &str = "# key file: ";

/// Reads a secret file, refusing one that other users can read or that
/// others than its owner can change. Readable by its group is accepted
/// (0440 or 0640: Kubernetes mounts secrets so with `fsGroup`).
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o037 != 0 {
            return Err(format!(
                "{what} {} is readable by other users or writable by its group (mode {mode:o}): \
                 run `chmod 600 {}` (640 or 440, readable by its group only, is accepted)",
                path.display(),
                path.display()
            ));
        }
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!("{what} {} is {} bytes: not a {what}", path.display(), meta.len()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The path that names standard input where a key file is asked for.
pub const STDIN: &str = "-";

/// Whether `path` names standard input (`-`).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// Reads a key file, or standard input to its end for `-` (so that a key
/// never sits in argv or a file), at most 4096 bytes either way.
pub fn read_key_source(path: &Path, what: &str) -> Result<String, String> {
    if !is_stdin(path) {
        return read_secret(path, what);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), MAX_SECRET_FILE + 1), &mut text)
        .map_err(|e| format!("{what} from standard input: {e}"))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(format!("{what} from standard input is over {MAX_SECRET_FILE} bytes: not a {what}"));
    }
    Ok(text)
}

/// The keys of a key file's text (one base64 key a line; `#` comments and
/// blank lines skipped), the primary first.
pub fn parse_keys(text: &str, path: &Path) -> Result<Vec<Key>, String> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|k| Key::from_base64(k).map_err(|e| format!("key file {}: {e}", path.display())))
        .collect::<Result<Vec<Key>, String>>()?;
    if keys.is_empty() {
        return Err(format!("key file {} holds no key", path.display()));
    }
    Ok(keys)
}

/// A keyring of `keys` (the first primary) for the cluster called `cluster`.
pub fn keyring_of(keys: &[Key], cluster: &str, path: &Path) -> Result<Keyring, String> {
    let (first, rest) = keys.split_first().ok_or_else(|| format!("{} holds no key", path.display()))?;
    let mut ring = Keyring::new(first.clone(), cluster);
    for k in rest {
        ring.install(k.clone()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(ring)
}

/// The keyring from a key file (one base64 key; more lines: more keys, the
/// first one primary) for the cluster called `cluster`.
pub fn load_keyring(path: &Path, cluster: &str) -> Result<Keyring, String> {
    let keys = parse_keys(&read_secret(path, "key file")?, path)?;
    keyring_of(&keys, cluster, path)
}

/// Fingerprints of keys, in order, comma-separated.
pub fn fingerprints(keys: &[Key]) -> String {
    keys.iter().map(Key::fingerprint).collect::<Vec<_>>().join(",")
}

/// A keyring saved in a data directory.
#[derive(Debug)]
pub struct Saved {
    /// Its keys, the primary first.
    pub keys: Vec<Key>,
    /// The fingerprints of the key file it was saved against ([`fingerprints`]).
    pub key_file: String,
}

/// The keyring saved in `dir`, if any.
pub fn load_saved(dir: &Path) -> Result<Option<Saved>, String> {
    let path = dir.join(KEYRING_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = read_secret(&path, "keyring")?;
    let key_file = text.lines().find_map(|l| l.strip_prefix(FROM_KEY_FILE)).unwrap_or("").trim().to_string();
    Ok(Some(Saved { keys: parse_keys(&text, &path)?, key_file }))
}

/// Saves `keys` (the primary first) in `dir` atomically, mode 0600, with
/// the fingerprints of the key file last read.
pub fn save(dir: &Path, keys: &[Key], key_file: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(KEYRING_FILE);
    let tmp = dir.join(format!("{KEYRING_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    writeln!(f, "# vigil keyring: the keys this member runs with, the primary first (written by the agent)")?;
    writeln!(f, "{FROM_KEY_FILE}{key_file}")?;
    for k in keys {
        writeln!(f, "{}", k.to_base64())?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The keys the agent starts with: the saved keyring in `data_dir`, unless
/// the key file changed since it was saved. Returns them with a line that
/// says where they came from.
pub fn start_keys(key_file: &Path, data_dir: Option<&Path>) -> Result<(Vec<Key>, String), String> {
    let file_keys = parse_keys(&read_secret(key_file, "key file")?, key_file)?;
    start_keys_from(file_keys, key_file, data_dir)
}

/// [`start_keys`] with the key file's keys read already (from `key_file`,
/// or standard input for `-`).
pub fn start_keys_from(
    file_keys: Vec<Key>,
    key_file: &Path,
    data_dir: Option<&Path>,
) -> Result<(Vec<Key>, String), String> {
    let key_file = if is_stdin(key_file) { Path::new("standard input") } else { key_file };
    let Some(dir) = data_dir else {
        return Ok((file_keys, format!("keys from {}", key_file.display())));
    };
    match load_saved(dir)? {
        Some(saved) if saved.key_file == fingerprints(&file_keys) => Ok((
            saved.keys,
            format!("keys from {} (rotations survive restarts)", dir.join(KEYRING_FILE).display()),
        )),
        Some(_) => Ok((
            file_keys,
            format!(
                "keys from {}: it changed since {} was saved, so it replaces that keyring",
                key_file.display(),
                dir.join(KEYRING_FILE).display()
            ),
        )),
        None => Ok((file_keys, format!("keys from {}", key_file.display()))),
    }
}

/// Makes the member's keyring exactly `keys` (the first primary), on this
/// member only: installs the new ones, uses the first, removes the rest.
pub async fn apply_keys(vigil: &Vigil, keys: &[Key]) -> Result<(), String> {
    let Some(first) = keys.first() else { return Err("no key".into()) };
    for k in keys {
        vigil.key_local(KeyOp::Install, k.clone()).await.map_err(|e| e.to_string())?;
    }
    vigil.key_local(KeyOp::Use, first.clone()).await.map_err(|e| e.to_string())?;
    let running = vigil.key_material().await.map_err(|e| e.to_string())?;
    for k in running.into_iter().flatten() {
        if !keys.contains(&k) {
            vigil.key_local(KeyOp::Remove, k).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Adds to the member's keyring, on this member only, those of `keys` it
/// lacks (for receiving); removes none and keeps the primary (SIGHUP with a
/// changed key file). Returns the keys added.
pub async fn add_keys(vigil: &Vigil, keys: &[Key]) -> Result<Vec<Key>, String> {
    let running = vigil.key_material().await.map_err(|e| e.to_string())?.unwrap_or_default();
    let mut added = Vec::new();
    for k in keys.iter().filter(|k| !running.contains(k)) {
        vigil.key_local(KeyOp::Install, k.clone()).await.map_err(|e| e.to_string())?;
        added.push(k.clone());
    }
    Ok(added)
}

/// SIGHUP: reads the key file at `path` again and, if it changed since it
/// was last read (`last`: its keys' fingerprints), adds its new keys to the
/// member's keyring ([`add_keys`]) and logs what changed.
pub async fn reload_key_file(vigil: &Vigil, path: &Path, last: &watch::Sender<String>) {
    if is_stdin(path) {
        tracing::info!("SIGHUP: the key came from standard input at start; it is not read again");
        return;
    }
    let keys = match read_secret(path, "key file").and_then(|t| parse_keys(&t, path)) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::error!("SIGHUP: the running keys are kept: {e}");
            return;
        }
    };
    let fps = fingerprints(&keys);
    if *last.borrow() == fps {
        return;
    }
    match add_keys(vigil, &keys).await {
        Ok(added) => {
            let running = vigil.keys().await.ok().flatten().unwrap_or_default();
            tracing::info!(
                added = %fingerprints(&added),
                primary = running.first().map_or("", String::as_str),
                keys = %running.join(","),
                "SIGHUP: key file {} changed: {} key(s) added for receiving on this member; none removed, \
                 the primary kept (send with a new key cluster-wide with `vigil keys use`)",
                path.display(),
                added.len()
            );
            last.send_replace(fps);
        }
        Err(e) => tracing::error!("SIGHUP: key file {}: {e}", path.display()),
    }
}

/// Keeps `dir/keyring` equal to the member's keyring until `stop` turns
/// true: saves once at start, then whenever the keyring or the key file's
/// record changes (woken by the change, no polling).
/// `key_file` holds the fingerprints of the key file as last read.
pub async fn keyring_writer(
    vigil: Arc<Vigil>,
    dir: PathBuf,
    mut key_file: watch::Receiver<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut saved: Option<(Vec<String>, String)> = None;
    let mut changes = vigil.keyring_changes();
    // Without a SIGHUP handler the key file's record never changes.
    let mut key_file_open = true;
    loop {
        let current = vigil.keys().await.ok().flatten();
        let recorded = key_file.borrow_and_update().clone();
        if let Some(list) = current
            && saved.as_ref() != Some(&(list.clone(), recorded.clone()))
            && let Ok(Some(keys)) = vigil.key_material().await
        {
            match save(&dir, &keys, &recorded) {
                Ok(()) => {
                    tracing::info!(keys = keys.len(), path = %dir.join(KEYRING_FILE).display(), "keyring saved");
                    saved = Some((keys.iter().map(Key::fingerprint).collect(), recorded));
                }
                Err(e) => tracing::error!(dir = %dir.display(), "cannot save the keyring: {e}"),
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = changes.changed() => if r.is_err() { return },
            r = key_file.changed(), if key_file_open => key_file_open = r.is_ok(),
        }
    }
}

/// The API token the agent requires (`--http-token-file`): the file's text,
/// trimmed, at least 16 characters.
pub fn read_token(path: &Path) -> Result<String, String> {
    let t = read_secret(path, "token file")?.trim().to_string();
    if t.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "token file {}: use a token of at least {MIN_TOKEN_LEN} characters",
            path.display()
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_must_be_private_to_the_owner_or_its_group_and_hold_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = Key::generate();
        std::fs::write(&path, format!("{}\n", k.to_base64())).unwrap();
        for bad in [0o644, 0o604, 0o660, 0o400 | 0o002] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let e = load_keyring(&path, "c").unwrap_err();
            assert!(e.contains("readable by other users") && e.contains("chmod 600"), "{bad:o}: {e}");
        }
        for good in [0o600, 0o400, 0o440, 0o640] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(good)).unwrap();
            assert_eq!(load_keyring(&path, "c").unwrap().list(), vec![k.fingerprint()], "{good:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("base64"));
        std::fs::write(&path, "").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("no key"));
    }

    #[test]
    fn a_saved_keyring_is_private_and_wins_until_the_key_file_changes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        let (old, new) = (Key::generate(), Key::generate());
        std::fs::write(&key_file, format!("{}\n", old.to_base64())).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (keys, from) = start_keys(&key_file, Some(dir.path())).unwrap();
        assert_eq!((keys, from.contains("key")), (vec![old.clone()], true), "nothing saved yet");

        // Rotated while running: new primary, old removed.
        save(dir.path(), std::slice::from_ref(&new), &fingerprints(std::slice::from_ref(&old))).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEYRING_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (keys, from) = start_keys(&key_file, Some(dir.path())).unwrap();
        assert_eq!(keys, vec![new.clone()], "the rotation survives a restart");
        assert!(from.contains("rotations survive restarts"), "{from}");

        // The operator writes a new key file: it wins.
        let third = Key::generate();
        std::fs::write(&key_file, format!("{}\n", third.to_base64())).unwrap();
        let (keys, from) = start_keys(&key_file, Some(dir.path())).unwrap();
        assert_eq!(keys, vec![third], "{from}");
        assert!(from.contains("changed"), "{from}");
    }
}
