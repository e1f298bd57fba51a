//! Use auditq as a library: import NDJSON events into an archive, then print its stats.
//!
//! ```sh
//! cargo run --example archive_stats -- events.ndjson /tmp/archive
//! ```

use auditq::archive::{Archive, maintain};
use auditq::import::{Options, import};
use auditq::ingest::Input;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: archive_stats EVENTS.ndjson ARCHIVE_DIR");
        std::process::exit(2);
    };
    let archive = Archive::at(dir);
    let report = import(&archive, &[Input::parse(&input)], &Options::default()).await?;
    println!("{}", report.summary(&archive));
    let stats = maintain::stats(&archive, 5).await?;
    println!(
        "{} events over {} days in {} files",
        stats.events, stats.days, stats.files
    );
    for (action, n) in stats.top_actions {
        println!("{n:>8} {action}");
    }
    Ok(())
}
