//! The `auditq` binary: dispatch and exit policy only.

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
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

/// glibc gives each thread that allocates concurrently its own heap ("arena", up to 8 a
/// core), and freed memory stays in the arena it came from: over a long `sync` the
/// resident size grew by about 50 MB per million events without holding any more data.
/// Two arenas keep it flat (docs/decisions.md). `MALLOC_ARENA_MAX` still overrides.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
