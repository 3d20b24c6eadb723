//! `vigil watch`: keeps a file rendered from the healthy member set and runs
//! a reload command when it changes (consul-template is the model).
//!
//! Each second it reads `/v1/members?state=alive&health=ok` plus the filter
//! (`role=web` becomes `meta.role=web`) from the local agent and renders the
//! template (minijinja syntax) with `members`, each having `name`, `addr`,
//! `host`, `port` (the `port` metadata if set, else the gossip port), `meta`,
//! `health`. Only the rendering is compared: fields the template does not
//! use, and those that change on every read (`phi`, `rtt_ms`, `since_ms`),
//! never count as a change. When the rendering changed and then stayed the
//! same for `--debounce`, it writes the output atomically if it differs from
//! the file, and runs `--exec` through `sh -c`. So a change shows in the file
//! within the debounce plus one poll (a second at most).
//!
//! It logs on stderr like the agent (`--log-format`, `RUST_LOG`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::http::{ClientArgs, ClientError, base_url, get};

/// `vigil watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only members with this metadata, KEY=VALUE (repeatable, all must hold).
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Template file (minijinja/Jinja2 syntax) rendered with `members`.
    #[arg(long, value_name = "FILE")]
    pub template: PathBuf,
    /// Output file, replaced atomically when the rendering changes.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Command run through `sh -c` after each change (e.g. `nginx -s reload`).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Quiet time the set must hold before the file is rewritten.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = vigil_sim::units::parse_duration)]
    pub debounce: Duration,
    /// Render once and exit.
    #[arg(long)]
    pub once: bool,
}

impl WatchArgs {
    /// The options of [`run`].
    pub fn options(&self) -> WatchOptions {
        WatchOptions {
            http: self.client.http.clone(),
            filters: self.filter.clone(),
            template: self.template.clone(),
            out: self.out.clone(),
            exec: self.exec.clone(),
            debounce: self.debounce,
            once: self.once,
        }
    }
}

/// What `vigil watch` needs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The agent's API.
    pub http: String,
    /// `KEY=VALUE` metadata filters, all required.
    pub filters: Vec<String>,
    /// Template file.
    pub template: PathBuf,
    /// Output file.
    pub out: PathBuf,
    /// Reload command, run after each change.
    pub exec: Option<String>,
    /// Quiet time before acting on a change.
    pub debounce: Duration,
    /// Render once and exit.
    pub once: bool,
}

/// The query for the healthy set.
pub(crate) fn query(filters: &[String]) -> Result<String, ClientError> {
    let mut q = String::from("/v1/members?state=alive&health=ok");
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ClientError(format!("filter `{f}`: expected KEY=VALUE")))?;
        q.push_str(&format!("&meta.{}={}", encode(k), encode(v)));
    }
    Ok(q)
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The template context for a member list from the API.
pub(crate) fn context(members: &[Value]) -> Value {
    let mut ms: Vec<Value> = members
        .iter()
        .map(|m| {
            let addr = m.get("addr").and_then(Value::as_str).unwrap_or("");
            let (host, gossip_port) = addr.rsplit_once(':').unwrap_or((addr, ""));
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = m.pointer("/meta/port").and_then(Value::as_str).unwrap_or(gossip_port);
            json!({
                "name": m.get("name"),
                "addr": addr,
                "host": host,
                "port": port,
                "meta": m.get("meta"),
                "health": m.get("health"),
            })
        })
        .collect();
    ms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({ "members": ms })
}

/// Renders `template` with the members.
pub(crate) fn render(template: &str, members: &[Value]) -> Result<String, ClientError> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_template("t", template).map_err(|e| ClientError(format!("template: {e}")))?;
    let t = env.get_template("t").map_err(|e| ClientError(format!("template: {e}")))?;
    t.render(context(members)).map_err(|e| ClientError(format!("template: {e}")))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), ClientError> {
    let tmp = path.with_extension("vigil-tmp");
    std::fs::write(&tmp, text).map_err(|e| ClientError(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| ClientError(format!("renaming to {}: {e}", path.display())))
}

fn reload(cmd: &str) {
    match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
        Ok(s) if s.success() => tracing::info!("reload command succeeded"),
        Ok(s) => tracing::warn!("reload command exited with {s}"),
        Err(e) => tracing::warn!("reload command could not run: {e}"),
    }
}

/// Renders now; returns whether the file changed.
fn apply(opts: &WatchOptions, template: &str, members: &[Value]) -> Result<bool, ClientError> {
    let text = render(template, members)?;
    if std::fs::read_to_string(&opts.out).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    write_atomically(&opts.out, &text)?;
    tracing::info!(out = %opts.out.display(), members = members.len(), "vigil watch: wrote the file");
    if let Some(cmd) = &opts.exec {
        reload(cmd);
    }
    Ok(true)
}

/// Runs until interrupted (or once).
pub fn run(opts: &WatchOptions) -> Result<(), ClientError> {
    let base = base_url(&opts.http);
    let path = query(&opts.filters)?;
    let template = std::fs::read_to_string(&opts.template)
        .map_err(|e| ClientError(format!("reading template {}: {e}", opts.template.display())))?;
    // Check the template before waiting on anything.
    render(&template, &[])?;
    let fetch = || -> Result<Vec<Value>, ClientError> {
        Ok(get(&base, &path)?.as_array().cloned().unwrap_or_default())
    };
    let first = fetch()?;
    apply(opts, &template, &first)?;
    if opts.once {
        return Ok(());
    }
    let mut current = render(&template, &first)?;
    tracing::info!(out = %opts.out.display(), debounce = ?opts.debounce, "vigil watch: watching");
    let poll = poll_interval(opts.debounce);
    // A rendering that differs from `current`, and since when it holds.
    let mut pending: Option<(String, Instant)> = None;
    loop {
        std::thread::sleep(poll);
        let latest = match fetch() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("vigil watch: {e}");
                continue;
            }
        };
        let text = render(&template, &latest)?;
        match &pending {
            _ if text == current => pending = None,
            Some((p, since)) if *p == text => {
                if since.elapsed() >= opts.debounce {
                    apply(opts, &template, &latest)?;
                    current = text;
                    pending = None;
                }
            }
            _ => {
                tracing::debug!("vigil watch: the rendering changed; waiting for it to settle");
                pending = Some((text, Instant::now()));
            }
        }
    }
}

/// Time between reads: a second, or less for a short debounce.
fn poll_interval(debounce: Duration) -> Duration {
    Duration::from_secs(1).min(debounce.max(Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_query_and_bad_ones_are_refused() {
        assert_eq!(query(&["role=web".into()]).unwrap(), "/v1/members?state=alive&health=ok&meta.role=web");
        assert_eq!(query(&["a b=c&d".into()]).unwrap(), "/v1/members?state=alive&health=ok&meta.a%20b=c%26d");
        assert!(query(&["role".into()]).is_err());
    }

    #[test]
    fn renders_an_nginx_upstream_with_ports_from_metadata() {
        let members = vec![
            json!({"name": "web2", "addr": "10.0.0.2:7950", "meta": {"role": "web", "port": "8080"}, "health": {"status": "ok", "reason": ""}}),
            json!({"name": "web1", "addr": "10.0.0.1:7950", "meta": {"role": "web"}, "health": {"status": "ok", "reason": ""}}),
        ];
        let t = "upstream web {\n{% for m in members %}  server {{ m.host }}:{{ m.port }};\n{% endfor %}}\n";
        assert_eq!(
            render(t, &members).unwrap(),
            "upstream web {\n  server 10.0.0.1:7950;\n  server 10.0.0.2:8080;\n}\n"
        );
        assert!(render("{% for %}", &members).unwrap_err().0.contains("template"));
    }
}
