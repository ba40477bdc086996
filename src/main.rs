use std::process::ExitCode;

use clap::Parser;
use greeter::cli::{self, Cli};

fn main() -> ExitCode {
    greeter::telemetry::init();
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
