//! The `scoreprior` command-line program: one subcommand per file in `scoreprior-cli/src/cli/`.

use clap::Parser;

mod cli;

fn main() {
    // `scoreprior measure … | head`: a closed pipe ends the program quietly, as it ends other
    // Unix tools, instead of `println!` panicking on the write error.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread
    // exists, is a plain libc call with no Rust invariants involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    scoreprior_models::alloc::retain_freed_memory();
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        // The library names settings by their paths (`prior.time_floor`); here they are flags.
        eprintln!("error: {}", cli::flags::with_flags(&e.to_string()));
        let mut source = e.source();
        while let Some(s) = source {
            eprintln!("  caused by: {}", cli::flags::with_flags(&s.to_string()));
            source = s.source();
        }
        std::process::exit(1);
    }
}
