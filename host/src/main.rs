//! The `promax` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Counts allocations so that `promax bench` can report peak memory as measured.
#[global_allocator]
static ALLOC: promax::alloc::Counting = promax::alloc::Counting;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli::run(cli::Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
