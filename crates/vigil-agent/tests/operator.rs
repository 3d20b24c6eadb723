//! An operator's paths around the core, with real agent processes on
//! 127.0.0.1: the metrics a failure and a return leave (and that the text
//! parses as OpenMetrics). Every agent is killed when its cluster guard
//! drops; every wait is bounded.

mod support;

use std::time::Duration;

use support::openmetrics::{self, Family};
use support::{converged, observers, wait_until};
use vigil_agent::harness::Cluster;

/// Waits until every running agent but `victim` shows it in `state`.
fn wait_state(c: &mut Cluster, victim: usize, state: &str, within: Duration) {
    let others: Vec<usize> = c.answering().into_iter().filter(|&i| i != victim).collect();
    if let Err(e) = c.wait_state(&others, &[victim], state, within) {
        panic!("not every agent shows {} {state}: {e}", c.name(victim));
    }
}

/// Agent `i`'s `/metrics`, checked as OpenMetrics.
fn scrape(c: &Cluster, i: usize) -> std::collections::BTreeMap<String, Family> {
    let text = vigil_agent::client::get_text(&c.url(i), "/metrics").unwrap();
    openmetrics::parse(&text)
        .unwrap_or_else(|e| panic!("{}'s /metrics is not OpenMetrics: {e}\n{text}", c.name(i)))
}

/// The value of sample `name` whose labels include `labels`, if any.
fn sample(
    families: &std::collections::BTreeMap<String, Family>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families.values().flat_map(|f| &f.samples).find_map(|(n, l, v)| {
        (n == name && labels.iter().all(|(k, x)| l.iter().any(|(lk, lv)| lk == k && lv == x))).then_some(*v)
    })
}

#[test]
fn a_failed_member_back_alive_is_one_flap_its_suspicion_is_timed_and_every_scrape_parses() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("n1.toml");
    std::fs::write(
        &conf,
        "[meta]\ngroup = \"db\"\n\n[[check]]\nname = \"fine\"\nscript = \"exit 0\"\ninterval = \"200ms\"\n\n\
         [[check]]\nname = \"slow\"\nscript = \"exit 1\"\ninterval = \"200ms\"\n\n[failover]\nhold = \"200ms\"\n",
    )
    .unwrap();
    let mut c = support::cluster(&dir.path().join("agents"));
    let mut spec = c.new_spec("n1").unwrap();
    spec.args = vec!["--config".into(), conf.into()];
    let n1 = c.add(spec).unwrap();
    c.add_agent("n2", &[n1]).unwrap();
    c.add_agent("n3", &[n1]).unwrap();
    converged(&mut c);
    let events = c.events().cursor();

    // Silent first (stopped: no evidence, only silence), so that the others
    // suspect it until they declare it failed; then killed, and restarted.
    c.pause(2).unwrap();
    wait_state(&mut c, 2, "dead", Duration::from_secs(20));
    c.kill(2);
    c.start(2).unwrap();
    wait_state(&mut c, 2, "alive", Duration::from_secs(15));
    let seen = events.wait_for(Duration::from_secs(5), |s| observers(s, "joined", "n3").len() == 2);
    assert!(seen.is_ok(), "both survivors print n3 `joined` again");

    let mut failed_suspicions = 0.0;
    for i in [0, 1] {
        let m = scrape(&c, i);
        assert_eq!(sample(&m, "vigil_member_flaps_total", &[]), Some(1.0), "{}: one flap", c.name(i));
        failed_suspicions +=
            sample(&m, "vigil_suspicion_duration_seconds_count", &[("outcome", "failed")]).unwrap();
        assert!(sample(&m, "vigil_suspicion_duration_seconds_count", &[("outcome", "refuted")]).is_some());
        assert!(sample(&m, "vigil_probe_rtt_seconds_count", &[]).unwrap() > 0.0, "{}", c.name(i));
    }
    assert!(failed_suspicions >= 1.0, "a survivor timed its suspicion of n3 until it failed");

    // n1's checks and its failover role (alone in group db: active).
    wait_until("n1 shows its checks and its role", Duration::from_secs(10), || {
        let m = scrape(&c, 0);
        sample(&m, "vigil_check_status", &[("check", "slow")]) == Some(0.0)
            && sample(&m, "vigil_check_status", &[("check", "fine")]) == Some(1.0)
            && sample(&m, "vigil_failover_role", &[("group", "db"), ("role", "active")]) == Some(1.0)
            && sample(&m, "vigil_failover_role", &[("group", "db"), ("role", "standby")]) == Some(0.0)
    });
    let m = scrape(&c, 1);
    assert!(
        sample(&m, "vigil_check_status", &[]).is_none() && sample(&m, "vigil_failover_role", &[]).is_none()
    );
}

#[test]
fn the_openmetrics_reader_refuses_what_a_scraper_would() {
    let ok = "# TYPE a counter\na_total 1\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\n\
              h_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3.5\n# EOF\n";
    assert_eq!(openmetrics::parse(ok).map(|f| f.len()), Ok(2));
    for bad in [
        ok.trim_end_matches("# EOF\n"),
        &ok.replace("a_total", "b_total"),
        &ok.replace("h_count 2", "h_count 3"),
        &ok.replace("le=\"1.0\"} 1", "le=\"1.0\"} 3"),
        &ok.replace("a_total 1", "a_total x"),
        &ok.replace("a_total 1", "a_total{k=\"v} 1"),
        &ok.replace("# EOF\n", "# TYPE a counter\n# EOF\n"),
    ] {
        assert!(openmetrics::parse(bad).is_err(), "accepted:\n{bad}");
    }
}
