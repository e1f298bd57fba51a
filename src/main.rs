//! The `auditq` binary: dispatch and exit policy only.

use std::process::ExitCode;

fn main() -> ExitCode {
    match auditq::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(auditq::Error::Clap(e)) => {
            let _ = e.print();
            ExitCode::from(auditq::Error::Clap(e).exit_code())
        }
        Err(auditq::Error::BadQuery(rendered)) => {
            eprint!("{rendered}");
            ExitCode::from(auditq::error::EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
