//! `vigil members`, `vigil join`, `vigil leave`, `vigil force-leave`,
//! `vigil meta set|delete`, `vigil health set`.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::http::{ClientArgs, ClientError, base_url, get, send};

/// `vigil members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only members in this state (alive, suspect, dead, left).
    #[arg(long)]
    pub state: Option<String>,
    /// Only members of this health (ok, degraded, failing).
    #[arg(long)]
    pub health: Option<String>,
    /// Only members with this metadata, KEY=VALUE (repeatable, all must hold).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
}

/// `vigil force-leave`.
#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The failed member to mark left (`DELETE /v1/members/NAME`).
    pub name: String,
}

/// `vigil meta`.
#[derive(Debug, Args)]
pub struct MetaArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to change.
    #[command(subcommand)]
    pub op: MetaOp,
}

/// `vigil meta set|delete`: merged into the member's metadata (the API's
/// `PUT /v1/self/meta` replaces it all; these read it first).
#[derive(Debug, Subcommand)]
pub enum MetaOp {
    /// Set keys, KEY=VALUE..., keeping the others.
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Delete keys, keeping the others.
    Delete {
        /// Keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// `vigil health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to change.
    #[command(subcommand)]
    pub op: HealthOp,
}

/// `vigil health set`.
#[derive(Debug, Subcommand)]
pub enum HealthOp {
    /// Publish this member's health (`PUT /v1/self/health`); checks, if
    /// configured, publish theirs again at their next run.
    Set {
        /// ok, degraded or failing.
        status: String,
        /// Why (shown with the status).
        #[arg(default_value = "")]
        reason: String,
    },
}

/// `vigil join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Seeds: IP:PORT or HOST:PORT.
    #[arg(required = true)]
    pub addrs: Vec<String>,
}

/// A string field of a JSON object, or `""`.
pub(crate) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `text` with control and invisible formatting characters escaped
/// (`\n`, `\u{1b}`, ...), so that a name or value cannot move the cursor,
/// recolour or forge lines of the terminal it is printed on.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A member's metadata as `k=v,k=v`.
pub(crate) fn meta_text(v: &Value) -> String {
    v.get("meta")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")
        })
        .unwrap_or_default()
}

/// Formats members as an aligned table.
pub fn table(members: &[Value]) -> String {
    let mut rows =
        vec![["NAME", "ADDRESS", "STATE", "HEALTH", "INCARNATION", "RTT", "PHI", "META"].map(String::from)];
    for m in members {
        let health = match m.get("health") {
            Some(h) if !s(h, "reason").is_empty() => format!("{} ({})", s(h, "status"), s(h, "reason")),
            Some(h) => s(h, "status").to_string(),
            None => String::new(),
        };
        rows.push([
            printable(s(m, "name")),
            printable(s(m, "addr")),
            printable(s(m, "state")),
            printable(&health),
            m.get("incarnation").map(Value::to_string).unwrap_or_default(),
            m.get("rtt_ms")
                .and_then(Value::as_f64)
                .map(|r| format!("{r:.2}ms"))
                .unwrap_or_else(|| "-".into()),
            m.get("phi").and_then(Value::as_f64).map(|p| format!("{p:.1}")).unwrap_or_default(),
            printable(&meta_text(m)),
        ]);
    }
    let widths: Vec<usize> =
        (0..8).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `vigil members`.
pub fn members(args: &MembersArgs) -> Result<(), ClientError> {
    let base = base_url(&args.client.http);
    let mut query: Vec<String> = Vec::new();
    if let Some(state) = &args.state {
        query.push(format!("state={}", super::watch::encode(state)));
    }
    if let Some(health) = &args.health {
        query.push(format!("health={}", super::watch::encode(health)));
    }
    for m in &args.meta {
        let (k, v) = m
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ClientError(format!("--meta `{m}`: expected KEY=VALUE")))?;
        query.push(format!("meta.{}={}", super::watch::encode(k), super::watch::encode(v)));
    }
    let path =
        if query.is_empty() { "/v1/members".to_string() } else { format!("/v1/members?{}", query.join("&")) };
    let v = get(&base, &path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", table(v.as_array().map(Vec::as_slice).unwrap_or_default()));
    }
    Ok(())
}

/// `vigil force-leave`.
pub fn force_leave(args: &ForceLeaveArgs) -> Result<(), ClientError> {
    let path = format!("/v1/members/{}", super::watch::encode(&args.name));
    let v = send("DELETE", &base_url(&args.client.http), &path, &Value::Null)?;
    println!("{} is now {}", args.name, s(&v, "state"));
    Ok(())
}

/// `vigil meta set|delete`.
pub fn meta(args: &MetaArgs) -> Result<(), ClientError> {
    let base = base_url(&args.client.http);
    let me = get(&base, "/v1/self")?;
    let mut map: serde_json::Map<String, Value> =
        me.get("meta").and_then(Value::as_object).cloned().unwrap_or_default();
    match &args.op {
        MetaOp::Set { pairs } => {
            for p in pairs {
                let (k, v) = p
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| ClientError(format!("`{p}`: expected KEY=VALUE")))?;
                map.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
        MetaOp::Delete { keys } => {
            for k in keys {
                map.remove(k);
            }
        }
    }
    let v = send("PUT", &base, "/v1/self/meta", &Value::Object(map))?;
    println!("meta: {}", meta_text(&v));
    Ok(())
}

/// `vigil health set`.
pub fn health(args: &HealthArgs) -> Result<(), ClientError> {
    let HealthOp::Set { status, reason } = &args.op;
    let body = serde_json::json!({ "status": status, "reason": reason });
    let v = send("PUT", &base_url(&args.client.http), "/v1/self/health", &body)?;
    let h = v.get("health").cloned().unwrap_or(Value::Null);
    println!("health: {} {}", s(&h, "status"), s(&h, "reason"));
    Ok(())
}

/// `vigil join`.
pub fn join(args: &JoinArgs) -> Result<(), ClientError> {
    let v =
        send("POST", &base_url(&args.client.http), "/v1/join", &serde_json::json!({ "addrs": args.addrs }))?;
    println!("joined: {} members known", v.get("members").map(Value::to_string).unwrap_or_default());
    Ok(())
}

/// `vigil leave`.
pub fn leave(args: &ClientArgs) -> Result<(), ClientError> {
    let v = send("POST", &base_url(&args.http), "/v1/leave", &serde_json::json!({}))?;
    if v.get("disseminated").and_then(Value::as_bool) == Some(false) {
        println!("left (not every member may have been told in time); the agent is stopping");
    } else {
        println!("left the cluster; the agent is stopping");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_printed_escaped() {
        let m = serde_json::json!({"name": "evil\n\u{1b}[2Jroot\u{202e}", "addr": "127.0.0.1:1", "state": "alive",
            "health": {"status": "ok", "reason": ""}, "meta": {"k": "v\r"}});
        let t = table(&[m]);
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert_eq!(t.lines().count(), 2, "one header, one member: {t}");
        assert!(t.contains("evil\\n\\u{1b}[2Jroot\\u{202e}") && t.contains("k=v\\r"), "{t}");
    }
}
