//! `vigil keygen` and `vigil keys list|install|use|remove`: cluster keys,
//! changed through the local agent on every alive member.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vigil::Key;

use super::http::{ClientArgs, ClientError, base_url, get, send};

/// `vigil keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Apply to the local agent only (default: every alive member, each one acknowledging).
    #[arg(long, global = true)]
    pub local: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Key operations. Rotate with install, then use, then remove the old key.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Fingerprints of the installed keys, the primary first.
    List,
    /// Add a key for receiving.
    Install(KeyArg),
    /// Make an installed key the one used for sending.
    Use(KeyArg),
    /// Remove a key that is not used for sending.
    Remove(KeyArg),
}

/// The key of `vigil keys install|use|remove`: in argv, or from a file or
/// standard input (`--key-file -`), which keeps it out of argv (`ps`,
/// shell history).
#[derive(Debug, Args)]
pub struct KeyArg {
    /// The key, base64 (as `vigil keygen` prints it).
    #[arg(required_unless_present = "key_file", conflicts_with = "key_file")]
    pub key: Option<String>,
    /// Read the key from FILE (mode 0600, 0400, 0640 or 0440), or from
    /// standard input with `-`; one key, base64.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
}

impl KeyArg {
    /// The key, base64, from argv, the file or standard input.
    pub fn base64(&self) -> Result<String, ClientError> {
        let Some(path) = &self.key_file else { return Ok(self.key.clone().unwrap_or_default()) };
        let text = crate::secrets::read_key_source(path, "key file").map_err(ClientError)?;
        let keys = crate::secrets::parse_keys(&text, path).map_err(ClientError)?;
        match keys.as_slice() {
            [k] => Ok(k.to_base64()),
            _ => Err(ClientError(format!("{}: one key expected, found {}", path.display(), keys.len()))),
        }
    }
}

/// `vigil keygen`.
pub fn keygen() -> Result<(), ClientError> {
    println!("{}", Key::generate().to_base64());
    Ok(())
}

/// `vigil keys list|install|use|remove`.
pub fn keys(args: &KeysArgs) -> Result<(), ClientError> {
    let base = base_url(&args.client.http);
    let (op, key) = match &args.command {
        KeysCommand::List => {
            let v = get(&base, "/v1/keys")?;
            if v["encrypted"] == Value::Bool(false) {
                println!("traffic is not encrypted (the agent runs with --insecure-plaintext)");
                return Ok(());
            }
            for (i, k) in v["keys"].as_array().into_iter().flatten().enumerate() {
                println!("{} {}", k.as_str().unwrap_or(""), if i == 0 { "(primary)" } else { "" });
            }
            return Ok(());
        }
        KeysCommand::Install(k) => ("install", k.base64()?),
        KeysCommand::Use(k) => ("use", k.base64()?),
        KeysCommand::Remove(k) => ("remove", k.base64()?),
    };
    let body = json!({"key": key, "local": args.local});
    let r = send("POST", &base, &format!("/v1/keys/{op}"), &body)?;
    println!(
        "{op} {}: applied by {} member(s)",
        r["key"].as_str().unwrap_or(""),
        r["applied"].as_array().map_or(0, Vec::len)
    );
    for f in r["refused"].as_array().into_iter().flatten() {
        println!(
            "  refused by {}: {}",
            f["member"].as_str().unwrap_or(""),
            f["error"].as_str().unwrap_or("")
        );
    }
    for m in r["missing"].as_array().into_iter().flatten() {
        println!("  no answer from {}", m.as_str().unwrap_or(""));
    }
    if r["complete"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(ClientError(format!(
            "`keys {op}` did not reach every member: repeat it, or fix those members, before the next step"
        )))
    }
}
