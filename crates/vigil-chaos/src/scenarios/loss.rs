//! Scenario 6: 10% loss on every link.

use std::time::Duration;

use super::{Options, cluster, false_failures, progress, settle};
use crate::error::Result;
use crate::events::now_ms;
use crate::nft::{self, Rule};
use crate::report::Report;

const LOSS_PERCENT: u8 = 10;

pub(super) fn everywhere(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (c, _) = cluster(opts, |_| {})?;
    let hold = if opts.long { Duration::from_secs(300) } else { Duration::from_secs(60) };
    let mut r = Report::new(6, "10% loss on every link", n, super::PRESET);
    r.fault = format!("nft drops {LOSS_PERCENT}% of every member's incoming packets, {} s", hold.as_secs());
    r.bound = "zero false failures".into();
    let start_ms = now_ms();
    for i in 0..n {
        nft::set_member(c.place(), i, &[Rule::loss(LOSS_PERCENT)])?;
    }
    progress(opts, format!("{LOSS_PERCENT}% loss for {} s", hold.as_secs()));
    crate::signal::sleep(hold)?;
    nft::clear_all(c.place())?;
    settle()?;
    let ev = c.events();
    let suspected = ev.of_kind_since("suspected", start_ms).len();
    let recovered = ev.of_kind_since("recovered", start_ms).len();
    r.false_failures = false_failures(ev, start_ms, |_| false);
    r.expect(r.false_failures.is_empty(), "a live member was declared failed");
    r.figure("suspicions", suspected.to_string());
    r.figure("recoveries", recovered.to_string());
    r.figure(
        "suspicions/member/min",
        format!("{:.2}", suspected as f64 / n as f64 / (hold.as_secs_f64() / 60.0)),
    );
    let all: Vec<usize> = (0..n).collect();
    let after = c.wait_state(&all, &all, "alive", Duration::from_secs(30));
    r.expect(after.is_ok(), format!("not all alive after the loss: {:?}", after.err()));
    Ok(r)
}
