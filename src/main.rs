//! The `fleetsim` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code. Everything else is the library.

use std::process::ExitCode;

use clap::Parser;
use fleetsim::cli::{Cli, execute};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = cli.init_tracing();
    let code = execute(cli);
    drop(logs);
    ExitCode::from(code as u8)
}
