//! `vigil info`: the local agent's own entry, member counts and counters.

use serde_json::Value;

use super::http::{ClientArgs, ClientError, base_url, get, get_text};
use super::members::{meta_text, s};

/// `vigil info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print `/v1/self` (this member's entry, local health, traffic,
    /// warnings) as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// `vigil info`.
pub fn info(args: &InfoArgs) -> Result<(), ClientError> {
    let base = base_url(&args.client.http);
    let me = get(&base, "/v1/self")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&me).unwrap_or_default());
        return Ok(());
    }
    let all = get(&base, "/v1/members")?;
    let count =
        |state: &str| all.as_array().map_or(0, |a| a.iter().filter(|m| s(m, "state") == state).count());
    let metrics = get_text(&base, "/metrics").unwrap_or_default();
    let health = me.get("health").cloned().unwrap_or(Value::Null);
    println!("name:        {}", s(&me, "name"));
    println!("address:     {}", s(&me, "addr"));
    println!(
        "state:       {} (incarnation {})",
        s(&me, "state"),
        me.get("incarnation").unwrap_or(&Value::Null)
    );
    println!("health:      {} {}", s(&health, "status"), s(&health, "reason"));
    println!("meta:        {}", meta_text(&me));
    println!(
        "members:     {} alive, {} suspect, {} dead, {} left",
        count("alive"),
        count("suspect"),
        count("dead"),
        count("left")
    );
    println!("local health score: {}", metric_sum("vigil_local_health_score", &metrics));
    println!(
        "traffic:     {} bytes sent, {} received",
        metric_sum("vigil_sent_bytes_total", &metrics),
        metric_sum("vigil_received_bytes_total", &metrics)
    );
    println!("api:         {base}");
    Ok(())
}

/// Sums one counter over its label values in a rendered `/metrics` text
/// (`vigil info`, the figures script, tests): `metric_sum("vigil_sent_bytes_total", text)`.
pub fn metric_sum(name: &str, text: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
