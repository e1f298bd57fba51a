//! The Atlassian Admin API client: Bearer auth, cursor pages, rate limits and retries.
//!
//! - 429: wait until the later of `Retry-After` (seconds or HTTP date) and
//!   `X-RateLimit-Reset` (ISO 8601), else back off; a 2xx with `X-RateLimit-Remaining: 0`
//!   pauses until the reset before the next request.
//! - 5xx (not 501), connection errors, timeouts, cut bodies and unparseable pages: retried
//!   with exponential backoff and full jitter, up to [`Limits::attempts`].
//! - 401/403/404: fail at once, saying what to check.
//! - No redirect is followed (the token never goes to another origin); bodies are capped;
//!   idle and total timeouts per request.
//! - The token lives in [`Secret`], whose `Debug` and `Display` print `***`; errors are
//!   built from the status and path, never from the request or its headers.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

/// A secret string: never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the API refused the key (HTTP {status} on {path}): check that ATLASSIAN_API_KEY (or --token-file) holds a current organization API key — keys expire after a week by default and at most a year"
    )]
    Auth { status: u16, path: String },
    #[error(
        "the API refused access to the audit log (HTTP 403 on {path}): the key must belong to an organization admin, and the organization needs Atlassian Guard Standard or better"
    )]
    Forbidden { path: String },
    #[error(
        "organization not found (HTTP 404 on {path}): check --org (the organization id shown beside the API key in admin.atlassian.com)"
    )]
    OrgNotFound { path: String },
    #[error("HTTP {status} on {path}: {detail}")]
    Rejected {
        status: u16,
        path: String,
        detail: String,
    },
    #[error("{path}: gave up after {attempts} attempts; last: {last} (temporary; run again later)")]
    GaveUp {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("{path}: the page could not be read after {attempts} attempts ({why})")]
    BadPage {
        path: String,
        attempts: u32,
        why: String,
        /// The last body received, for the quarantine.
        body: Vec<u8>,
    },
    #[error("invalid API URL `{0}`")]
    Url(String),
    #[error("interrupted")]
    Interrupted,
}

/// Retry and size limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Attempts per request for retryable failures (5xx, network, bad bodies).
    pub attempts: u32,
    /// Longest single wait for a rate limit.
    pub max_rate_wait: Duration,
    /// Total time spent waiting on rate limits before giving up.
    pub rate_budget: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub total_timeout: Duration,
    /// No byte for this long: the request fails.
    pub idle_timeout: Duration,
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            attempts: 6,
            max_rate_wait: Duration::from_secs(15 * 60),
            rate_budget: Duration::from_secs(60 * 60),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30),
            max_body: 64 << 20,
        }
    }
}

/// A page of events: each event's raw JSON, and the cursor for the next page.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<Box<serde_json::value::RawValue>>,
    pub next: Option<String>,
    pub bytes: usize,
}

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Vec<Box<serde_json::value::RawValue>>>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(serde::Deserialize)]
struct Meta {
    #[serde(default)]
    next: Option<String>,
}

/// What the client is doing, for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub requests: u64,
    pub retries: u64,
    /// Until when it waits for a rate limit (ms since the epoch), if it does.
    pub rate_wait_until: Option<i64>,
}

pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    org: String,
    token: Secret,
    limits: Limits,
    rng: crate::rng::Rng,
    /// Not before this instant (a rate-limit reset announced by the server).
    not_before: Option<tokio::time::Instant>,
    rate_waited: Duration,
    pub status: std::sync::Arc<std::sync::Mutex<Status>>,
}

fn path_of(url: &url::Url) -> String {
    url.path().to_owned()
}

impl Client {
    /// `base` is the API root (`https://api.atlassian.com`); paths are `/admin/v1/…`.
    pub fn new(base: &str, org: &str, token: Secret, limits: Limits) -> Result<Client, ApiError> {
        let base = url::Url::parse(base).map_err(|_| ApiError::Url(base.to_owned()))?;
        let loopback = base
            .host_str()
            .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
        if base.scheme() != "https" && !(base.scheme() == "http" && loopback) {
            return Err(ApiError::Url(format!(
                "{base} (only https, or http to this machine)"
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.total_timeout)
            .read_timeout(limits.idle_timeout)
            .user_agent(concat!("auditq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Url(format!("building the HTTP client: {e}")))?;
        let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        Ok(Client {
            http,
            base,
            org: org.to_owned(),
            token,
            limits,
            rng: crate::rng::Rng::new(seed),
            not_before: None,
            rate_waited: Duration::ZERO,
            status: Default::default(),
        })
    }

    /// `/admin/v1/orgs/{org}/events-stream` with these query parameters.
    pub fn stream_url(&self, params: &[(&str, String)]) -> Result<url::Url, ApiError> {
        let mut u = self
            .base
            .join(&format!("/admin/v1/orgs/{}/events-stream", self.org))
            .map_err(|_| ApiError::Url(self.base.to_string()))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let exp = self
            .limits
            .backoff_base
            .saturating_mul(1 << attempt.min(16))
            .min(self.limits.backoff_cap);
        exp.mul_f64(self.rng.unit())
    }

    async fn pause_until(&mut self, until: tokio::time::Instant) {
        let now = tokio::time::Instant::now();
        if until > now {
            let wall = chrono::Utc::now().timestamp_millis() + (until - now).as_millis() as i64;
            self.status.lock().expect("status lock").rate_wait_until = Some(wall);
            tokio::time::sleep_until(until).await;
            self.status.lock().expect("status lock").rate_wait_until = None;
        }
    }

    /// GET one page, with retries.
    pub async fn page(&mut self, url: &url::Url) -> Result<Page, ApiError> {
        let path = path_of(url);
        let mut attempt = 0u32;
        let mut last = String::new();
        let mut last_body: Option<(String, Vec<u8>)> = None;
        loop {
            if let Some(t) = self.not_before.take() {
                self.pause_until(t).await;
            }
            if attempt >= self.limits.attempts {
                return Err(match last_body {
                    Some((why, body)) => ApiError::BadPage {
                        path,
                        attempts: attempt,
                        why,
                        body,
                    },
                    None => ApiError::GaveUp {
                        path,
                        attempts: attempt,
                        last,
                    },
                });
            }
            if attempt > 0 {
                self.status.lock().expect("status lock").retries += 1;
            }
            let resp = match self.get(url, &path).await? {
                Ok(r) => r,
                Err(why) => {
                    last = why;
                    self.back_off(&mut attempt).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            match status {
                200..=299 => {}
                401 => return Err(ApiError::Auth { status, path }),
                403 => return Err(ApiError::Forbidden { path }),
                404 => return Err(ApiError::OrgNotFound { path }),
                429 => {
                    self.rate_limited(&headers, attempt, &path)?;
                    continue;
                }
                500 | 502..=599 => {
                    last = format!("HTTP {status}");
                    self.back_off(&mut attempt).await;
                    continue;
                }
                _ => {
                    let body = read_capped(resp, self.limits.max_body)
                        .await
                        .unwrap_or_default();
                    return Err(ApiError::Rejected {
                        status,
                        path,
                        detail: error_detail(&body),
                    });
                }
            }
            let is_json = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("json"));
            // A page cut short, or one that does not read, is kept, in case it never
            // arrives whole.
            let (why, body) = match read_capped(resp, self.limits.max_body).await {
                Ok(body) => match page_of(is_json, &body) {
                    Ok(page) => return Ok(page),
                    Err(why) => (why, body),
                },
                Err((why, partial)) => (why, partial),
            };
            last = why.clone();
            last_body = Some((why, body));
            self.back_off(&mut attempt).await;
        }
    }

    /// One GET of `url` with the key, logged without it (the path and query only): the
    /// response, or why there was none.
    async fn get(
        &mut self,
        url: &url::Url,
        path: &str,
    ) -> Result<Result<reqwest::Response, String>, ApiError> {
        self.status.lock().expect("status lock").requests += 1;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
            .map_err(|_| ApiError::Url("the API key holds characters a header cannot".into()))?;
        auth.set_sensitive(true);
        let sent = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, auth)
            .header("accept", "application/json")
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Ok(Err(describe(&e))),
        };
        tracing::info!(
            target: "auditq::api",
            "GET {path} -> {} (rate limit remaining: {})",
            resp.status().as_u16(),
            resp.headers()
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        );
        self.note_remaining(&resp.headers().clone());
        Ok(Ok(resp))
    }

    /// A 429: wait as the server says (or back off), within the budget for waiting.
    fn rate_limited(
        &mut self,
        headers: &HeaderMap,
        attempt: u32,
        path: &str,
    ) -> Result<(), ApiError> {
        let wait = rate_wait(headers)
            .unwrap_or_else(|| self.backoff(attempt.max(1)))
            .min(self.limits.max_rate_wait);
        self.rate_waited += wait;
        if self.rate_waited > self.limits.rate_budget {
            return Err(ApiError::GaveUp {
                path: path.to_owned(),
                attempts: attempt + 1,
                last: "rate limited (HTTP 429) beyond the wait budget".into(),
            });
        }
        // A little jitter after the reset, so many clients do not stampede.
        let jitter = Duration::from_millis(self.rng.below(250));
        self.not_before = Some(tokio::time::Instant::now() + wait + jitter);
        Ok(())
    }

    /// Wait before the next attempt (exponential backoff), counting it.
    async fn back_off(&mut self, attempt: &mut u32) {
        let wait = self.backoff(*attempt);
        *attempt += 1;
        tokio::time::sleep(wait).await;
    }

    /// After a 2xx with `X-RateLimit-Remaining: 0`, wait for the reset first.
    fn note_remaining(&mut self, headers: &HeaderMap) {
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        if remaining == Some(0)
            && let Some(wait) = reset_wait(headers)
        {
            let wait = wait.min(self.limits.max_rate_wait);
            self.not_before = Some(tokio::time::Instant::now() + wait);
        }
    }
}

/// A transport error in words, without the URL (which could carry a cursor) or headers.
/// A page from its body, or why it is none.
fn page_of(is_json: bool, body: &[u8]) -> Result<Page, String> {
    if !is_json {
        return Err("not JSON (an HTML page from a proxy or captive portal?)".to_owned());
    }
    let env = serde_json::from_slice::<Envelope>(body).map_err(|e| format!("not a page: {e}"))?;
    Ok(Page {
        events: env.data.unwrap_or_default(),
        next: env.meta.and_then(|m| m.next).filter(|n| !n.is_empty()),
        bytes: body.len(),
    })
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut short"
    } else {
        "the connection failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({detail})")
    }
}

/// The body, at most `cap` bytes; on failure, why and the bytes read so far.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, (String, Vec<u8>)> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > cap {
                    return Err((format!("the body exceeds {} MiB", cap >> 20), body));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err((describe(&e), body)),
        }
    }
}

/// The `detail` of an application error body, or its first 200 characters.
fn error_detail(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(e) = v.as_ref().and_then(|v| v["errors"].get(0)) {
        return format!(
            "{} {}",
            e["code"].as_str().unwrap_or_default(),
            e["detail"]
                .as_str()
                .or(e["title"].as_str())
                .unwrap_or_default()
        )
        .trim()
        .to_owned();
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// How long a 429 asks to wait: the later of `Retry-After` and `X-RateLimit-Reset`.
pub fn rate_wait(headers: &HeaderMap) -> Option<Duration> {
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            match v.parse::<u64>() {
                Ok(s) => Some(Duration::from_secs(s)),
                Err(_) => chrono::DateTime::parse_from_rfc2822(v)
                    .ok()
                    .map(|t| until(t.timestamp_millis())),
            }
        });
    match (retry_after, reset_wait(headers)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The wait until `X-RateLimit-Reset` (ISO 8601, seconds or minute precision).
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let ms = chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| t.timestamp_millis())
        .or_else(|| {
            // `2025-09-03T15:02Z`: minute precision.
            let t = v.strip_suffix('Z')?;
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        })?;
    Some(until(ms))
}

fn until(ms: i64) -> Duration {
    let now = chrono::Utc::now().timestamp_millis();
    Duration::from_millis((ms - now).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_waits_take_the_later_header() {
        let h = headers(&[("retry-after", "5".into())]);
        assert_eq!(rate_wait(&h), Some(Duration::from_secs(5)));
        let in_90s = chrono::Utc::now() + chrono::Duration::seconds(90);
        let h = headers(&[
            ("retry-after", "5".into()),
            (
                "x-ratelimit-reset",
                in_90s.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
        ]);
        let w = rate_wait(&h).unwrap();
        assert!(
            w > Duration::from_secs(85) && w <= Duration::from_secs(90),
            "{w:?}"
        );
        // HTTP date in the past: no wait.
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".into())]);
        assert_eq!(rate_wait(&h), Some(Duration::ZERO));
        // Minute precision.
        let next_minute = chrono::Utc::now() + chrono::Duration::seconds(60);
        let h = headers(&[(
            "x-ratelimit-reset",
            next_minute.format("%Y-%m-%dT%H:%MZ").to_string(),
        )]);
        assert!(rate_wait(&h).unwrap() <= Duration::from_secs(60));
        assert_eq!(rate_wait(&headers(&[("retry-after", "soon".into())])), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("canary-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        let c = |u: &str| Client::new(u, "o", Secret::new("t"), Limits::default()).is_ok();
        assert!(c("http://127.0.0.1:9") && c("https://api.atlassian.com"));
        assert!(!c("http://api.atlassian.com") && !c("ftp://127.0.0.1"));
    }
}
