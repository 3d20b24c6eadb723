//! Blocking HTTP calls to an agent's API (ureq): JSON in, JSON out, the
//! agent's `{"error": ...}` turned into a [`ClientError`] that says what
//! happened.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

/// Where the client subcommands find the agent.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The agent's HTTP API address (IP:PORT or http://HOST:PORT).
    #[arg(long, env = "VIGIL_HTTP", default_value = "127.0.0.1:7951")]
    pub http: String,
}

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

/// An HTTP agent that returns error statuses as responses; `timeout` bounds
/// the whole call (none: unbounded, for event streams).
pub(crate) fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into()
}

pub(crate) fn unreachable(url: &str, e: &ureq::Error) -> ClientError {
    ClientError(format!(
        "cannot reach the agent at {url}: {e} (is `vigil agent` running there? choose with --http)"
    ))
}

pub(crate) fn reply(
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
    get_within(base, path, Duration::from_secs(10))
}

/// `GET base/path` as JSON, the whole call bounded by `timeout`.
pub fn get_within(base: &str, path: &str, timeout: Duration) -> Result<Value, ClientError> {
    let url = format!("{base}{path}");
    reply(&url, agent(Some(timeout)).get(&url).call())
}

/// `GET base/path` as text (for `/metrics`).
pub fn get_text(base: &str, path: &str) -> Result<String, ClientError> {
    let url = format!("{base}{path}");
    let mut resp =
        agent(Some(Duration::from_secs(10))).get(&url).call().map_err(|e| unreachable(&url, &e))?;
    resp.body_mut().read_to_string().map_err(|e| unreachable(&url, &e))
}

/// `POST` or `PUT` a JSON body (`DELETE`: no body).
pub fn send(method: &str, base: &str, path: &str, body: &Value) -> Result<Value, ClientError> {
    let url = format!("{base}{path}");
    let a = agent(Some(Duration::from_secs(30)));
    let token = token_from_env()?;
    let auth = token.as_deref().map(|t| format!("Bearer {t}"));
    let result = match (method, auth) {
        ("PUT", Some(auth)) => a.put(&url).header("Authorization", auth.as_str()).send_json(body),
        ("PUT", None) => a.put(&url).send_json(body),
        // No body, but every call that changes the agent says JSON (the API
        // refuses other content types before it acts).
        ("DELETE", Some(auth)) => a
            .delete(&url)
            .header("Content-Type", "application/json")
            .header("Authorization", auth.as_str())
            .call(),
        ("DELETE", None) => a.delete(&url).header("Content-Type", "application/json").call(),
        (_, Some(auth)) => a.post(&url).header("Authorization", auth.as_str()).send_json(body),
        (_, None) => a.post(&url).send_json(body),
    };
    reply(&url, result)
}

/// The API token for mutating calls, from the file named by
/// `VIGIL_HTTP_TOKEN_FILE` (the same file the agent reads), if set.
fn token_from_env() -> Result<Option<String>, ClientError> {
    match std::env::var_os("VIGIL_HTTP_TOKEN_FILE") {
        Some(p) => crate::secrets::read_secret(std::path::Path::new(&p), "token file")
            .map(|t| Some(t.trim().to_string()))
            .map_err(ClientError),
        None => Ok(None),
    }
}
