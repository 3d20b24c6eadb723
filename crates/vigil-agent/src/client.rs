//! The client subcommands (`vigil members`, `join`, `leave`, `events`,
//! `info`): small blocking HTTP calls to an agent's API.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde_json::Value;

use crate::cli::{ClientArgs, EventsArgs, JoinArgs, MembersArgs};

/// A client command failed; the message says why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// The API's base URL from `--http` (`IP:PORT` or `http://HOST:PORT`).
pub fn base_url(http: &str) -> String {
    let http = http.trim_end_matches('/');
    if http.starts_with("http://") || http.starts_with("https://") {
        http.to_string()
    } else {
        format!("http://{http}")
    }
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into()
}

fn unreachable(url: &str, e: &ureq::Error) -> ClientError {
    ClientError(format!(
        "cannot reach the agent at {url}: {e} (is `vigil agent` running there? choose with --http)"
    ))
}

fn reply(
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, ClientError> {
    let mut resp = result.map_err(|e| unreachable(url, &e))?;
    let status = resp.status();
    let text = resp.body_mut().read_to_string().map_err(|e| unreachable(url, &e))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        Ok(value)
    } else {
        let msg =
            value.get("error").and_then(Value::as_str).map_or_else(|| value.to_string(), str::to_string);
        Err(ClientError(format!("the agent answered {status}: {msg}")))
    }
}

/// `GET base/path` as JSON.
pub fn get(base: &str, path: &str) -> Result<Value, ClientError> {
    let url = format!("{base}{path}");
    reply(&url, agent(Some(Duration::from_secs(10))).get(&url).call())
}

/// `GET base/path` as text (for `/metrics`).
pub fn get_text(base: &str, path: &str) -> Result<String, ClientError> {
    let url = format!("{base}{path}");
    let mut resp =
        agent(Some(Duration::from_secs(10))).get(&url).call().map_err(|e| unreachable(&url, &e))?;
    resp.body_mut().read_to_string().map_err(|e| unreachable(&url, &e))
}

/// `POST` or `PUT` a JSON body.
pub fn send(method: &str, base: &str, path: &str, body: &Value) -> Result<Value, ClientError> {
    let url = format!("{base}{path}");
    let a = agent(Some(Duration::from_secs(30)));
    let token = token_from_env()?;
    let auth = token.as_deref().map(|t| format!("Bearer {t}"));
    let result = match (method, auth) {
        ("PUT", Some(auth)) => a.put(&url).header("Authorization", auth.as_str()).send_json(body),
        ("PUT", None) => a.put(&url).send_json(body),
        (_, Some(auth)) => a.post(&url).header("Authorization", auth.as_str()).send_json(body),
        (_, None) => a.post(&url).send_json(body),
    };
    reply(&url, result)
}

/// The API token for mutating calls, from the file named by
/// `VIGIL_HTTP_TOKEN_FILE` (the same file the agent reads), if set.
fn token_from_env() -> Result<Option<String>, ClientError> {
    match std::env::var_os("VIGIL_HTTP_TOKEN_FILE") {
        Some(p) => crate::security::read_secret(std::path::Path::new(&p), "token file")
            .map(|t| Some(t.trim().to_string()))
            .map_err(ClientError),
        None => Ok(None),
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn meta_text(v: &Value) -> String {
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
            s(m, "name").to_string(),
            s(m, "addr").to_string(),
            s(m, "state").to_string(),
            health,
            m.get("incarnation").map(Value::to_string).unwrap_or_default(),
            m.get("rtt_ms")
                .and_then(Value::as_f64)
                .map(|r| format!("{r:.2}ms"))
                .unwrap_or_else(|| "-".into()),
            m.get("phi").and_then(Value::as_f64).map(|p| format!("{p:.1}")).unwrap_or_default(),
            meta_text(m),
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

/// `vigil info`.
pub fn info(args: &ClientArgs) -> Result<(), ClientError> {
    let base = base_url(&args.http);
    let me = get(&base, "/v1/self")?;
    let all = get(&base, "/v1/members")?;
    let count =
        |state: &str| all.as_array().map_or(0, |a| a.iter().filter(|m| s(m, "state") == state).count());
    let metrics = get_text(&base, "/metrics").unwrap_or_default();
    let health = me.get("health").cloned().unwrap_or(Value::Null);
    println!("name:        {}", s(&me, "name"));
    println!("address:     {}", s(&me, "addr"));
    println!(
        "state:       {} (incarnation {})",
        s(&me, "state"),
        me.get("incarnation").unwrap_or(&Value::Null)
    );
    println!("health:      {} {}", s(&health, "status"), s(&health, "reason"));
    println!("meta:        {}", meta_text(&me));
    println!(
        "members:     {} alive, {} suspect, {} dead, {} left",
        count("alive"),
        count("suspect"),
        count("dead"),
        count("left")
    );
    println!("local health score: {}", crate::metrics::sum("vigil_local_health_score", &metrics));
    println!(
        "traffic:     {} bytes sent, {} received",
        crate::metrics::sum("vigil_sent_bytes_total", &metrics),
        crate::metrics::sum("vigil_received_bytes_total", &metrics)
    );
    println!("api:         {base}");
    Ok(())
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
    line
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
