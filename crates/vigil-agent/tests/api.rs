//! The HTTP API without a socket: `app()` driven with `oneshot`, over real
//! in-process members on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use vigil::{State, Vigil};
use vigil_agent::events::{EventJson, EventLog, HealthJson};
use vigil_agent::server::{AppState, app};

struct Fixture {
    a: Arc<Vigil>,
    b: Arc<Vigil>,
    state: AppState,
    log: Arc<EventLog>,
}

async fn fixture() -> Fixture {
    let local = vigil_proto::Config::local;
    let a = Vigil::start(vigil::Config::new("a", "127.0.0.1:0".parse().unwrap()).with_protocol(local()))
        .await
        .unwrap();
    let b = Vigil::start(
        vigil::Config::new("b", "127.0.0.1:0".parse().unwrap())
            .with_protocol(local())
            .with_meta(b"role=db\nzone=eu".to_vec()),
    )
    .await
    .unwrap();
    b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.member("b").is_none_or(|m| m.state != State::Alive) {
        assert!(Instant::now() < deadline, "a never saw b alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a, b) = (Arc::new(a), Arc::new(b));
    let log = Arc::new(EventLog::default());
    let state = AppState::new(a.clone(), log.clone(), 1_000_000, Duration::from_secs(1));
    Fixture { a, b, state, log }
}

impl Fixture {
    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn send(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.call(req).await
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

fn error_of(v: &Value) -> &str {
    v.get("error").and_then(Value::as_str).unwrap_or_else(|| panic!("no error message in {v}"))
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn members_have_the_documented_shape_and_filters_work() {
    let f = fixture().await;
    let (status, v) = f.get("/v1/members").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&v), vec!["a", "b"]);
    let b = &v[1];
    for key in ["name", "addr", "state", "incarnation", "meta", "health", "phi", "rtt_ms", "since_ms"] {
        assert!(b.get(key).is_some(), "`{key}` missing in {b}");
    }
    assert_eq!(b["state"], "alive");
    assert_eq!(b["meta"], serde_json::json!({"role": "db", "zone": "eu"}));
    assert_eq!(b["health"], serde_json::json!({"status": "ok", "reason": ""}));
    assert!(b["since_ms"].as_u64().unwrap() >= 1_000_000, "since_ms is Unix ms from the origin");
    assert!(b["incarnation"].as_u64().is_some() && b["phi"].as_f64().is_some());
    // Only the local member knows its own Lifeguard score: it shows it.
    assert_eq!(v[0]["local_health"].as_u64(), Some(0), "{}", v[0]);
    assert!(b.get("local_health").is_none(), "{b}");

    assert_eq!(names(&f.get("/v1/members?state=alive").await.1), vec!["a", "b"]);
    assert!(names(&f.get("/v1/members?state=dead").await.1).is_empty());
    assert_eq!(names(&f.get("/v1/members?health=ok").await.1), vec!["a", "b"]);
    assert_eq!(names(&f.get("/v1/members?meta.role=db").await.1), vec!["b"]);
    assert_eq!(names(&f.get("/v1/members?meta.role=db&meta.zone=us").await.1), Vec::<&str>::new());

    let (status, v) = f.get("/v1/members/b").await;
    assert_eq!((status, v["name"].as_str()), (StatusCode::OK, Some("b")));
    let (status, v) = f.get("/v1/self").await;
    assert_eq!((status, v["name"].as_str()), (StatusCode::OK, Some("a")));
    let (status, v) = f.get("/healthz").await;
    assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    f.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_with_a_message() {
    let f = fixture().await;
    let (status, v) = f.get("/v1/members/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("nobody"));
    let (status, v) = f.get("/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("/v1/nothing-here"));

    let (status, v) = f.get("/v1/members?state=zombie").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("zombie") && error_of(&v).contains("alive"), "{v}");
    let (status, v) = f.get("/v1/members?health=meh").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("meh"), "{v}");
    let (status, v) = f.get("/v1/members?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("unknown filter `colour`"), "{v}");

    let (status, v) = f.send("PUT", "/v1/self/health", r#"{"status":"great"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("great"), "{v}");
    let (status, v) = f.send("PUT", "/v1/self/health", r#"{"status": "ok""#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("bad JSON body"), "{v}");
    let (status, v) = f
        .send("PUT", "/v1/self/health", &format!(r#"{{"status":"failing","reason":"{}"}}"#, "r".repeat(200)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("reason"), "{v}");

    let big = format!(r#"{{"k":"{}"}}"#, "v".repeat(600));
    let (status, v) = f.send("PUT", "/v1/self/meta", &big).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("512"), "{v}");
    let (status, v) = f.send("PUT", "/v1/self/meta", r#"{"bad key":"x"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("bad key"), "{v}");

    let (status, v) = f.send("POST", "/v1/join", r#"{"addrs":[]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("addrs"), "{v}");
    let (status, v) = f.send("POST", "/v1/join", r#"{"adrs":["127.0.0.1:1"]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("adrs"), "{v}");

    let req = Request::get("/v1/events").header("last-event-id", "soon").body(Body::empty()).unwrap();
    let (status, v) = f.call(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("Last-Event-ID"), "{v}");
    f.stop().await;
}

#[tokio::test]
async fn health_and_meta_updates_are_published() {
    let f = fixture().await;
    let (status, v) = f.send("PUT", "/v1/self/health", r#"{"status":"degraded","reason":"disk 91%"}"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["health"], serde_json::json!({"status": "degraded", "reason": "disk 91%"}));
    let (status, v) = f.send("PUT", "/v1/self/meta", r#"{"role":"web","zone":"eu"}"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["meta"], serde_json::json!({"role": "web", "zone": "eu"}));
    // b learns both through gossip.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = f.b.member("a").unwrap();
        if seen.meta.as_bytes() == b"role=web\nzone=eu" && seen.health.reason() == "disk 91%" {
            break;
        }
        assert!(Instant::now() < deadline, "b never saw a's new meta and health: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, v) = f.get("/metrics").await;
    let text = v.as_str().unwrap();
    assert!(text.contains("vigil_members{state=\"alive\"} 2"), "{text}");
    assert!(text.contains("vigil_probes_total"), "{text}");
    f.stop().await;
}

fn event(n: u64) -> EventJson {
    EventJson {
        time_ms: n,
        kind: "joined",
        member: format!("m{n}"),
        addr: "127.0.0.1:1".into(),
        incarnation: n,
        state: "alive",
        meta: Default::default(),
        health: HealthJson { status: "ok", reason: String::new() },
        suspected_by: None,
        confirmations: None,
        suspicion_ms: None,
        declared_by: None,
        probe: None,
        cause: None,
        exit: None,
    }
}

#[tokio::test]
async fn the_event_stream_resumes_after_last_event_id() {
    let f = fixture().await;
    for n in 1..=3 {
        f.log.push(&event(n));
    }
    let req = Request::get("/v1/events").header("last-event-id", "1").body(Body::empty()).unwrap();
    let resp = app(f.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !text.contains("id: 4") {
        if text.contains("id: 3") && !text.contains("m4") {
            f.log.push(&event(4)); // a live one after the replayed ones
        }
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("stream stalled");
        let frame = frame.expect("stream ended").unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(!text.contains("id: 1\n"), "{text}");
    let (i2, i3, i4) =
        (text.find("id: 2").unwrap(), text.find("id: 3").unwrap(), text.find("id: 4").unwrap());
    assert!(i2 < i3 && i3 < i4, "{text}");
    assert!(text.contains(r#"data: {"time_ms":2,"kind":"joined","member":"m2""#), "{text}");
    f.stop().await;
}
