//! A faithful stand-in for the Atlassian organization audit-log API, on 127.0.0.1: the
//! behaviour in `reference/atlassian-audit-api.md` §3–§11 and §18, serving events from
//! the generator. `auditq fake-api`, `auditq demo` and the sync tests run it.
//!
//! - `GET /admin/v1/orgs/{org}/events` — filters `from`/`to` (epoch ms, inclusive),
//!   `action`, `actor`, `ip`, `q`; newest first; cursor paging.
//! - `GET /admin/v1/orgs/{org}/events-stream` — `from`/`to` on `processedAt`, `limit`
//!   (default 200, at most 500), `sortOrder`; the cursor carries the order and the last
//!   position, is returned on the last non-empty page, and an empty page follows.
//! - `GET /admin/v1/orgs/{org}/events/{id}`, `GET /admin/v1/orgs/{org}/event-actions`.
//! - Bearer auth (401 `{"code":401,…}`), unknown org (404 `ADMIN-404-2`), bad cursor (400
//!   `ADMIN-400-1`), bad time (400 `ADMIN-400-3`); per-path rate limits (10/min
//!   `/events`, 50/min `/events-stream`) with `X-RateLimit-*` on every answer; 180-day
//!   retention; an event is visible once its `processedAt` has passed.
//! - Test controls under `/_fake/` (no auth): append events (late ones too), read the
//!   request log (with a hash of each `Authorization` header, never the header).
//! - Faults by request number ([`Fault`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::json;

use crate::event;
use crate::generate::{Config as GenConfig, Generator, action_keys};

const MS_PER_DAY: i64 = 86_400_000;

/// One stored event.
struct Stored {
    id: String,
    time: i64,
    processed: i64,
    action: String,
    actor_id: String,
    ip: String,
    /// The event's JSON, as served.
    json: Box<str>,
}

/// What the fake serves and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub org: String,
    pub token: String,
    pub events: u64,
    pub days: u32,
    pub seed: u64,
    pub rate_limit: bool,
    pub faults: Vec<Fault>,
    pub retention_days: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            org: String::new(),
            token: String::new(),
            events: 10_000,
            days: 30,
            seed: 1,
            rate_limit: true,
            faults: Vec::new(),
            retention_days: 180,
        }
    }
}

/// An injected fault: requests number `from .. from + count` (counting API requests
/// from 1) get `kind` instead of their answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub from: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// 429 with `Retry-After` and `X-RateLimit-Reset` this many seconds ahead.
    TooMany(u64),
    /// A 5xx status (500, 502, 503, 504).
    Status(u16),
    /// 401 or 403.
    Auth(u16),
    /// The connection is cut after half the body.
    Truncate,
    /// The connection is cut before the answer.
    Reset,
    /// Answer only after this many seconds.
    Stall(u64),
    /// 200 with an HTML page (a captive portal or proxy).
    Html,
    /// The page repeats the previous page's last event first.
    Duplicate,
}

impl Fault {
    /// `KIND[xCOUNT][@FROM]`, e.g. `429x20@3` (requests 3–22 get 429), `503x5`,
    /// `truncate@2`, `htmlx100`, `stall:5`, `duplicatex1000`. KIND is `429` (or
    /// `429:SECONDS`), `500`/`502`/`503`/`504`, `401`/`403`, `truncate`, `reset`, `stall[:SECONDS]`,
    /// `html`, `duplicate`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let bad = || format!("`{spec}` is not a fault (KIND[xCOUNT][@FROM], e.g. 429x20@3)");
        let (rest, from) = match spec.split_once('@') {
            Some((r, f)) => (r, f.parse::<u64>().map_err(|_| bad())?),
            None => (spec, 1),
        };
        let (kind, count) = match rest.rsplit_once('x') {
            Some((k, c)) if c.chars().all(|ch| ch.is_ascii_digit()) && !c.is_empty() => {
                (k, c.parse::<u64>().map_err(|_| bad())?)
            }
            _ => (rest, 1),
        };
        let (name, arg) = match kind.split_once(':') {
            Some((n, a)) => (n, Some(a.parse::<u64>().map_err(|_| bad())?)),
            None => (kind, None),
        };
        let kind = match name {
            "429" => FaultKind::TooMany(arg.unwrap_or(1)),
            "500" | "502" | "503" | "504" => FaultKind::Status(name.parse().map_err(|_| bad())?),
            "401" | "403" => FaultKind::Auth(name.parse().map_err(|_| bad())?),
            "truncate" => FaultKind::Truncate,
            "reset" => FaultKind::Reset,
            "stall" => FaultKind::Stall(arg.unwrap_or(5)),
            "html" => FaultKind::Html,
            "duplicate" => FaultKind::Duplicate,
            _ => return Err(bad()),
        };
        if from == 0 {
            return Err(bad());
        }
        Ok(Fault { kind, from, count })
    }
}

/// A request as the fake saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seen {
    pub n: u64,
    pub path: String,
    pub query: String,
    /// xxh3 of the `Authorization` header value, hex (the header itself is not kept).
    pub auth_hash: Option<String>,
    pub status: u16,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: i64,
}

/// Fixed one-minute windows per path, as a gateway counts them.
struct Window {
    minute: i64,
    used: u32,
}

struct Shared {
    opts: Options,
    /// Sorted by (processed, id).
    store: RwLock<Vec<Stored>>,
    requests: AtomicU64,
    log: Mutex<Vec<Seen>>,
    windows: Mutex<HashMap<&'static str, Window>>,
}

/// A running fake API.
pub struct FakeApi {
    pub url: String,
    pub org: String,
    pub token: String,
    shared: Arc<Shared>,
    handle: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    /// Generate the events and listen on 127.0.0.1:`port` (0 picks a free port).
    pub async fn start(mut opts: Options, port: u16) -> std::io::Result<FakeApi> {
        let now = now_ms();
        let mut generator = Generator::new(GenConfig::new(
            opts.events,
            opts.days,
            now * 1000,
            opts.seed,
        ));
        if opts.org.is_empty() {
            opts.org = generator.org().to_owned();
        }
        if opts.token.is_empty() {
            let mut rng = crate::generate::Rng::new(opts.seed ^ 0x7070);
            opts.token = (0..4)
                .map(|_| format!("{:016x}", rng.next_u64()))
                .collect::<String>();
        }
        let mut store = Vec::with_capacity(opts.events as usize);
        let mut buf = Vec::new();
        while generator.write_next(&mut buf) {
            if let Some(s) = stored(std::mem::take(&mut buf)) {
                store.push(s);
            }
        }
        store.sort_by(|a, b| (a.processed, &a.id).cmp(&(b.processed, &b.id)));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: RwLock::new(store),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
            opts,
        });
        let app = Router::new()
            .route("/admin/v1/orgs/{org}/events", get(events))
            .route("/admin/v1/orgs/{org}/events-stream", get(stream))
            .route("/admin/v1/orgs/{org}/events/{id}", get(one_event))
            .route("/admin/v1/orgs/{org}/event-actions", get(event_actions))
            .route("/_fake/append", post(append))
            .route("/_fake/requests", get(requests))
            .route("/_fake/ids", get(ids))
            .with_state(shared.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeApi {
            url: format!("http://{addr}"),
            org: shared.opts.org.clone(),
            token: shared.opts.token.clone(),
            shared,
            handle,
        })
    }

    /// The ids of every event visible now, sorted.
    pub fn visible_ids(&self) -> Vec<String> {
        visible_ids(&self.shared)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Stop serving.
    pub fn stop(self) {
        self.handle.abort();
    }

    /// Serve until the task ends (for `auditq fake-api`).
    pub async fn wait(self) {
        let _ = self.handle.await;
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Index one generated event's JSON.
fn stored(json: Vec<u8>) -> Option<Stored> {
    let text = String::from_utf8(json).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let a = &v["attributes"];
    let ms = |k: &str| {
        a[k].as_str()
            .and_then(event::parse_time)
            .map(|us| us / 1000)
    };
    Some(Stored {
        id: v["id"].as_str()?.to_owned(),
        time: ms("time")?,
        processed: ms("processedAt")?,
        action: a["action"].as_str().unwrap_or_default().to_owned(),
        actor_id: a["actor"]["id"].as_str().unwrap_or_default().to_owned(),
        ip: a["location"]["ip"].as_str().unwrap_or_default().to_owned(),
        json: text.into_boxed_str(),
    })
}

fn visible(s: &Stored, now: i64, retention_days: i64) -> bool {
    s.processed <= now && s.time >= now - retention_days * MS_PER_DAY
}

fn visible_ids(shared: &Shared) -> Vec<String> {
    let now = now_ms();
    let store = shared.store.read().expect("store lock");
    let mut ids: Vec<String> = store
        .iter()
        .filter(|s| visible(s, now, shared.opts.retention_days))
        .map(|s| s.id.clone())
        .collect();
    ids.sort();
    ids
}

fn iso_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn iso_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%MZ")
        .to_string()
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn app_error(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    json_response(
        status,
        json!({"errors": [{"id": format!("{:x}", xxhash_rust::xxh3::xxh3_64(detail.as_bytes())),
            "status": status.as_u16().to_string(), "code": code, "title": title, "detail": detail}]}),
    )
}

/// What every API request goes through first: counting, faults, auth, org, rate limit.
/// `Err` is the answer to send instead.
struct Admitted {
    fault: Option<FaultKind>,
    rate_headers: Vec<(&'static str, String)>,
}

fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    org: &str,
    path_kind: &'static str,
) -> (u64, Result<Admitted, Response>) {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let fault = shared
        .opts
        .faults
        .iter()
        .find(|f| n >= f.from && n < f.from + f.count)
        .map(|f| f.kind.clone());
    if let Some(r) = refused(shared, headers, org, fault.as_ref()) {
        return (n, Err(r));
    }
    let now = now_ms();
    let rate_headers = match rate_limit(shared, path_kind, now) {
        Ok(h) => h,
        Err(r) => return (n, Err(*r)),
    };
    if let Some(r) = fault.as_ref().and_then(|f| faulted(f, now)) {
        return (n, Err(r));
    }
    (
        n,
        Ok(Admitted {
            fault,
            rate_headers,
        }),
    )
}

/// The answer to a request the key or the organization do not allow (or a fault says
/// so), if it is one.
fn refused(
    shared: &Shared,
    headers: &HeaderMap,
    org: &str,
    fault: Option<&FaultKind>,
) -> Option<Response> {
    let unauthorized = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "Unauthorized"}),
        )
    };
    match fault {
        Some(FaultKind::Auth(401)) => return Some(unauthorized()),
        Some(FaultKind::Auth(_)) => {
            return Some(app_error(
                StatusCode::FORBIDDEN,
                "ADMIN-403-3",
                "Forbidden",
                "You are not allowed to manage this organization",
            ));
        }
        _ => {}
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(shared.opts.token.as_str()) {
        return Some(unauthorized());
    }
    (org != shared.opts.org).then(|| {
        app_error(
            StatusCode::NOT_FOUND,
            "ADMIN-404-2",
            "Organization not found",
            "No organization with this id is visible to the key",
        )
    })
}

/// Count the request in its minute: the rate-limit headers to send, or a 429 when the
/// minute's requests are used up (10 a minute for events, 50 for the rest).
fn rate_limit(
    shared: &Shared,
    path_kind: &'static str,
    now: i64,
) -> Result<Vec<(&'static str, String)>, Box<Response>> {
    if !shared.opts.rate_limit {
        return Ok(Vec::new());
    }
    let limit: u32 = if path_kind == "events" { 10 } else { 50 };
    let minute = now / 60_000;
    let reset_ms = (minute + 1) * 60_000;
    let mut windows = shared.windows.lock().expect("windows lock");
    let w = windows
        .entry(path_kind)
        .or_insert(Window { minute, used: 0 });
    if w.minute != minute {
        *w = Window { minute, used: 0 };
    }
    let mut base = vec![
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-reset", iso_minute(reset_ms)),
    ];
    if w.used >= limit {
        let mut r = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"code": 429, "message": "Too many requests"}),
        );
        for (k, v) in base {
            r.headers_mut()
                .insert(k, HeaderValue::from_str(&v).expect("ascii"));
        }
        r.headers_mut()
            .insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let secs = ((reset_ms - now) as u64).div_ceil(1000);
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
        return Err(Box::new(r));
    }
    w.used += 1;
    base.push(("x-ratelimit-remaining", (limit - w.used).to_string()));
    Ok(base)
}

/// The answer a fault gives instead of a page (429, 5xx, an HTML page), if it does.
fn faulted(fault: &FaultKind, now: i64) -> Option<Response> {
    match *fault {
        FaultKind::TooMany(secs) => {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"code": 429, "message": "Too many requests"}),
            );
            let reset = now + secs as i64 * 1000;
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            r.headers_mut().insert(
                "x-ratelimit-reset",
                HeaderValue::from_str(&iso_seconds(reset)).expect("ascii"),
            );
            r.headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            Some(r)
        }
        FaultKind::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(if code == 500 {
                app_error(
                    status,
                    "ADMIN-500-1",
                    "Internal error",
                    "Something went wrong",
                )
            } else {
                (status, "<html><body>Bad gateway</body></html>").into_response()
            })
        }
        FaultKind::Html => {
            let mut r = (
                StatusCode::OK,
                "<!doctype html><html><body><h1>Sign in to the network</h1></body></html>",
            )
                .into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            Some(r)
        }
        _ => None,
    }
}

/// Record the request, apply body faults, and add the rate-limit headers.
/// One API request: admit it (count, faults, auth, org, rate limit), answer it with
/// `answer(shared, admitted, query, self_url)`, apply body faults and rate-limit headers,
/// and log it.
async fn serve(
    shared: &Shared,
    headers: &HeaderMap,
    org: &str,
    kind: &'static str,
    path: String,
    query: HashMap<String, String>,
    answer: impl FnOnce(&Shared, &Admitted, &HashMap<String, String>, String) -> Response,
) -> Response {
    let (n, admitted) = admit(shared, headers, org, kind);
    let self_url = format!("http://{}{path}", host(headers));
    let auth_hash = headers
        .get("authorization")
        .map(|v| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(v.as_bytes())));
    let mut logged: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    logged.sort();
    let at_ms = now_ms();
    let response = match admitted {
        Err(r) => r,
        Ok(a) => {
            if let Some(FaultKind::Stall(secs)) = a.fault {
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            let mut r = answer(shared, &a, &query, self_url);
            for (k, v) in &a.rate_headers {
                r.headers_mut()
                    .insert(*k, HeaderValue::from_str(v).expect("ascii"));
            }
            if a.fault == Some(FaultKind::Truncate) || a.fault == Some(FaultKind::Reset) {
                r = truncate(r, a.fault == Some(FaultKind::Reset)).await;
            }
            r
        }
    };
    shared.log.lock().expect("log lock").push(Seen {
        n,
        path,
        query: logged.join("&"),
        auth_hash,
        status: response.status().as_u16(),
        at_ms,
    });
    response
}

/// The same response, but the connection is cut after half the body (or, with `reset`,
/// before any of it).
async fn truncate(r: Response, reset: bool) -> Response {
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = if reset {
        bytes.slice(..0)
    } else {
        bytes.slice(..bytes.len() / 2)
    };
    let chunks = futures_util::stream::iter([Ok(half), Err(())]).then(move |c| async move {
        match c {
            Ok(b) => Ok(b),
            Err(()) => {
                // Let the headers and the first half reach the client before the cut.
                if !reset {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                ))
            }
        }
    });
    let mut r = Response::from_parts(parts, Body::from_stream(chunks));
    r.headers_mut().remove("content-length");
    r
}

/// An epoch-milliseconds parameter; `Err` for anything else.
fn parse_ms(v: Option<&String>) -> Result<Option<i64>, ()> {
    match v {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
            Ok(s.parse::<i64>().ok())
        }
        Some(_) => Err(()),
    }
}

/// `from` and `to` (epoch ms, each optional), or `None` if either is malformed.
fn time_window(q: &HashMap<String, String>) -> Option<(Option<i64>, Option<i64>)> {
    Some((parse_ms(q.get("from")).ok()?, parse_ms(q.get("to")).ok()?))
}

/// The `limit` parameter, `default` when absent or malformed, within 1..=`max`.
fn page_limit(q: &HashMap<String, String>, default: usize, max: usize) -> usize {
    q.get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

fn bad_time() -> Response {
    app_error(
        StatusCode::BAD_REQUEST,
        "ADMIN-400-3",
        "Invalid time date",
        "from and to must be UNIX epoch times in milliseconds",
    )
}

/// An opaque cursor: `kind|order|key-ms|key-id|to` in hex, with a check digit.
fn encode_cursor(kind: &str, order: &str, ms: i64, id: &str, to: Option<i64>) -> String {
    let text = format!(
        "{kind}|{order}|{ms}|{id}|{}",
        to.map(|t| t.to_string()).unwrap_or_default()
    );
    let check = xxhash_rust::xxh3::xxh3_64(text.as_bytes()) & 0xffff;
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}{check:04x}")
}

struct Cursor {
    order: String,
    ms: i64,
    id: String,
    to: Option<i64>,
}

fn decode_cursor(kind: &str, c: &str) -> Option<Cursor> {
    if c.len() < 6 || !c.is_ascii() || !c.len().is_multiple_of(2) {
        return None;
    }
    let (hex, check) = c.split_at(c.len() - 4);
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    if u64::from_str_radix(check, 16).ok()? != xxhash_rust::xxh3::xxh3_64(text.as_bytes()) & 0xffff
    {
        return None;
    }
    let mut parts = text.split('|');
    if parts.next()? != kind {
        return None;
    }
    let order = parts.next()?.to_owned();
    let ms = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_owned();
    let to = parts.next()?;
    let to = if to.is_empty() {
        None
    } else {
        Some(to.parse().ok()?)
    };
    Some(Cursor { order, ms, id, to })
}

fn bad_cursor() -> Response {
    app_error(
        StatusCode::BAD_REQUEST,
        "ADMIN-400-1",
        "Invalid page cursor",
        "The cursor is not valid for this request",
    )
}

fn page(
    data: Vec<&str>,
    next: Option<String>,
    page_size: usize,
    self_url: String,
    next_url: Option<String>,
) -> Response {
    let mut body = String::with_capacity(data.iter().map(|d| d.len() + 1).sum::<usize>() + 256);
    body.push_str("{\"data\":[");
    for (i, d) in data.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(d);
    }
    body.push_str("],\"meta\":");
    body.push_str(&json!({"next": next, "page_size": page_size}).to_string());
    body.push_str(",\"links\":");
    let links = match next_url {
        Some(n) => json!({"self": self_url, "next": n}),
        None => json!({"self": self_url}),
    };
    body.push_str(&links.to_string());
    body.push('}');
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

async fn stream(
    State(shared): State<Arc<Shared>>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/admin/v1/orgs/{org}/events-stream");
    serve(
        &shared,
        &headers,
        &org,
        "events-stream",
        path,
        q,
        |s, a, q, base| {
            let Some((from, to)) = time_window(q) else {
                return bad_time();
            };
            let limit = page_limit(q, 200, 500);
            let (desc, after, to) = match q.get("cursor") {
                Some(c) => match decode_cursor("s", c) {
                    Some(c) => (c.order == "desc", Some((c.ms, c.id)), c.to),
                    None => return bad_cursor(),
                },
                None => (q.get("sortOrder").is_some_and(|o| o == "desc"), None, to),
            };
            let now = now_ms();
            let store = s.store.read().expect("store lock");
            let ok = |e: &Stored| {
                visible(e, now, s.opts.retention_days)
                    && from.is_none_or(|f| e.processed >= f)
                    && to.is_none_or(|t| e.processed <= t)
            };
            let mut data: Vec<&Stored> = Vec::with_capacity(limit + 1);
            if desc {
                let end = match &after {
                    Some((ms, id)) => store.partition_point(|e| (e.processed, &e.id) < (*ms, id)),
                    None => store.len(),
                };
                for e in store[..end].iter().rev() {
                    if ok(e) {
                        data.push(e);
                        if data.len() == limit {
                            break;
                        }
                    }
                }
            } else {
                let start = match &after {
                    Some((ms, id)) => store.partition_point(|e| (e.processed, &e.id) <= (*ms, id)),
                    None => from.map_or(0, |f| store.partition_point(|e| e.processed < f)),
                };
                for e in &store[start..] {
                    if e.processed > now || to.is_some_and(|t| e.processed > t) {
                        break;
                    }
                    if ok(e) {
                        data.push(e);
                        if data.len() == limit {
                            break;
                        }
                    }
                }
                if a.fault == Some(FaultKind::Duplicate)
                    && let Some((ms, id)) = &after
                {
                    let at = store.partition_point(|e| (e.processed, &e.id) < (*ms, id));
                    if let Some(prev) = store.get(at).filter(|e| &e.id == id) {
                        data.insert(0, prev);
                    }
                }
            }
            let order = if desc { "desc" } else { "asc" };
            let next = data
                .last()
                .map(|e| encode_cursor("s", order, e.processed, &e.id, to));
            let next_url = next.as_ref().map(|c| format!("{base}?cursor={c}"));
            page(
                data.iter().map(|e| &*e.json).collect(),
                next,
                limit,
                base,
                next_url,
            )
        },
    )
    .await
}

async fn events(
    State(shared): State<Arc<Shared>>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/admin/v1/orgs/{org}/events");
    serve(
        &shared,
        &headers,
        &org,
        "events",
        path,
        q,
        |s, _, q, base| {
            let Some((from, to)) = time_window(q) else {
                return bad_time();
            };
            let limit = page_limit(q, 25, 100);
            let after = match q.get("cursor") {
                Some(c) => match decode_cursor("e", c) {
                    Some(c) => Some((c.ms, c.id)),
                    None => return bad_cursor(),
                },
                None => None,
            };
            let text = q.get("q").map(|t| t.to_lowercase());
            let now = now_ms();
            let store = s.store.read().expect("store lock");
            let mut hits: Vec<&Stored> = store
                .iter()
                .filter(|e| {
                    visible(e, now, s.opts.retention_days)
                        && from.is_none_or(|f| e.time >= f)
                        && to.is_none_or(|t| e.time <= t)
                        && q.get("action").is_none_or(|a| &e.action == a)
                        && q.get("actor").is_none_or(|a| &e.actor_id == a)
                        && q.get("ip").is_none_or(|ip| &e.ip == ip)
                        && text
                            .as_ref()
                            .is_none_or(|t| e.json.to_lowercase().contains(t.as_str()))
                        && after
                            .as_ref()
                            .is_none_or(|(ms, id)| (e.time, &e.id) < (*ms, id))
                })
                .collect();
            hits.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
            let more = hits.len() > limit;
            hits.truncate(limit);
            let next = more
                .then(|| {
                    hits.last()
                        .map(|e| encode_cursor("e", "desc", e.time, &e.id, None))
                })
                .flatten();
            let next_url = next.as_ref().map(|c| format!("{base}?cursor={c}"));
            page(
                hits.iter().map(|e| &*e.json).collect(),
                next,
                limit,
                base,
                next_url,
            )
        },
    )
    .await
}

async fn one_event(
    State(shared): State<Arc<Shared>>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/admin/v1/orgs/{org}/events/{id}");
    serve(
        &shared,
        &headers,
        &org,
        "event",
        path,
        HashMap::new(),
        |s, _, _, _| {
            let now = now_ms();
            let store = s.store.read().expect("store lock");
            match store
                .iter()
                .find(|e| e.id == id && visible(e, now, s.opts.retention_days))
            {
                Some(e) => {
                    let mut r =
                        (StatusCode::OK, format!("{{\"data\":{}}}", e.json)).into_response();
                    r.headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/json"));
                    r
                }
                None => app_error(
                    StatusCode::NOT_FOUND,
                    "ADMIN-404-4",
                    "Event not found",
                    "No such event in this organization",
                ),
            }
        },
    )
    .await
}

async fn event_actions(
    State(shared): State<Arc<Shared>>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/admin/v1/orgs/{org}/event-actions");
    serve(
        &shared,
        &headers,
        &org,
        "event-actions",
        path,
        HashMap::new(),
        |_, _, _, _| {
            let data: Vec<serde_json::Value> = action_keys()
                .map(|a| {
                    let mut name = a.replace('_', " ");
                    if let Some(first) = name.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    json!({"id": a, "type": "event-actions", "attributes": {"displayName": name}})
                })
                .collect();
            json_response(StatusCode::OK, json!({ "data": data }))
        },
    )
    .await
}

/// `POST /_fake/append?n=N&late_minutes=M`: N new events processed now, their `time`
/// M minutes ago (late events land in days already synced).
async fn append(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let n: u64 = q.get("n").and_then(|v| v.parse().ok()).unwrap_or(1);
    let late: i64 = q
        .get("late_minutes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let now = now_ms();
    let seed = shared.requests.load(Ordering::SeqCst) ^ now as u64;
    let mut fresh = Generator::new(GenConfig::new(n, 1, (now - late * 60_000) * 1000, seed));
    let mut added = Vec::new();
    let mut buf = Vec::new();
    while fresh.write_next(&mut buf) {
        let text = String::from_utf8(std::mem::take(&mut buf)).unwrap_or_default();
        // Processed now (a few ms apart, in order), whatever the generator chose.
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let t = now - late * 60_000 - (n as i64 - added.len() as i64);
        v["attributes"]["time"] = json!(event::format_time(t * 1000));
        v["attributes"]["processedAt"] = json!(event::format_time(now * 1000));
        if let Some(s) = stored(v.to_string().into_bytes()) {
            added.push(s);
        }
    }
    let ids: Vec<String> = added.iter().map(|s| s.id.clone()).collect();
    let mut store = shared.store.write().expect("store lock");
    store.extend(added);
    store.sort_by(|a, b| (a.processed, &a.id).cmp(&(b.processed, &b.id)));
    json_response(StatusCode::OK, json!({ "added": ids }))
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let log = shared.log.lock().expect("log lock").clone();
    json_response(
        StatusCode::OK,
        serde_json::to_value(log).unwrap_or_default(),
    )
}

async fn ids(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, json!(visible_ids(&shared)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs() {
        assert_eq!(
            Fault::parse("429x20@3").unwrap(),
            Fault {
                kind: FaultKind::TooMany(1),
                from: 3,
                count: 20
            }
        );
        assert_eq!(Fault::parse("429:7").unwrap().kind, FaultKind::TooMany(7));
        assert_eq!(Fault::parse("503x5").unwrap().count, 5);
        assert_eq!(Fault::parse("stall:2@4").unwrap().kind, FaultKind::Stall(2));
        assert_eq!(
            Fault::parse("duplicatex1000").unwrap().kind,
            FaultKind::Duplicate
        );
        for bad in ["", "418", "429x", "429@0", "htmlx1@x", "stall:soon"] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("s", "asc", 1_700_000_000_000, "abc-1", Some(5));
        let d = decode_cursor("s", &c).unwrap();
        assert_eq!(
            (d.order.as_str(), d.ms, d.id.as_str(), d.to),
            ("asc", 1_700_000_000_000, "abc-1", Some(5))
        );
        assert!(decode_cursor("e", &c).is_none());
        let mut flipped = c.clone().into_bytes();
        flipped[3] = if flipped[3] == b'0' { b'1' } else { b'0' };
        assert!(decode_cursor("s", std::str::from_utf8(&flipped).unwrap()).is_none());
        assert!(decode_cursor("s", "not-a-cursor").is_none());
    }
}
