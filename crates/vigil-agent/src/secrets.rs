//! Secret files: the cluster key file (a keyring: one base64 key per line,
//! the first used for sending) and the HTTP API token file. Both must not be
//! readable by other users.

use std::path::Path;

use vigil::{Key, Keyring};

/// Longest key or token file read.
const MAX_SECRET_FILE: u64 = 4096;
/// Shortest API token accepted.
const MIN_TOKEN_LEN: usize = 16;

/// Reads a secret file, refusing one that other users can read.
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{what} {} is readable by other users (mode {mode:o}): run `chmod 600 {}`",
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

/// The keyring from a key file (one base64 key; more lines: more keys, the
/// first one primary) for the cluster called `cluster`.
pub fn load_keyring(path: &Path, cluster: &str) -> Result<Keyring, String> {
    let text = read_secret(path, "key file")?;
    let mut keys = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = keys.next().ok_or_else(|| format!("key file {} holds no key", path.display()))?;
    let parse = |k: &str| Key::from_base64(k).map_err(|e| format!("key file {}: {e}", path.display()));
    let mut ring = Keyring::new(parse(first)?, cluster);
    for k in keys {
        ring.install(parse(k)?).map_err(|e| format!("key file {}: {e}", path.display()))?;
    }
    Ok(ring)
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
    fn key_files_must_be_private_and_hold_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = Key::generate();
        std::fs::write(&path, format!("{}\n", k.to_base64())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_keyring(&path, "c").unwrap_err();
        assert!(e.contains("readable by other users") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_keyring(&path, "c").unwrap().list(), vec![k.fingerprint()]);
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("base64"));
        std::fs::write(&path, "").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("no key"));
    }
}
