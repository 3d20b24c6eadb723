//! The `vigil` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    vigil_agent::main_with(vigil_agent::cli::Cli::parse())
}
