//! The `auditq` binary: dispatch and exit policy only.

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    quiet_known_panics();
    let args = match auditq::cli::parse() {
        Ok(args) => args,
        Err(e) => return report(e, auditq::diag::Style::Text, false),
    };
    let (style, color) = (args.error_style(), args.color_errors());
    match auditq::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e, style, color),
    }
}

/// Show an error the way the user asked for (query diagnostics as text or JSON, in
/// colour on a terminal) and turn it into the exit code. A closed pipe is success.
fn report(e: auditq::Error, style: auditq::diag::Style, color: bool) -> ExitCode {
    if e.is_broken_pipe() {
        return ExitCode::SUCCESS;
    }
    let code = ExitCode::from(e.exit_code());
    match e {
        auditq::Error::Clap(e) => {
            let _ = e.print();
        }
        auditq::Error::BadQuery(r) => {
            eprint!(
                "{}",
                auditq::diag::render_as(&r.src, &r.diags, style, color)
            );
        }
        auditq::Error::Rules(auditq::follow::pack::LoadError::Rule(r)) => {
            eprintln!(
                "{}: the rule `{}` is refused",
                auditq::diag::error_head(color),
                r.path.display()
            );
            eprint!(
                "{}",
                auditq::diag::render_as(&r.text, &r.diags, style, color)
            );
        }
        e => eprintln!("{}: {}", auditq::diag::error_head(color), e.render()),
    }
    code
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

/// object_store's buffered writer (used by delta-rs to write data files) panics in a
/// background task with "Already shut down" once a write to it has failed, on a full
/// disk for one. The failed write itself comes back as the error auditq reports; the
/// panic is only noise of the library's (the task is joined, nothing is left running),
/// so it is not printed. Every other panic is, as before.
fn quiet_known_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_buffered_writer = info.location().is_some_and(|l| {
            l.file().contains("object_store") && l.file().ends_with("buffered.rs")
        });
        if !in_buffered_writer {
            default(info);
        }
    }));
}
