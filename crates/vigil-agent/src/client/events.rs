//! `vigil events`: follows the agent's event stream (SSE), resuming after a
//! disconnect; [`describe`] is the readable line `vigil top` shows too.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::http::{ClientArgs, ClientError, agent, base_url, reply, unreachable};
use super::members::{printable, s};

/// `vigil events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the events' JSON lines instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

/// One readable line for an event's JSON.
pub fn describe(e: &Value) -> String {
    let time = e
        .get("time_ms")
        .and_then(Value::as_u64)
        .map(|ms| {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_default();
    let mut line = format!(
        "{time} {:<9} {} {} (incarnation {})",
        s(e, "kind"),
        s(e, "member"),
        s(e, "addr"),
        e.get("incarnation").unwrap_or(&Value::Null)
    );
    let names = |k: &str| {
        e.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
    };
    if let Some(by) = names("suspected_by").filter(|s| !s.is_empty()) {
        line.push_str(&format!(" suspected by {by}"));
    }
    if let Some(n) = e.get("confirmations").and_then(Value::as_u64) {
        line.push_str(&format!("; {n} confirmations"));
    }
    if let Some(ms) = e.get("suspicion_ms").and_then(Value::as_u64) {
        line.push_str(&format!("; suspicion lasted {ms} ms"));
    }
    if let Some(by) = e.get("declared_by").and_then(Value::as_str) {
        line.push_str(&format!("; declared failed by {by}"));
    }
    if let Some(cause) = e.get("cause").and_then(Value::as_str) {
        line.push_str(&format!("; {cause}"));
    }
    printable(&line)
}

/// `vigil events`: follows the SSE stream, resuming after a disconnect.
pub fn events(args: &EventsArgs) -> Result<(), ClientError> {
    let url = format!("{}/v1/events", base_url(&args.client.http));
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut req = agent(None).get(&url);
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id.as_str());
        }
        match req.call() {
            Ok(resp) if resp.status().is_success() => {
                failures = 0;
                let reader = BufReader::new(resp.into_body().into_reader());
                let mut data = String::new();
                for line in reader.lines() {
                    let Ok(line) = line else { break };
                    if let Some(id) = line.strip_prefix("id:") {
                        last_id = Some(id.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    } else if line.is_empty() && !data.is_empty() {
                        let out = if args.json {
                            data.clone()
                        } else {
                            serde_json::from_str(&data).map(|v| describe(&v)).unwrap_or_else(|_| data.clone())
                        };
                        let mut stdout = std::io::stdout().lock();
                        if writeln!(stdout, "{out}").and_then(|()| stdout.flush()).is_err() {
                            return Ok(()); // stdout closed (piped into head, ...)
                        }
                        data.clear();
                    }
                }
            }
            Ok(resp) => return reply(&url, Ok(resp)).map(|_| ()),
            Err(e) => {
                failures += 1;
                if failures > 5 {
                    return Err(unreachable(&url, &e));
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_on_kernel_evidence_is_described_with_its_cause() {
        let e = serde_json::json!({"kind": "failed", "member": "n3", "addr": "127.0.0.1:1", "incarnation": 1,
            "suspected_by": ["n1"], "confirmations": 1, "declared_by": "n1",
            "cause": "process exited: stream closed at n1; connection refused at n2"});
        let line = describe(&e);
        assert!(
            line.ends_with(
                "declared failed by n1; process exited: stream closed at n1; connection refused at n2"
            ),
            "{line}"
        );
    }
}
