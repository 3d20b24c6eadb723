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
    Info(ClientArgs),
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
    /// Print the man page (roff) generated from this command line.
    Man,
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
        Command::Demo(a) => demo::run(&a).map_err(|e| ClientError(e.to_string())),
        Command::Keygen => client::keygen(),
        Command::Keys(a) => client::keys(&a),
        Command::Top(a) => client::top(&a.http),
        Command::Watch(a) => client::watch(&a.options()),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "vigil", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| ClientError(format!("writing the man page: {e}")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
