//! The `vigil` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    vigil_agent::cli::run(vigil_agent::cli::Cli::parse())
}
