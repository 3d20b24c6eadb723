//! The agent's security surface: the API token, key operations through the
//! API and the `vigil keys` command, the dashboard and `/v1/self` warnings.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil::{Key, Keyring, State, Vigil};
use vigil_agent::events::EventLog;
use vigil_agent::server::{AppState, app};

const EXE: &str = env!("CARGO_BIN_EXE_vigil");

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

async fn member(name: &str, key: Option<&Key>) -> Arc<Vigil> {
    let mut c =
        vigil::Config::new(name, "127.0.0.1:0".parse().unwrap()).with_protocol(vigil_proto::Config::local());
    if let Some(k) = key {
        c = c.with_keyring(Keyring::new(k.clone(), "test"));
    }
    Arc::new(Vigil::start(c).await.unwrap())
}

fn state(v: Arc<Vigil>, token: Option<&str>, plaintext: bool) -> AppState {
    AppState::new(v, Arc::new(EventLog::default()), 0, Duration::from_secs(1))
        .with_security(token.map(str::to_string), plaintext)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_need_the_token_when_the_agent_has_one() {
    let v = member("a", Some(&Key::generate())).await;
    let s = state(v.clone(), Some("0123456789abcdef-token"), false);
    let body = || Body::from(json!({"status": "degraded", "reason": "x"}).to_string());
    let put = |auth: Option<&str>| {
        let mut r = Request::put("/v1/self/health").header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(body()).unwrap()
    };
    let (status, v1, _) = call(&s, put(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v1["error"].as_str().unwrap().contains("Bearer"), "{v1}");
    assert_eq!(call(&s, put(Some("Bearer wrong"))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&s, put(Some("Bearer 0123456789abcdef-token"))).await.0, StatusCode::OK);
    // Reading needs no token.
    assert_eq!(call(&s, Request::get("/v1/members").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
    v.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_shows_encryption_and_the_dashboard_is_served() {
    let v = member("p", None).await;
    let s = state(v.clone(), None, true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, me, _) = call(&s, Request::get("/v1/self").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["encrypted"], false);
    assert!(me["warnings"][0].as_str().unwrap().contains("not encrypted"), "{me}");
    assert!(me["local_health"].is_u64() && me["bytes_out"].is_u64(), "{me}");
    let (status, _, html) = call(&s, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>vigil</title>") && html.contains("/assets/app.js"));
    let (status, _, js) = call(&s, Request::get("/assets/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("EventSource(\"/v1/events\")") && js.contains("\"membership\""));
    assert_eq!(
        call(&s, Request::get("/assets/nope.js").body(Body::empty()).unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
    v.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_operations_through_the_api_reach_every_member_and_bad_keys_are_refused() {
    let old = Key::generate();
    let (a, b) = (member("ka", Some(&old)).await, member("kb", Some(&old)).await);
    b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.member("kb").is_none_or(|m| m.state != State::Alive) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = state(a.clone(), None, false);
    let post = |op: &str, body: Value| {
        Request::post(format!("/v1/keys/{op}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let new = Key::generate();
    let (status, r, _) = call(&s, post("install", json!({"key": new.to_base64()}))).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["applied"], json!(["ka", "kb"]));
    assert_eq!(b.keys().await.unwrap().unwrap().len(), 2, "b installed it");
    let (status, r, _) = call(&s, post("remove", json!({"key": old.to_base64()}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the primary cannot be removed: {r}");
    assert!(r["error"].as_str().unwrap().contains("primary"));
    let (status, r, _) = call(&s, post("install", json!({"key": "short"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(r["error"].as_str().unwrap().starts_with("key:"), "{r}");
    assert_eq!(call(&s, post("rotate", json!({"key": new.to_base64()}))).await.0, StatusCode::NOT_FOUND);
    let (_, list, _) = call(&s, Request::get("/v1/keys").body(Body::empty()).unwrap()).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn keygen_prints_a_key_the_agent_accepts() {
    let out = Command::new(EXE).arg("keygen").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    Key::from_base64(text.trim()).expect("a valid key");
    let man = Command::new(EXE).arg("man").output().unwrap();
    assert!(man.status.success() && String::from_utf8_lossy(&man.stdout).contains(".TH vigil"));
    let comp = Command::new(EXE).args(["completions", "bash"]).output().unwrap();
    assert!(comp.status.success() && String::from_utf8_lossy(&comp.stdout).contains("vigil"));
}
