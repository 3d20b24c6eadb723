//! Scenario figures: one [`Report`] per scenario, printed as a table and
//! written to docs/RELIABILITY.md.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cluster::Preset;

/// What one scenario measured and whether its expectations held.
#[derive(Clone, Debug)]
pub struct Report {
    /// Scenario number (1–8, as in the issue).
    pub id: u8,
    /// Short title.
    pub title: &'static str,
    /// Members in the cluster.
    pub members: usize,
    /// Agent preset.
    pub preset: Preset,
    /// The fault applied, in a few words.
    pub fault: String,
    /// Measured figures, name and value.
    pub figures: Vec<(String, String)>,
    /// Members declared failed while alive (observer → member, with time).
    pub false_failures: Vec<String>,
    /// The bounds asserted, in a few words.
    pub bound: String,
    /// Expectations that did not hold; empty when the scenario passed.
    pub failures: Vec<String>,
    /// Observations worth reading that are not failures.
    pub notes: Vec<String>,
    /// Wall-clock time the scenario took.
    pub wall: Duration,
}

impl Report {
    /// A report with no figures yet.
    pub fn new(id: u8, title: &'static str, members: usize, preset: Preset) -> Self {
        Report {
            id,
            title,
            members,
            preset,
            fault: String::new(),
            figures: Vec::new(),
            false_failures: Vec::new(),
            bound: String::new(),
            failures: Vec::new(),
            notes: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.figures.push((name.into(), value.into()));
    }

    /// Records an expectation; a false one makes the scenario fail.
    pub fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn figures_text(&self) -> String {
        self.figures.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("; ")
    }
}

/// Seconds with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Seconds with one decimal, from milliseconds.
pub fn secs_ms(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The median and maximum of some millisecond figures.
pub fn median_max(ms: &[u64]) -> Option<(u64, u64)> {
    let mut v = ms.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 };
    Some((median, v[n - 1]))
}

/// The reports as a Markdown table.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::from(
        "| # | scenario | N | preset | fault | figures | false failures | bound asserted | result |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.title,
            r.members,
            r.preset.as_str(),
            r.fault,
            r.figures_text(),
            r.false_failures.len(),
            r.bound,
            if r.passed() { "pass".to_string() } else { format!("FAIL ({})", r.failures.len()) }
        );
    }
    s
}

/// Details that do not fit the table: failed expectations and false failures.
pub fn details(reports: &[Report]) -> String {
    let mut s = String::new();
    for r in reports {
        for f in &r.failures {
            let _ = writeln!(s, "- scenario {}: {}", r.id, f);
        }
        for n in &r.notes {
            let _ = writeln!(s, "- scenario {} note: {}", r.id, n);
        }
        for f in r.false_failures.iter().take(10) {
            let _ = writeln!(s, "- scenario {} false failure: {}", r.id, f);
        }
    }
    s
}

/// The whole docs/RELIABILITY.md text.
pub fn document(reports: &[Report], command: &str, date: &str, machine: &str) -> String {
    let mut s = String::new();
    s.push_str(include_str!("reliability_head.md"));
    let _ = writeln!(s, "\n## Results\n\nMeasured {date} on {machine}, with:\n\n```sh\n{command}\n```\n");
    s.push_str(&table(reports));
    let d = details(reports);
    if !d.is_empty() {
        let _ = writeln!(s, "\nDetails:\n\n{d}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median_max(&[3, 1, 2]), Some((2, 3)));
        assert_eq!(median_max(&[4, 1, 2, 3]), Some((2, 4)));
        assert_eq!(median_max(&[]), None);
    }

    #[test]
    fn a_failed_expectation_fails_the_report_and_shows_in_the_table() {
        let mut r = Report::new(1, "crash", 10, Preset::Lan);
        r.expect(true, "fine");
        r.expect(false, "m3 never declared m9 failed");
        assert!(!r.passed());
        assert!(table(&[r]).contains("FAIL (1)"));
    }
}
