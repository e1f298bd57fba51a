//! Where matches and alerts go: stdout, a file, a webhook, Splunk HEC.
//!
//! Each sink runs on its own task behind a bounded queue: when a sink falls behind, the
//! queue fills and `follow` stops reading (back-pressure) rather than dropping anything.
//! A checkpoint waits on a *barrier* that each sink answers once everything queued
//! before it is delivered; only then does the source's position move. So every sink is
//! at-least-once: after a crash, what was sent since the last checkpoint is sent again
//! (with the same `id`).
//!
//! HTTP sinks retry connection errors, timeouts, 408, 429 and 5xx with exponential
//! backoff (0.5 s doubling to 30 s) for as long as it takes. A 4xx that is not about
//! the request's timing means the records were refused: a batch is split to find the
//! refused ones, which go to the dead-letter file with the reason (never counted as
//! delivered). HEC 401/403 stop `follow` (the token is wrong); the token and the
//! URL's path and query never appear in a message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::engine::Record;
use super::error::{Error, Result};
use crate::api::client::Secret;

/// A sink as given on the command line.
#[derive(Debug, Clone)]
pub enum Spec {
    Stdout,
    File(PathBuf),
    Webhook(url::Url),
    Hec(url::Url),
}

impl Spec {
    pub fn parse(s: &str) -> std::result::Result<Spec, String> {
        let url = |u: &str| {
            url::Url::parse(u)
                .map_err(|e| format!("`{}` is not a URL: {e}", redact_text(u)))
                .and_then(|u| match u.scheme() {
                    "http" | "https" => Ok(u),
                    other => Err(format!("a sink URL must be http or https, not {other}")),
                })
        };
        if s == "stdout" || s == "-" {
            Ok(Spec::Stdout)
        } else if let Some(p) = s.strip_prefix("file:") {
            Ok(Spec::File(PathBuf::from(p)))
        } else if let Some(u) = s.strip_prefix("webhook:") {
            Ok(Spec::Webhook(url(u)?))
        } else if let Some(u) = s.strip_prefix("splunk-hec:") {
            let mut u = url(u)?;
            if !u.path().contains("/services/collector") {
                let path = format!(
                    "{}/services/collector/event",
                    u.path().trim_end_matches('/')
                );
                u.set_path(&path);
            }
            Ok(Spec::Hec(u))
        } else {
            Err(format!(
                "unknown sink `{}`: use stdout, file:PATH, webhook:URL or splunk-hec:URL",
                redact_text(s)
            ))
        }
    }

    /// A name for messages: scheme, host and port only.
    pub fn name(&self) -> String {
        match self {
            Spec::Stdout => "stdout".into(),
            Spec::File(p) => format!("file:{}", p.display()),
            Spec::Webhook(u) => format!("webhook:{}", redact(u)),
            Spec::Hec(u) => format!("splunk-hec:{}", redact(u)),
        }
    }
}

/// A URL without its path, query or credentials: secrets often hide there.
pub fn redact(u: &url::Url) -> String {
    match u.port() {
        Some(p) => format!("{}://{}:{p}/…", u.scheme(), u.host_str().unwrap_or("?")),
        None => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
    }
}

fn redact_text(s: &str) -> String {
    let head: String = s.chars().take_while(|c| *c != '?').take(60).collect();
    match head.find("://") {
        Some(i) => {
            let rest = &head[i + 3..];
            let host = rest.split('/').next().unwrap_or("");
            format!(
                "{}://{}/…",
                &head[..i],
                host.rsplit('@').next().unwrap_or(host)
            )
        }
        None => head,
    }
}

/// How sinks behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Batches queued per sink before `follow` waits.
    pub queue: usize,
    /// Records per HTTP request.
    pub http_batch: usize,
    /// Rotate `file:` sinks at this size.
    pub rotate_bytes: u64,
    /// Rotated files kept (`PATH.1` … `PATH.N`).
    pub keep: usize,
    pub hec_token: Option<Secret>,
    /// stdout is a terminal: compact lines instead of JSON.
    pub compact: bool,
    /// Refused records go here.
    pub dead_letter: PathBuf,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue: 16,
            http_batch: 500,
            rotate_bytes: 100 << 20,
            keep: 5,
            hec_token: None,
            compact: false,
            dead_letter: crate::paths::data_dir()
                .join("follow")
                .join("dead-letter.ndjson"),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

enum Msg {
    Records(Arc<Vec<Record>>),
    Barrier(oneshot::Sender<()>),
}

/// What a sink delivered and refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub delivered: u64,
    pub dead: u64,
    pub retries: u64,
}

struct Running {
    name: String,
    tx: mpsc::Sender<Msg>,
    task: tokio::task::JoinHandle<Result<Counts>>,
}

/// Every sink of a `follow`.
pub struct Sinks {
    running: Vec<Running>,
}

impl Sinks {
    pub fn start(specs: &[Spec], opts: &Options) -> Result<Sinks> {
        let mut running = Vec::new();
        for spec in specs {
            let (tx, rx) = mpsc::channel(opts.queue.max(1));
            let name = spec.name();
            let task = match spec {
                Spec::Stdout => {
                    let compact = opts.compact;
                    tokio::task::spawn_blocking(move || {
                        let out = std::io::stdout();
                        lines(rx, out.lock(), compact, "writing to stdout")
                    })
                }
                Spec::File(path) => {
                    let file = RotatingFile::open(path, opts.rotate_bytes, opts.keep)?;
                    tokio::task::spawn_blocking(move || file.run(rx))
                }
                Spec::Webhook(url) | Spec::Hec(url) => {
                    let hec = matches!(spec, Spec::Hec(_));
                    if hec && opts.hec_token.is_none() {
                        return Err(Error::NoHecToken);
                    }
                    let http = Http::new(url.clone(), hec, opts, name.clone())?;
                    tokio::spawn(http.run(rx))
                }
            };
            running.push(Running { name, tx, task });
        }
        Ok(Sinks { running })
    }

    /// Queue records on every sink; waits while a queue is full.
    pub async fn send(&mut self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = Arc::new(records);
        for i in 0..self.running.len() {
            if self.running[i]
                .tx
                .send(Msg::Records(records.clone()))
                .await
                .is_err()
            {
                return Err(self.failed(i).await);
            }
        }
        Ok(())
    }

    /// Wait until every sink delivered everything queued so far.
    pub async fn barrier(&mut self) -> Result<()> {
        let mut acks = Vec::new();
        for i in 0..self.running.len() {
            let (tx, rx) = oneshot::channel();
            if self.running[i].tx.send(Msg::Barrier(tx)).await.is_err() {
                return Err(self.failed(i).await);
            }
            acks.push(rx);
        }
        for (i, ack) in acks.into_iter().enumerate() {
            if ack.await.is_err() {
                return Err(self.failed(i).await);
            }
        }
        Ok(())
    }

    /// The error of a sink whose task ended.
    async fn failed(&mut self, i: usize) -> Error {
        let r = &mut self.running[i];
        match (&mut r.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => Error::SinkStopped {
                name: r.name.clone(),
            },
            Err(source) => Error::Task {
                what: format!("sink {}", r.name),
                source,
            },
        }
    }

    /// Close the queues and collect each sink's counts.
    pub async fn close(self) -> Result<Vec<(String, Counts)>> {
        let mut out = Vec::new();
        for r in self.running {
            drop(r.tx);
            let counts = r.task.await.map_err(|source| Error::Task {
                what: format!("sink {}", r.name),
                source,
            })??;
            out.push((r.name, counts));
        }
        Ok(out)
    }
}

/// A compact line for a terminal: the main fields of an event, or an alert's columns.
pub fn compact_line(r: &Record) -> String {
    let v: serde_json::Value = serde_json::from_str(&r.json).unwrap_or_default();
    if r.alert || v.get("attributes").is_none() {
        let Some(obj) = v.as_object() else {
            return r.json.clone();
        };
        let parts: Vec<String> = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "id")
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        let tag = if r.alert { "ALERT " } else { "" };
        return format!("{tag}{}", parts.join(" "));
    }
    let a = &v["attributes"];
    let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_owned();
    let actor = a["actor"]["email"]
        .as_str()
        .or(a["actor"]["name"].as_str())
        .or(a["actor"]["id"].as_str())
        .unwrap_or("-");
    format!(
        "{}  {:<40}  {:<28}  {}",
        crate::event::format_time(r.time),
        s(&a["action"]),
        actor,
        s(&a["location"]["ip"])
    )
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_owned(),
        source,
    }
}

/// A line writer (stdout): JSON or compact lines; flushed at each barrier.
fn lines(
    mut rx: mpsc::Receiver<Msg>,
    out: impl Write,
    compact: bool,
    what: &str,
) -> Result<Counts> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let mut counts = Counts::default();
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Records(rs) => {
                for r in rs.iter() {
                    if compact {
                        writeln!(out, "{}", compact_line(r))
                    } else {
                        out.write_all(r.json.as_bytes())
                            .and_then(|()| out.write_all(b"\n"))
                    }
                    .map_err(io_err(what))?;
                }
                counts.delivered += rs.len() as u64;
                if rx.is_empty() {
                    out.flush().map_err(io_err(what))?;
                }
            }
            Msg::Barrier(ack) => {
                out.flush().map_err(io_err(what))?;
                let _ = ack.send(());
            }
        }
    }
    out.flush().map_err(io_err(what))?;
    Ok(counts)
}

/// `file:PATH`: NDJSON, fsynced at each barrier, rotated by size (`PATH.1` is the newest
/// rotated file). On open, a torn last line (a crash mid-write) is cut off.
struct RotatingFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    rotate: u64,
    keep: usize,
}

impl RotatingFile {
    fn open(path: &Path, rotate: u64, keep: usize) -> Result<RotatingFile> {
        let what = format!("opening sink file `{}`", path.display());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err(&what))?;
        let size = repair_torn_tail(&file).map_err(io_err(&what))?;
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            rotate: rotate.max(1),
            keep: keep.max(1),
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        for i in (1..self.keep).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<Counts> {
        let what = format!("writing sink file `{}`", self.path.display());
        let mut counts = Counts::default();
        let mut buf = Vec::with_capacity(1 << 16);
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Records(rs) => {
                    for r in rs.iter() {
                        buf.extend_from_slice(r.json.as_bytes());
                        buf.push(b'\n');
                        if self.size + buf.len() as u64 >= self.rotate || buf.len() >= 1 << 16 {
                            self.file.write_all(&buf).map_err(io_err(&what))?;
                            self.size += buf.len() as u64;
                            buf.clear();
                            if self.size >= self.rotate {
                                self.rotate().map_err(io_err(&what))?;
                            }
                        }
                    }
                    counts.delivered += rs.len() as u64;
                }
                Msg::Barrier(ack) => {
                    self.file.write_all(&buf).map_err(io_err(&what))?;
                    self.size += buf.len() as u64;
                    buf.clear();
                    self.file.sync_data().map_err(io_err(&what))?;
                    let _ = ack.send(());
                }
            }
        }
        self.file.write_all(&buf).map_err(io_err(&what))?;
        self.file.sync_data().map_err(io_err(&what))?;
        Ok(counts)
    }
}

/// `PATH.i`
fn rotated(p: &Path, i: usize) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Cut a file back to its last newline; returns the new size.
fn repair_torn_tail(file: &std::fs::File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut f = file;
    let back = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - back))?;
    let mut tail = vec![0; back as usize];
    f.read_exact(&mut tail)?;
    let keep = match memchr::memrchr(b'\n', &tail) {
        Some(i) => len - back + i as u64 + 1,
        None if back == len => 0,
        None => return Ok(len),
    };
    if keep != len {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(keep)
}

/// `webhook:URL` (a JSON array of records per POST) and `splunk-hec:URL` (HEC events,
/// the Atlassian `id` in each event's `fields`).
struct Http {
    client: reqwest::Client,
    url: url::Url,
    hec: bool,
    token: Option<Secret>,
    channel: String,
    name: String,
    batch: usize,
    dead: PathBuf,
    base: Duration,
    cap: Duration,
    counts: Counts,
    host: String,
}

/// How one POST went.
enum Sent {
    Ok,
    /// The records were refused (a 4xx about them): status and reason.
    Refused(u16, String),
}

impl Http {
    fn new(url: url::Url, hec: bool, opts: &Options, name: String) -> Result<Http> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::SinkClient {
                name: name.clone(),
                source,
            })?;
        Ok(Http {
            client,
            url,
            hec,
            token: opts.hec_token.clone(),
            channel: format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                std::process::id(),
                chrono::Utc::now().timestamp_subsec_micros() & 0xffff,
                0x123,
                0x456,
                chrono::Utc::now().timestamp_micros() & 0xffff_ffff_ffff
            ),
            name,
            batch: opts.http_batch.max(1),
            dead: opts.dead_letter.clone(),
            base: opts.backoff_base,
            cap: opts.backoff_cap,
            counts: Counts::default(),
            host: hostname(),
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<Counts> {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Records(rs) => {
                    for chunk in rs.chunks(self.batch) {
                        self.deliver(chunk).await?;
                    }
                }
                Msg::Barrier(ack) => {
                    let _ = ack.send(());
                }
            }
        }
        Ok(self.counts)
    }

    /// Deliver records, splitting a refused batch to find the refused records.
    async fn deliver(&mut self, records: &[Record]) -> Result<()> {
        let mut work = vec![records];
        while let Some(rs) = work.pop() {
            match self.post(rs).await? {
                Sent::Ok => self.counts.delivered += rs.len() as u64,
                Sent::Refused(status, why) if rs.len() == 1 => {
                    self.dead_letter(&rs[0], status, &why)?;
                }
                Sent::Refused(..) => {
                    let (a, b) = rs.split_at(rs.len() / 2);
                    work.push(b);
                    work.push(a);
                }
            }
        }
        Ok(())
    }

    fn body(&self, rs: &[Record]) -> String {
        let mut body = String::new();
        if self.hec {
            for r in rs {
                let meta = serde_json::json!({
                    "time": r.time as f64 / 1e6,
                    "host": self.host,
                    "source": "auditq",
                    "sourcetype": if r.alert { "auditq:alert" } else { "atlassian:audit" },
                    "fields": { "id": r.id },
                });
                let meta = meta.to_string();
                // {"time":…,"event":<record>} with the record's bytes as they are.
                body.push_str(&meta[..meta.len() - 1]);
                body.push_str(",\"event\":");
                body.push_str(&r.json);
                body.push_str("}\n");
            }
        } else {
            body.push('[');
            for (i, r) in rs.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&r.json);
            }
            body.push(']');
        }
        body
    }

    /// POST until it is delivered or refused; retryable failures wait and go again.
    async fn post(&mut self, rs: &[Record]) -> Result<Sent> {
        let body = self.body(rs);
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .client
                .post(self.url.clone())
                .header("Content-Type", "application/json")
                .body(body.clone());
            if self.hec {
                let token = self.token.as_ref().expect("checked at start");
                req = req
                    .header("Authorization", format!("Splunk {}", token.expose()))
                    .header("X-Splunk-Request-Channel", &self.channel);
            }
            let why = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    let text: String = text.chars().take(300).collect();
                    match status {
                        200..=299 => return Ok(Sent::Ok),
                        401 | 403 if self.hec => {
                            return Err(Error::HecRefused {
                                name: self.name.clone(),
                                status,
                            });
                        }
                        408 | 429 | 500..=599 => {
                            if let Some(s) = retry_after {
                                tokio::time::sleep(Duration::from_secs(s.min(300))).await;
                            }
                            format!("HTTP {status}")
                        }
                        _ => return Ok(Sent::Refused(status, text)),
                    }
                }
                // reqwest's error names the URL; say only what kind of failure it was.
                Err(e) if e.is_timeout() => "timed out".to_owned(),
                Err(e) if e.is_connect() => "could not connect".to_owned(),
                Err(_) => "the request failed".to_owned(),
            };
            attempt += 1;
            self.counts.retries += 1;
            let wait = (self.base * 2u32.saturating_pow(attempt.min(16))).min(self.cap);
            if attempt == 1 || attempt.is_multiple_of(10) {
                eprintln!(
                    "warning: sink {}: {why}; retrying (attempt {attempt}, next in {:.1} s)",
                    self.name,
                    wait.as_secs_f64()
                );
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn dead_letter(&mut self, r: &Record, status: u16, why: &str) -> Result<()> {
        self.counts.dead += 1;
        let line = serde_json::json!({
            "sink": self.name,
            "status": status,
            "reason": why,
            "id": r.id,
            "at": crate::event::format_time(chrono::Utc::now().timestamp_micros()),
            "record": serde_json::from_str::<serde_json::Value>(&r.json).unwrap_or_default(),
        });
        let what = format!("writing the dead-letter file `{}`", self.dead.display());
        if let Some(dir) = self.dead.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(&what))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead)
            .map_err(io_err(&what))?;
        writeln!(f, "{line}").map_err(io_err(&what))?;
        f.sync_data().map_err(io_err(&what))?;
        eprintln!(
            "warning: sink {} refused event {} (HTTP {status}); it is in `{}`",
            self.name,
            r.id,
            self.dead.display()
        );
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "auditq".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_names_hide_paths_and_queries() {
        let s = Spec::parse("webhook:https://hooks.example.com/T000/B000/SECRETSECRET?k=canary")
            .unwrap();
        assert_eq!(s.name(), "webhook:https://hooks.example.com/…");
        let e = Spec::parse("webhok:https://x.example.com/secret").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let Spec::Hec(u) = Spec::parse("splunk-hec:http://127.0.0.1:8088").unwrap() else {
            panic!()
        };
        assert_eq!(u.path(), "/services/collector/event");
    }

    #[test]
    fn a_torn_last_line_is_cut() {
        let dir = std::env::temp_dir().join(format!("auditq-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.ndjson");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let f = RotatingFile::open(&p, 1 << 20, 3).unwrap();
        assert_eq!(f.size, 16);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
