//! `rehearse`: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rehearse::cli::Cli::parse();
    std::process::ExitCode::from(rehearse::cli::run(cli) as u8)
}
