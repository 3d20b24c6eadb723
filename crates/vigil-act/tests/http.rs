//! HTTP checks and webhooks against a local server on 127.0.0.1, over plain
//! HTTP and over TLS with a certificate from a private CA (generated here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil::HealthStatus;
use vigil_act::checks::{Check, CheckKind, run_once};
use vigil_act::handlers::{Action, Handler, HandlerEvent, run};

/// One request as the server read it.
#[derive(Debug)]
struct Request {
    /// Request line and headers, as sent.
    head: String,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A server that answers one connection per status in `statuses`, then
/// stops; it gives up after 20 s without a connection.
struct Server {
    addr: SocketAddr,
    requests: mpsc::Receiver<Request>,
}

impl Server {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, statuses: &[u16]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::channel();
        let statuses = statuses.to_vec();
        std::thread::spawn(move || {
            for code in statuses {
                let Some(tcp) = accept(&listener, Duration::from_secs(20)) else { return };
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let served = match &tls {
                    None => serve(tcp, code),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                        serve(rustls::StreamOwned::new(conn, tcp), code)
                    }
                };
                // A client that gave up (a refused certificate) sends no request.
                if let Some(r) = served {
                    let _ = tx.send(r);
                }
            }
        });
        Server { addr, requests }
    }

    fn request(&self) -> Request {
        self.requests.recv_timeout(Duration::from_secs(10)).expect("a request")
    }
}

fn accept(listener: &TcpListener, limit: Duration) -> Option<std::net::TcpStream> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match listener.accept() {
            Ok((s, _)) => return Some(s),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

fn serve(stream: impl Read + Write, code: u16) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut req = Request { head, body: String::new() };
    let len: usize = req.header("content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    req.body = String::from_utf8(body).unwrap();
    let mut s = r.into_inner();
    write!(s, "HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    s.flush().ok()?;
    Some(req)
}

/// A private CA and a server certificate for 127.0.0.1 and localhost signed
/// by it; returns the server's TLS config and the CA certificate's PEM file.
fn tls_server(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (Arc::new(config), ca_file)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-act-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check(url: String, ca_file: Option<PathBuf>) -> Check {
    Check {
        name: "c".into(),
        kind: CheckKind::Http(url),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        threshold: 1,
        ca_file,
    }
}

fn webhook(url: String, ca_file: Option<PathBuf>, retries: u32) -> Handler {
    Handler {
        name: "h".into(),
        action: Action::Webhook(url),
        kinds: vec!["failed".into()],
        meta: Default::default(),
        timeout: Duration::from_secs(5),
        retries,
        ca_file,
    }
}

fn event() -> HandlerEvent {
    HandlerEvent {
        kind: "failed".into(),
        member: "db1".into(),
        addr: "10.0.0.1:7950".into(),
        meta: Default::default(),
        json: "{\"kind\":\"failed\",\"member\":\"db1\"}".into(),
        env: Vec::new(),
    }
}

#[tokio::test]
async fn http_checks_read_the_status_and_send_the_port_in_the_host_header() {
    let server = Server::start(None, &[200, 503]);
    let url = format!("http://{}/health", server.addr);
    assert_eq!(run_once(&check(url.clone(), None)).await.status, HealthStatus::Ok);
    let req = server.request();
    assert!(req.head.starts_with("GET /health HTTP/1.1\r\n"), "{}", req.head);
    assert_eq!(req.header("host"), Some(server.addr.to_string().as_str()), "{}", req.head);
    let o = run_once(&check(url, None)).await;
    assert_eq!((o.status, o.detail.as_str()), (HealthStatus::Failing, "HTTP 503"));
}

#[tokio::test]
async fn webhooks_are_retried_with_backoff() {
    let server = Server::start(None, &[500, 204]);
    run(&webhook(format!("http://{}/hook", server.addr), None, 2), &event()).await.unwrap();
    let (first, second) = (server.request(), server.request());
    assert!(first.head.starts_with("POST /hook HTTP/1.1\r\n"), "one failure, then success");
    assert!(second.head.starts_with("POST /hook HTTP/1.1\r\n"), "{}", second.head);
    assert_eq!(second.body, "{\"kind\":\"failed\",\"member\":\"db1\"}");
    assert_eq!(second.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn https_webhooks_and_checks_trust_the_configured_ca() {
    let dir = temp_dir("https");
    let (tls, ca_file) = tls_server(&dir);
    let server = Server::start(Some(tls), &[204, 200, 200]);
    let port = server.addr.port();

    run(&webhook(format!("https://localhost:{port}/hook"), Some(ca_file.clone()), 0), &event())
        .await
        .unwrap();
    let req = server.request();
    assert!(req.head.starts_with("POST /hook HTTP/1.1\r\n"), "{}", req.head);
    assert_eq!(req.header("host"), Some(format!("localhost:{port}").as_str()));
    assert_eq!(req.body, "{\"kind\":\"failed\",\"member\":\"db1\"}");

    let o = run_once(&check(format!("https://127.0.0.1:{port}/health"), Some(ca_file))).await;
    assert_eq!((o.status, o.detail.as_str()), (HealthStatus::Ok, "HTTP 200"));
    assert!(server.request().head.starts_with("GET /health HTTP/1.1\r\n"));

    // Without the CA, the bundled roots do not vouch for this server.
    let o = run_once(&check(format!("https://127.0.0.1:{port}/health"), None)).await;
    assert_eq!(o.status, HealthStatus::Failing);
    assert!(o.detail.to_lowercase().contains("certificate"), "{}", o.detail);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unreachable_or_silent_server_fails_within_the_timeout() {
    // A port held by a socket that does not listen: refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let o = run_once(&check(format!("http://{}/", held.local_addr().unwrap()), None)).await;
    assert_eq!(o.status, HealthStatus::Failing);

    // A server that accepts but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = check(format!("http://{}/", silent.local_addr().unwrap()), None);
    c.timeout = Duration::from_millis(200);
    let o = run_once(&c).await;
    assert_eq!(o.status, HealthStatus::Failing);
    assert!(o.detail.contains("timed out"), "{}", o.detail);
}
