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
    Install {
        /// The key, base64 (as `vigil keygen` prints it).
        key: String,
    },
    /// Make an installed key the one used for sending.
    Use {
        /// The key, base64.
        key: String,
    },
    /// Remove a key that is not used for sending.
    Remove {
        /// The key, base64.
        key: String,
    },
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
        KeysCommand::Install { key } => ("install", key),
        KeysCommand::Use { key } => ("use", key),
        KeysCommand::Remove { key } => ("remove", key),
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
