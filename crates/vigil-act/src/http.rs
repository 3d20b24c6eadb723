//! The one HTTP client of HTTP checks and webhooks: `ureq` (HTTP/1.1 with a
//! real response parser) over TCP or TLS (rustls with the ring provider), run
//! on tokio's blocking pool.
//!
//! - `http://` and `https://` URLs; the `Host` header carries the port when
//!   the URL has one.
//! - Server certificates are checked against Mozilla's roots (bundled), or
//!   only against the certificates of a `ca_file` (PEM) when one is given: a
//!   private CA, or a self-signed service.
//! - Every request ends within the client's timeout (connect, TLS, send and
//!   answer together), so an abandoned request never holds a thread longer.
//! - A fresh connection per request, no redirects followed (a 3xx is an
//!   answer like any other), no proxy from the environment: a check sees the
//!   service itself.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

/// An HTTP client with one timeout and one set of trusted roots; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    agent: ureq::Agent,
}

impl HttpClient {
    /// A client whose requests end within `timeout`. With `ca_file`, server
    /// certificates must chain to one of the PEM certificates in it instead
    /// of the bundled roots. Errors name the file and what is wrong with it.
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<HttpClient, String> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = ca_file {
            tls = tls.root_certs(load_ca(path)?);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .max_idle_connections(0)
            .proxy(None)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(HttpClient { agent })
    }

    /// `GET url`; the status code of the answer.
    pub async fn get(&self, url: &str) -> Result<u16, String> {
        let (agent, url) = (self.agent.clone(), url.to_string());
        blocking(move || agent.get(&url).call()).await
    }

    /// `POST url` with a JSON body; the status code of the answer.
    pub async fn post_json(&self, url: &str, body: &str) -> Result<u16, String> {
        let (agent, url, body) = (self.agent.clone(), url.to_string(), body.to_string());
        blocking(move || agent.post(&url).content_type("application/json").send(body.as_str())).await
    }
}

async fn blocking(
    request: impl FnOnce() -> Result<ureq::http::Response<ureq::Body>, ureq::Error> + Send + 'static,
) -> Result<u16, String> {
    match tokio::task::spawn_blocking(request).await {
        Ok(Ok(response)) => Ok(response.status().as_u16()),
        Ok(Err(e)) => Err(describe(e)),
        Err(e) => Err(format!("request task failed: {e}")),
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::Io(e) => format!("connect: {e}"),
        e => e.to_string(),
    }
}

/// Reads the certificates of a PEM file.
fn load_ca(path: &Path) -> Result<RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("ca_file {}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("ca_file {}: no PEM certificate in it", path.display()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// Checks that `path` is a readable PEM file with at least one certificate.
pub fn validate_ca_file(path: &Path) -> Result<(), String> {
    load_ca(path).map(|_| ())
}

/// Checks that `url` is an `http://` or `https://` URL with a host.
pub fn validate_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url}: only http:// and https:// URLs are supported")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("{url}: no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        assert!(validate_url("http://127.0.0.1:8080/health").is_ok());
        assert!(validate_url("https://hooks.example.com/x").is_ok());
        assert!(validate_url("ftp://x/y").is_err());
        assert!(validate_url("http:///path").is_err());
        assert!(validate_url("127.0.0.1:80").is_err());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(HttpClient::new(Duration::from_secs(1), Some(missing)).unwrap_err().contains("ca.pem"));
        let dir = std::env::temp_dir().join(format!("vigil-act-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = HttpClient::new(Duration::from_secs(1), Some(&empty)).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
