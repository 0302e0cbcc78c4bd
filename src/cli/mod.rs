//! Subcommands of the `scoreprior` binary. Each lives in its own file with a clap `Args`
//! struct and a `run` function; with no subcommand the program runs its main job.

use clap::{Parser, Subcommand};

/// Errors of the command-line program: any library error, reported with its chain.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(name = "scoreprior", version, about = "Score-based diffusion models as principled priors for inverse imaging")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        None => main_job(),
        Some(c) => match c {},
    }
}

/// The main job run by `cargo run --release` with no arguments.
fn main_job() -> CliResult {
    Err("no main job is wired yet".into())
}
