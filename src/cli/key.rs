//! `auditq key generate`: an Ed25519 key that signs the archive's checkpoints.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::error::{Error, Result};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a signing key: the private key goes to --out (mode 0600, never printed), the
    /// verifier key (`name+id+base64`) to stdout for auditors
    Generate {
        /// The key's name, which is also the origin line of its checkpoints (e.g.
        /// `audit.example.com/jira`)
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Where to write the private key (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(action: Command) -> Result<()> {
    match action {
        Command::Generate { name, out } => {
            let (private, verifier) = crate::note::generate(&name)
                .map_err(|why| Error::Usage(format!("--name: {why}")))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let io = |source| Error::Io {
                what: format!("writing the key to `{}`", out.display()),
                source,
            };
            let mut file = options.open(&out).map_err(io)?;
            file.write_all(format!("{private}\n").as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            super::say(&verifier)?;
            eprintln!(
                "wrote the private key to {} (mode 0600); the line above is the verifier key to give auditors",
                out.display()
            );
            Ok(())
        }
    }
}
