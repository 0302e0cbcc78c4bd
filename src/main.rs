//! The `scoreprior` command-line program: one subcommand per file in `src/cli/`.

use clap::Parser;

mod cli;

fn main() {
    scoreprior_models::alloc::retain_freed_memory();
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e}");
        let mut source = e.source();
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
