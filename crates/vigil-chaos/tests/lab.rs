//! The namespace plumbing on its own (root only: skipped otherwise, saying
//! why, except under CI (`CI` set), where it fails; `VIGIL_CHAOS_SKIP=1` skips).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use vigil_chaos::net::{self, Lab};
use vigil_chaos::nft::Rule;
use vigil_chaos::{Error, nft};

fn root_or_skip() -> bool {
    if std::env::var("VIGIL_CHAOS_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("vigil-chaos: SKIPPED namespace tests (VIGIL_CHAOS_SKIP=1)");
        return false;
    }
    if let Err(e) = net::preflight() {
        if std::env::var_os("CI").is_some() {
            panic!("vigil-chaos: namespace tests cannot run (CI is set, so this fails): {e}");
        }
        eprintln!(
            "vigil-chaos: SKIPPED namespace tests: {e} (they need root; under CI, with CI set, this fails)"
        );
        return false;
    }
    true
}

fn namespaces() -> String {
    net::ip(&["netns", "list"]).expect("ip netns list")
}

/// A refused connection proves the member is reachable (a RST came back);
/// a dropped one times out.
fn reachable(lab: &Lab, i: usize) -> bool {
    let addr = SocketAddr::from((lab.slots()[i].ip, 9));
    match lab.connect(addr, Duration::from_millis(700)) {
        Err(Error::Io { source, .. }) => source.kind() == ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[test]
fn lab_connects_members_and_removes_everything_on_drop() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(3).expect("lab");
    let tag = lab.tag().to_string();
    assert_eq!(namespaces().matches(&tag).count(), 4, "hub and three members");
    let addrs =
        net::exec_in(&lab.slots()[1].ns, "ip", &["-4", "addr", "show", "eth0"], None).expect("ip addr");
    assert!(addrs.contains("198.18.1.2/16"), "{addrs}");
    assert!((0..3).all(|i| reachable(&lab, i)), "every member answers from the hub");
    drop(lab);
    assert!(!namespaces().contains(&tag), "namespaces removed");
}

#[test]
fn nft_rules_drop_from_chosen_senders_only() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let ns = lab.slots()[0].ns.clone();
    nft::set(&ns, &[Rule::all_from(vec![lab.slots()[1].ip]), Rule::loss(10)]).expect("rules");
    let listed = net::exec_in(&ns, "nft", &["list", "ruleset"], None).expect("nft list");
    assert!(listed.contains("ip saddr 198.18.1.2 drop"), "{listed}");
    assert!(listed.contains("numgen random mod 100 < 10 drop"), "{listed}");
    // The hub is not a member: the harness still reaches the API.
    assert!(reachable(&lab, 0));
    nft::clear(&ns).expect("clear");
    let listed = net::exec_in(&ns, "nft", &["list", "ruleset"], None).expect("nft list");
    assert!(!listed.contains("vigil_chaos"), "{listed}");
}

#[test]
fn stale_namespaces_of_dead_runs_are_removed() {
    if !root_or_skip() {
        return;
    }
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("wait");
    let name = format!("{}{dead_pid}-0-hub", net::PREFIX);
    net::ip(&["netns", "add", &name]).expect("add");
    let removed = net::remove_stale().expect("remove_stale");
    assert!(removed >= 1);
    assert!(!namespaces().contains(&name));
}

#[test]
fn many_members_get_static_neighbours() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(net::STATIC_NEIGHBOURS_ABOVE + 2).expect("lab");
    let neigh =
        net::exec_in(&lab.slots()[0].ns, "ip", &["neigh", "show", "dev", "eth0"], None).expect("neigh");
    assert!(neigh.contains("198.18.1.32") && neigh.contains("PERMANENT"), "{neigh}");
    assert!(reachable(&lab, net::STATIC_NEIGHBOURS_ABOVE + 1));
}
