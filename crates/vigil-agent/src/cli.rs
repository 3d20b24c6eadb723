//! The command line: the command tree (clap derive) and [`run`], which
//! hands each subcommand to its module. Each subcommand's flags live beside
//! the code that uses them: [`crate::config::AgentArgs`] (`vigil agent`),
//! [`crate::client`] (`members`, `join`, `leave`, `events`, `info`, `keys`,
//! `top`, `watch`), [`crate::demo`], and `vigil_sim` (`sim`, `tune`).

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, ClientArgs, ClientError, EventsArgs, JoinArgs, KeysArgs, MembersArgs, WatchArgs};
use crate::demo::{self, DemoArgs};

/// vigil: heartbeat failure detection and cluster membership.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Run the agent: join the cluster, serve the HTTP API.
    Agent(crate::config::AgentArgs),
    /// List the members the local agent knows.
    Members(MembersArgs),
    /// Ask the local agent to join through these addresses.
    Join(JoinArgs),
    /// Ask the local agent to leave the cluster gracefully and exit.
    Leave(ClientArgs),
    /// Follow the local agent's membership events.
    Events(EventsArgs),
    /// Show the local agent's own member entry and counters.
    Info(client::InfoArgs),
    /// Mark a failed member left at once, everywhere (Serf's force-leave).
    ForceLeave(client::ForceLeaveArgs),
    /// Set or delete keys of the local member's metadata (the others kept).
    Meta(client::MetaArgs),
    /// Publish the local member's health: ok, degraded or failing, with a reason.
    Health(client::HealthArgs),
    /// Run a 5-agent cluster on 127.0.0.1, kill one, watch it detected and rejoin.
    Demo(DemoArgs),
    /// Print a new random cluster key (base64), for --key-file.
    Keygen,
    /// List, install, use or remove cluster keys on every member.
    Keys(KeysArgs),
    /// A live terminal view of the cluster (members, health, recent events).
    Top(ClientArgs),
    /// Keep a file rendered from the healthy member set; run a command when it changes.
    Watch(WatchArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// Print the man page (roff) generated from this command line: the
    /// top page, or a subcommand's (`vigil man members`).
    Man(ManArgs),
    /// Simulate a cluster of this configuration (up to thousands of members)
    /// in virtual time: detection times, false failures, bandwidth.
    Sim(vigil_sim::SimArgs),
    /// Search the simulator for the cheapest protocol settings that meet
    /// detection targets (process exits, hosts down, pauses); prints a
    /// configuration file for `vigil agent --config` (`vigil tune > vigil.toml`).
    Tune(vigil_sim::TuneArgs),
}

/// `vigil completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `vigil man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// A subcommand whose page to print (`members` prints vigil-members(1)).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// The man page of `vigil` or of one subcommand, in roff.
pub fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>, ClientError> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                ClientError(format!("no subcommand `{name}`; one of: {}", names.join(", ")))
            })?;
            // Once per process: clap takes a static name without its `string` feature.
            let full: &'static str = Box::leak(format!("vigil-{}", sub.get_name()).into_boxed_str());
            sub.name(full).display_name(full).bin_name(format!("vigil {name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| ClientError(format!("writing the man page: {e}")))?;
    Ok(out)
}

/// Runs one command line: the whole program. Exit status: 0 on success, 2
/// for a configuration the agent refuses, 1 for other failures.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Sim(a) => return vigil_sim::commands::sim_command(&a),
        Command::Tune(a) => return vigil_sim::commands::tune_command(&a),
        Command::Agent(args) => return crate::agent::main(&args),
        Command::Members(a) => client::members(&a),
        Command::Join(a) => client::join(&a),
        Command::Leave(a) => client::leave(&a),
        Command::Events(a) => client::events(&a),
        Command::Info(a) => client::info(&a),
        Command::ForceLeave(a) => client::force_leave(&a),
        Command::Meta(a) => client::meta(&a),
        Command::Health(a) => client::health(&a),
        Command::Demo(a) => demo::run(&a).map_err(|e| ClientError(e.to_string())),
        Command::Keygen => client::keygen(),
        Command::Keys(a) => client::keys(&a),
        Command::Top(a) => client::top(&a.http),
        Command::Watch(a) => {
            crate::logging::init(crate::config::LogFormat::Text, None);
            client::watch(&a.options())
        }
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "vigil", &mut std::io::stdout());
            Ok(())
        }
        Command::Man(a) => man_page(a.subcommand.as_deref()).and_then(|page| {
            std::io::Write::write_all(&mut std::io::stdout(), &page)
                .map_err(|e| ClientError(format!("writing the man page: {e}")))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_prints_the_subcommand_pages_the_top_page_cites() {
        let top = String::from_utf8(man_page(None).unwrap()).unwrap();
        assert!(top.contains("vigil\\-members(1)"), "the top page cites the subcommand pages:\n{top}");
        let members = String::from_utf8(man_page(Some("members")).unwrap()).unwrap();
        assert!(members.contains(".TH vigil-members 1"), "{members}");
        assert!(members.contains("\\-\\-state"), "its own flags: {members}");
        assert!(man_page(Some("nope")).unwrap_err().0.contains("members"));
    }
}
