//! The venvbake binary: parse the command line, run, print an error once.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = venvbake::cli::Cli::parse();
    match venvbake::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.render());
            std::process::ExitCode::from(e.exit_code().code())
        }
    }
}
