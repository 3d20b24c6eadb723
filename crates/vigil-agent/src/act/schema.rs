//! The TOML tables of checks, handlers and failover (`[[check]]`,
//! `[[handler]]`, `[failover]`), their defaults, and their validation into
//! one checked [`ActConfig`]. Errors name the key (`check.timeout`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use vigil_act::checks::{Check, CheckKind};
use vigil_act::failover::{GROUP_KEY, Quorum};
use vigil_act::handlers::{Action, Handler};

/// A value of a `[[check]]`, `[[handler]]` or `[failover]` table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
pub struct Invalid {
    /// The key, as in the config file (`check.timeout`).
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

/// Event kinds a handler may ask for.
pub const KINDS: [&str; 6] = ["joined", "suspected", "recovered", "failed", "left", "updated"];
/// Default time between runs of a check.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Default longest run of a check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest run of a handler (each webhook attempt).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default further attempts of a failed webhook.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
/// Default time an answer must hold before the member changes its role.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(2);
/// Default longest run of `on_promote` / `on_demote`.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn humantime_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
}

/// A `[[check]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Name, shown in the health reason.
    pub name: Option<String>,
    /// `sh -c` command: exit 0 ok, 1 degraded, else failing.
    pub script: Option<String>,
    /// `http://` or `https://` URL: 2xx ok.
    pub http: Option<String>,
    /// `host:port`: a TCP connect.
    pub tcp: Option<String>,
    /// Time between runs [default: 10s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub interval: Option<Duration>,
    /// Longest run [default: 5s, or the interval if shorter]; runs never overlap.
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
    /// Consecutive agreeing results before the status changes [default: 1].
    pub threshold: Option<u32>,
    /// HTTP checks: PEM file of the CA certificates trusted for `https://`
    /// instead of the bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// A `[[handler]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerFile {
    /// Name, for logs and counters.
    pub name: Option<String>,
    /// Event kinds [default: all].
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Metadata the member must carry [default: any].
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// `sh -c` command; the event JSON on stdin, `VIGIL_*` variables.
    pub script: Option<String>,
    /// `http://` or `https://` URL the event JSON is POSTed to.
    pub webhook: Option<String>,
    /// Longest run (each webhook attempt) [default: 30s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
    /// Webhooks only: further attempts, backoff doubling from 500 ms [default: 3].
    pub retries: Option<u32>,
    /// Webhooks only: PEM file of the CA certificates trusted for `https://`
    /// instead of the bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// The `[failover]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverFile {
    /// Run when this member becomes the group's active member.
    pub on_promote: Option<String>,
    /// Run when it stops being active (and on a graceful stop while active).
    pub on_demote: Option<String>,
    /// How long an answer must hold before acting on it [default: 2s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub hold: Option<Duration>,
    /// `group` (majority of the group's members) or `cluster` [default: group].
    pub quorum: Option<String>,
    /// Longest run of each script [default: 60s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
}

/// Failover settings, checked.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// The member's group (its `group` metadata).
    pub group: String,
    /// `on_promote` script.
    pub on_promote: Option<String>,
    /// `on_demote` script.
    pub on_demote: Option<String>,
    /// Hold time.
    pub hold: Duration,
    /// Whose majority it must see.
    pub quorum: Quorum,
    /// Longest run of each script.
    pub timeout: Duration,
}

/// Checks, handlers and failover, checked.
#[derive(Debug, Clone, Default)]
pub struct ActConfig {
    /// Health checks.
    pub checks: Vec<Check>,
    /// Event handlers.
    pub handlers: Vec<Handler>,
    /// Failover, when `[failover]` is present.
    pub failover: Option<FailoverConfig>,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { key, reason: reason.into() }
}

fn positive(key: &'static str, who: &str, d: Duration) -> Result<Duration, Invalid> {
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(invalid(key, format!("{who}: must be between 1ms and 1h")));
    }
    Ok(d)
}

/// A `ca_file` that holds at least one PEM certificate.
fn ca_file(key: &'static str, who: &str, path: &std::path::Path) -> Result<PathBuf, Invalid> {
    vigil_act::http::validate_ca_file(path).map_err(|e| invalid(key, format!("{who}: {e}")))?;
    Ok(path.to_path_buf())
}

impl ActConfig {
    /// Checks the file's tables; `meta` is the member's own metadata (the
    /// failover group comes from it). Errors name the key (`check.timeout`).
    pub fn from_file(
        checks: &[CheckFile],
        handlers: &[HandlerFile],
        failover: Option<&FailoverFile>,
        meta: &BTreeMap<String, String>,
    ) -> Result<ActConfig, Invalid> {
        let mut out = ActConfig::default();
        for (i, c) in checks.iter().enumerate() {
            let name = match &c.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => return Err(invalid("check.name", format!("check #{}: a name is required", i + 1))),
            };
            if out.checks.iter().any(|x: &Check| x.name == name) {
                return Err(invalid("check.name", format!("`{name}` is used twice")));
            }
            let who = format!("check `{name}`");
            let kind = match (&c.script, &c.http, &c.tcp) {
                (Some(s), None, None) => CheckKind::Script(s.clone()),
                (None, Some(u), None) => CheckKind::Http(u.clone()),
                (None, None, Some(a)) => CheckKind::Tcp(a.clone()),
                _ => return Err(invalid("check", format!("{who}: set exactly one of script, http, tcp"))),
            };
            let key = match kind {
                CheckKind::Http(_) => "check.http",
                CheckKind::Tcp(_) => "check.tcp",
                _ => "check.script",
            };
            vigil_act::checks::validate(&kind).map_err(|e| invalid(key, format!("{who}: {e}")))?;
            let interval = positive("check.interval", &who, c.interval.unwrap_or(DEFAULT_CHECK_INTERVAL))?;
            let timeout =
                positive("check.timeout", &who, c.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT.min(interval)))?;
            let threshold = c.threshold.unwrap_or(1);
            if !(1..=100).contains(&threshold) {
                return Err(invalid("check.threshold", format!("{who}: must be between 1 and 100")));
            }
            let ca_file = match (&kind, &c.ca_file) {
                (CheckKind::Http(_), Some(f)) => Some(ca_file("check.ca_file", &who, f)?),
                (_, Some(_)) => {
                    return Err(invalid("check.ca_file", format!("{who}: only http checks use it")));
                }
                (_, None) => None,
            };
            out.checks.push(Check { name, kind, interval, timeout, threshold, ca_file });
        }
        for (i, h) in handlers.iter().enumerate() {
            let name = match &h.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => return Err(invalid("handler.name", format!("handler #{}: a name is required", i + 1))),
            };
            if out.handlers.iter().any(|x: &Handler| x.name == name) {
                return Err(invalid("handler.name", format!("`{name}` is used twice")));
            }
            let who = format!("handler `{name}`");
            if let Some(k) = h.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(invalid(
                    "handler.kinds",
                    format!("{who}: unknown kind `{k}`, expected {KINDS:?}"),
                ));
            }
            let action = match (&h.script, &h.webhook) {
                (Some(s), None) if !s.trim().is_empty() => Action::Script(s.clone()),
                (None, Some(u)) => {
                    vigil_act::http::validate_url(u)
                        .map_err(|e| invalid("handler.webhook", format!("{who}: {e}")))?;
                    Action::Webhook(u.clone())
                }
                _ => return Err(invalid("handler", format!("{who}: set exactly one of script, webhook"))),
            };
            let retries = match (&action, h.retries) {
                (Action::Script(_), Some(_)) => {
                    return Err(invalid("handler.retries", format!("{who}: only webhooks are retried")));
                }
                (_, Some(r)) if r > 10 => {
                    return Err(invalid("handler.retries", format!("{who}: at most 10")));
                }
                (Action::Webhook(_), r) => r.unwrap_or(DEFAULT_WEBHOOK_RETRIES),
                _ => 0,
            };
            let timeout = positive("handler.timeout", &who, h.timeout.unwrap_or(DEFAULT_HANDLER_TIMEOUT))?;
            let ca_file = match (&action, &h.ca_file) {
                (Action::Webhook(_), Some(f)) => Some(ca_file("handler.ca_file", &who, f)?),
                (_, Some(_)) => {
                    return Err(invalid("handler.ca_file", format!("{who}: only webhooks use it")));
                }
                (_, None) => None,
            };
            out.handlers.push(Handler {
                name,
                action,
                kinds: h.kinds.clone(),
                meta: h.meta.clone(),
                timeout,
                retries,
                ca_file,
            });
        }
        if let Some(f) = failover {
            let group = meta.get(GROUP_KEY).filter(|g| !g.is_empty()).ok_or_else(|| {
                invalid(
                    "failover",
                    "the member has no `group` metadata: add --meta group=NAME (and priority=N)",
                )
            })?;
            if let Some(p) = meta.get(vigil_act::failover::PRIORITY_KEY)
                && p.trim().parse::<i64>().is_err()
            {
                return Err(invalid("meta", format!("priority `{p}` is not an integer")));
            }
            let quorum = match f.quorum.as_deref() {
                None | Some("group") => Quorum::Group,
                Some("cluster") => Quorum::Cluster,
                Some(q) => {
                    return Err(invalid("failover.quorum", format!("`{q}`: expected group or cluster")));
                }
            };
            let hold = f.hold.unwrap_or(DEFAULT_HOLD);
            if hold > Duration::from_secs(3600) {
                return Err(invalid("failover.hold", "at most 1h"));
            }
            out.failover = Some(FailoverConfig {
                group: group.clone(),
                on_promote: f.on_promote.clone().filter(|s| !s.trim().is_empty()),
                on_demote: f.on_demote.clone().filter(|s| !s.trim().is_empty()),
                hold,
                quorum,
                timeout: positive(
                    "failover.timeout",
                    "failover",
                    f.timeout.unwrap_or(DEFAULT_SCRIPT_TIMEOUT),
                )?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, meta: &[(&str, &str)]) -> Result<ActConfig, String> {
        let file = crate::config::parse_file(text)?;
        let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ActConfig::from_file(&file.check, &file.handler, file.failover.as_ref(), &meta)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn checks_handlers_and_failover_parse_with_defaults() {
        let c = parse(
            "[[check]]\nname = \"web\"\nhttp = \"http://127.0.0.1:8080/h\"\ninterval = \"2s\"\nthreshold = 3\n\
             [[handler]]\nname = \"hook\"\nkinds = [\"failed\"]\nmeta = { role = \"db\" }\nwebhook = \"http://127.0.0.1:9/x\"\n\
             [failover]\non_promote = \"promote.sh\"\nquorum = \"cluster\"\n",
            &[("group", "db"), ("priority", "100")],
        )
        .unwrap();
        assert_eq!(c.checks[0].timeout, Duration::from_secs(2), "timeout defaults to at most the interval");
        assert_eq!(c.checks[0].threshold, 3);
        assert_eq!(c.handlers[0].retries, DEFAULT_WEBHOOK_RETRIES);
        assert_eq!(c.handlers[0].meta.get("role").map(String::as_str), Some("db"));
        let f = c.failover.unwrap();
        assert_eq!((f.group.as_str(), f.hold, f.quorum), ("db", DEFAULT_HOLD, Quorum::Cluster));
    }

    #[test]
    fn bad_tables_are_refused_by_key() {
        let bad = |t: &str| parse(t, &[]).unwrap_err();
        assert!(bad("[[check]]\nname = \"a\"\n").contains("`check`"));
        assert!(bad("[[check]]\nname = \"a\"\nscript = \"true\"\ntcp = \"h:1\"\n").contains("exactly one"));
        assert!(bad("[[check]]\nscript = \"true\"\n").contains("`check.name`"));
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\ninterval = \"soon\"\n").contains("interval")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\ntimeout = \"0s\"\n").contains("`check.timeout`")
        );
        assert!(bad("[[check]]\nname = \"a\"\nhttp = \"ftp://x\"\n").contains("`check.http`"));
        assert!(
            bad("[[check]]\nname = \"a\"\nhttp = \"https://x\"\nca_file = \"/nonexistent/ca.pem\"\n")
                .contains("`check.ca_file`")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\ntcp = \"h:1\"\nca_file = \"/etc/hostname\"\n")
                .contains("only http checks")
        );
        assert!(
            bad("[[handler]]\nname = \"h\"\nscript = \"true\"\nca_file = \"/etc/hostname\"\n")
                .contains("`handler.ca_file`")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\nthreshold = 0\n").contains("`check.threshold`")
        );
        assert!(bad("[[check]]\nname = \"a\"\nscript = \"true\"\ncolour = 1\n").contains("colour"));
        assert!(
            bad("[[handler]]\nname = \"h\"\nkinds = [\"exploded\"]\nscript = \"true\"\n")
                .contains("`handler.kinds`")
        );
        assert!(
            bad("[[handler]]\nname = \"h\"\nscript = \"true\"\nretries = 2\n").contains("`handler.retries`")
        );
        assert!(bad("[[handler]]\nname = \"h\"\n").contains("`handler`"));
        assert!(bad("[failover]\non_promote = \"x\"\n").contains("`failover`"));
        let e = parse("[failover]\nquorum = \"most\"\n", &[("group", "db")]).unwrap_err();
        assert!(e.contains("`failover.quorum`"), "{e}");
        let e = parse("[failover]\n", &[("group", "db"), ("priority", "high")]).unwrap_err();
        assert!(e.contains("priority"), "{e}");
    }
}
