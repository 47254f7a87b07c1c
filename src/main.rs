//! The `certbind` binary: parse arguments, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = certbind::cli::Cli::parse();
    match certbind::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("certbind: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
