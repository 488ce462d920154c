//! `scomo`: one binary for every role. Each subcommand lives in its own
//! module; later roles (server, agent, sim, admin) add theirs beside `wire`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod wire;

/// Remote management of software components (OMA SCOMO over OMA DM 1.2).
#[derive(Debug, Parser)]
#[command(name = "scomo", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert and inspect SyncML DM messages (XML and WBXML).
    #[command(subcommand)]
    Wire(wire::WireCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Wire(cmd) => wire::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
