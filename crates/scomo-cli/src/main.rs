//! `scomo`: one binary for every role. Each subcommand lives in its own
//! module; `sim` is the fleet simulator.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod admin_campaign;
mod admin_jobs;
mod agent;
mod package;
#[cfg(feature = "server")]
mod server;
mod sim;
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
    /// The DM server: DM endpoint, REST API, package 0 notifier.
    #[cfg(feature = "server")]
    Server(Box<server::ServerArgs>),
    /// Manage the server through its REST API.
    Admin(Box<admin::AdminArgs>),
    /// Build delivery packages.
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// The device agent: a DM client with the SCOMO client.
    Agent(Box<agent::AgentArgs>),
    /// The fleet simulator: N virtual devices against a running server.
    Sim(Box<sim::SimArgs>),
    /// Convert and inspect SyncML DM messages (XML and WBXML).
    #[command(subcommand)]
    Wire(wire::WireCommand),
}

/// mimalloc: the server's threads (tokio workers, the SQLite writer) free
/// each other's allocations all the time, and glibc's malloc made them wait
/// on its arena locks. Version 2 (see the workspace manifest) returns freed
/// pages to the OS within milliseconds, which the agent's RSS budget needs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        #[cfg(feature = "server")]
        Command::Server(args) => server::run_server(*args),
        Command::Admin(args) => admin::run(*args),
        Command::Agent(args) => agent::run(*args),
        Command::Package(cmd) => package::run(cmd),
        Command::Sim(args) => sim::run(*args),
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

/// Logs to standard error; `RUST_LOG` (e.g. `scomo_agent=debug`) filters.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
