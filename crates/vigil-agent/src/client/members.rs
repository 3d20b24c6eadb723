//! `vigil members`, `vigil join`, `vigil leave`.

use clap::Args;
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
    let path = match &args.state {
        Some(state) => format!("/v1/members?state={state}"),
        None => "/v1/members".into(),
    };
    let v = get(&base, &path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", table(v.as_array().map(Vec::as_slice).unwrap_or_default()));
    }
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
