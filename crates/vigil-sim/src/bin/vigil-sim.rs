//! `vigil-sim`: run a simulated vigil cluster, or search for a configuration.
//! A thin shell over the `vigil_sim` library (the agent's `vigil sim` and
//! `vigil tune` will reuse the same flags).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_sim::{SimArgs, TuneArgs, commands};

#[derive(Parser, Debug)]
#[command(name = "vigil-sim", version, about = "Deterministic simulator of vigil clusters")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Search for the cheapest configuration that meets a detection target.
    Tune(TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Tune(t)) => commands::tune_command(&t),
        None => commands::sim_command(&cli.sim),
    }
}
