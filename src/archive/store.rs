//! Archives on object storage (`s3://bucket/prefix`).
//!
//! The table itself is read and written by delta-rs and DataFusion through one
//! `object_store` client (conditional put, `If-None-Match: *`, makes a commit of version
//! N+1 fail when another writer created it first). What auditq keeps beside the table —
//! the checksums of data files, the quarantine — are objects under the same prefix; its
//! caches are kept on the local disk under `$XDG_CACHE_HOME/auditq/<table id>/`.
//!
//! The archive's own bookkeeping is synchronous code (it reads a few small objects or
//! the column chunks of one file at a time). It waits for object-store requests that
//! run on one I/O runtime of their own, so it works from any thread: a runtime worker
//! (it steps aside with `block_in_place`), a plain thread, or no runtime at all.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use datafusion::object_store::path::Path as ObjPath;
use datafusion::object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use datafusion::parquet::file::reader::{ChunkReader, Length};
use futures_util::StreamExt;

/// How to reach an S3 (or S3-compatible) store, beyond the standard AWS environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    /// `http(s)://host:port` of an S3-compatible store (else `AWS_ENDPOINT_URL`, else AWS).
    pub endpoint: Option<String>,
    /// The bucket's region (else `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile's).
    pub region: Option<String>,
    /// Allow a plain-http endpoint that is not on this machine.
    #[serde(default)]
    pub allow_http: bool,
    /// `bucket.host/key` requests instead of the default `host/bucket/key`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// Send each upload's checksums, `x-amz-checksum-sha256` and `Content-MD5`: for
    /// published checkpoints. A bucket whose Object Lock has a default retention refuses
    /// an upload without `Content-MD5` (or `x-amz-sdk-checksum-algorithm`).
    #[serde(skip)]
    pub checksums: bool,
}

/// Why an object-store archive cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the archive `{url}` needs a bucket: `s3://BUCKET/PREFIX`")]
    NoBucket { url: String },
    #[error(
        "the endpoint `{endpoint}` is plain http to another machine: credentials and events would cross the network unencrypted; use https, or pass --allow-http if that network is trusted"
    )]
    PlainHttp { endpoint: String },
    #[error("the archive `{url}`: {message}")]
    Store { url: String, message: String },
    #[error(
        "the archive `{url}` has credentials in its URL; they are not read from there (URLs end up in shell history, logs and process lists): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use a profile"
    )]
    Credentials { url: String },
}

/// `text` (a URL) with whatever stands between `://` and an `@` before the path
/// replaced by `***`: what is shown of an archive URL in messages.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..scheme_end], &rest[at..]),
        None => text.to_owned(),
    }
}

/// An archive under `s3://bucket/prefix/`.
#[derive(Debug)]
pub struct Remote {
    /// `s3://bucket/prefix/` (always with the trailing slash).
    pub url: url::Url,
    /// The client, rooted at the bucket.
    pub store: Arc<dyn ObjectStore>,
    /// The archive's prefix inside the bucket.
    prefix: ObjPath,
    /// The Delta table's id, once the table has been opened: it names the local cache.
    table_id: OnceLock<String>,
    /// The last listing of the table's objects, and when it was taken.
    listing: Mutex<Option<(std::time::Instant, Listing)>>,
}

/// The objects under the table (paths relative to it) with their metadata.
pub type Listing = Arc<std::collections::HashMap<String, ObjectMeta>>;

/// How long a listing of the table answers "which files are there, how large": within
/// one command, where the same listing serves several checks. A file missing from it
/// is looked for again in a fresh listing before anything is concluded.
const LISTING_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// A name after every `_delta_log/…` object and before every `date=…` directory
/// (`/` < `0` < `d`; `_` < `d`).
const AFTER_LOG: &str = "_delta_log0";

impl Remote {
    /// Open the archive at `url` (`s3://bucket/prefix`): the standard AWS credential
    /// chain (environment, `~/.aws` profile, web identity, container and instance
    /// metadata) plus `options`.
    pub fn open(url: &url::Url, options: &S3Options) -> Result<Remote, OpenError> {
        let text = redact_url(url.as_str());
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OpenError::Credentials { url: text });
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or(OpenError::NoBucket { url: text.clone() })?
            .to_owned();
        let mut builder = object_store_s3_builder(options)?;
        builder = builder.with_bucket_name(&bucket);
        let store = builder.build().map_err(|e| OpenError::Store {
            url: text.clone(),
            message: e.to_string(),
        })?;
        let prefix = url.path().trim_matches('/');
        let mut root = url::Url::parse(&format!("s3://{bucket}/")).expect("a bucket URL parses");
        if !prefix.is_empty() {
            root.set_path(&format!("/{prefix}/"));
        }
        Ok(Remote {
            url: root,
            store: Arc::new(store),
            prefix: ObjPath::from(prefix),
            table_id: OnceLock::new(),
            listing: Mutex::default(),
        })
    }

    /// `s3://bucket`: where DataFusion finds this store.
    pub fn bucket_url(&self) -> url::Url {
        let mut u = self.url.clone();
        u.set_path("/");
        u
    }

    /// The URL of the table (`…/events/`).
    pub fn table_url(&self) -> url::Url {
        self.url.join("events/").expect("a relative path joins")
    }

    /// The object `rel` (relative to the archive, `/`-separated).
    pub fn path(&self, rel: &str) -> ObjPath {
        self.prefix
            .parts()
            .chain(ObjPath::from(rel).parts())
            .collect()
    }

    /// Where this archive's caches live on this machine, once its table id is known.
    pub fn cache_dir(&self) -> Option<std::path::PathBuf> {
        let id = self.table_id.get()?;
        Some(cache_home().join("auditq").join(id))
    }

    pub fn set_table_id(&self, id: &str) {
        let _ = self.table_id.set(id.to_owned());
    }

    /// The object `rel`, or `None` when there is none.
    pub fn get(&self, rel: &str) -> std::io::Result<Option<Bytes>> {
        let (store, path) = (self.store.clone(), self.path(rel));
        wait(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(io_error)
    }

    /// Write the object `rel` whole (readers see the old one or the new one).
    pub fn put(&self, rel: &str, bytes: Bytes) -> std::io::Result<()> {
        let (store, path) = (self.store.clone(), self.path(rel));
        wait(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map(|_| ())
            .map_err(io_error)
    }

    /// Create the object `rel` unless it exists; `false` when it did.
    pub fn put_if_absent(&self, rel: &str, bytes: Bytes) -> std::io::Result<bool> {
        let (store, path) = (self.store.clone(), self.path(rel));
        match wait(async move {
            store
                .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into())
                .await
        }) {
            Ok(_) => Ok(true),
            Err(datafusion::object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Remove the object `rel` (no error when there is none).
    pub fn delete(&self, rel: &str) -> std::io::Result<()> {
        let (store, path) = (self.store.clone(), self.path(rel));
        match wait(async move { store.delete(&path).await }) {
            Ok(()) | Err(datafusion::object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Every object under `rel` (a directory-like prefix), with paths relative to it.
    pub fn list(&self, rel: &str) -> std::io::Result<Vec<(String, ObjectMeta)>> {
        self.list_from(rel, None)
    }

    /// [`list`](Self::list), from the names after `after` (relative to `rel`) on.
    fn list_from(
        &self,
        rel: &str,
        after: Option<&str>,
    ) -> std::io::Result<Vec<(String, ObjectMeta)>> {
        let base = self.path(rel);
        let objects = match after {
            Some(after) => {
                let offset = self.path(&format!("{rel}/{after}"));
                listed(self.store.list_with_offset(Some(&base), &offset))?
            }
            None => listed(self.store.list(Some(&base)))?,
        };
        Ok(objects
            .into_iter()
            .filter_map(|m| {
                let rel = m.location.prefix_match(&base)?;
                let rel = rel.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>();
                Some((rel.join("/"), m))
            })
            .collect())
    }

    /// The table's data files (relative to `events/`): a listing at most `LISTING_AGE`
    /// old, or a fresh one when `fresh`. The log, which grows with every commit, is
    /// left out: `_delta_log/` sorts before the `date=` directories, and the listing
    /// starts after it (a year of syncs: 39,000 log objects against 370 data files).
    pub fn table_listing(&self, fresh: bool) -> std::io::Result<Listing> {
        let mut kept = self.listing.lock().expect("not poisoned");
        if !fresh
            && let Some((at, listing)) = kept.as_ref()
            && at.elapsed() < LISTING_AGE
        {
            return Ok(listing.clone());
        }
        let listing = self.list_from("events", Some(AFTER_LOG))?;
        let listing: Listing = Arc::new(listing.into_iter().collect());
        *kept = Some((std::time::Instant::now(), listing.clone()));
        Ok(listing)
    }

    /// The names in `dir` (relative to the archive) that sort after `after`.
    pub fn list_after(&self, dir: &str, after: &str) -> std::io::Result<Vec<String>> {
        let offset = self.path(&format!("{dir}/{after}"));
        Ok(
            listed(self.store.list_with_offset(Some(&self.path(dir)), &offset))?
                .into_iter()
                .filter_map(|m| m.location.filename().map(str::to_owned))
                .collect(),
        )
    }

    /// Byte ranges of several objects (relative to the archive), up to 16 objects at once.
    pub fn get_ranges_of(
        &self,
        wanted: Vec<(String, Vec<std::ops::Range<u64>>)>,
    ) -> Vec<std::io::Result<Vec<Bytes>>> {
        let store = self.store.clone();
        let wanted: Vec<_> = wanted
            .into_iter()
            .map(|(rel, ranges)| (self.path(&rel), ranges))
            .collect();
        wait(async move {
            futures_util::stream::iter(wanted)
                .map(|(path, ranges)| {
                    let store = store.clone();
                    async move { store.get_ranges(&path, &ranges).await }
                })
                .buffered(16)
                .collect::<Vec<_>>()
                .await
        })
        .into_iter()
        .map(|r| r.map_err(io_error))
        .collect()
    }

    /// The object `rel`'s metadata, or `None` when there is none.
    pub fn head(&self, rel: &str) -> std::io::Result<Option<ObjectMeta>> {
        let (store, path) = (self.store.clone(), self.path(rel));
        match wait(async move { store.head(&path).await }) {
            Ok(m) => Ok(Some(m)),
            Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// The bytes `range` of the object `rel`.
    pub fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> std::io::Result<Bytes> {
        let (store, path) = (self.store.clone(), self.path(rel));
        wait(async move { store.get_range(&path, range).await }).map_err(io_error)
    }

    /// Several ranges of the object `rel`, fetched concurrently.
    pub fn get_ranges(
        &self,
        rel: &str,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> std::io::Result<Vec<Bytes>> {
        let (store, path) = (self.store.clone(), self.path(rel));
        wait(async move { store.get_ranges(&path, &ranges).await }).map_err(io_error)
    }
}

/// Commits to `s3://` tables go through delta-rs's default log store: a commit is a
/// conditional put (`PutMode::Create`), which fails when the version exists.
pub fn register_log_store() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let url = url::Url::parse("s3://").expect("a scheme URL parses");
        deltalake::logstore::logstore_factories().insert(url, Arc::new(ConditionalPut));
    });
}

struct ConditionalPut;

impl deltalake::logstore::LogStoreFactory for ConditionalPut {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &url::Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// All the objects a listing yields, or its first error.
fn listed(
    stream: futures_util::stream::BoxStream<'static, datafusion::object_store::Result<ObjectMeta>>,
) -> std::io::Result<Vec<ObjectMeta>> {
    wait(async move {
        stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(io_error)
}

/// The S3 client's settings: `AWS_*` from the environment, the profile's static keys
/// and region when the environment has none, then `options`.
fn object_store_s3_builder(
    options: &S3Options,
) -> Result<datafusion::object_store::aws::AmazonS3Builder, OpenError> {
    use datafusion::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let mut b = AmazonS3Builder::from_env();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID").is_none()
        && let Some(p) = profile::load()
    {
        if let (Some(id), Some(secret)) = (p.access_key_id, p.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = p.session_token {
                b = b.with_token(token);
            }
        }
        if env("AWS_REGION").or(env("AWS_DEFAULT_REGION")).is_none()
            && let Some(region) = p.region
        {
            b = b.with_region(region);
        }
    }
    if let Some(region) = &options.region {
        b = b.with_region(region);
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region("us-east-1");
    }
    if let Some(endpoint) = &options.endpoint {
        b = b.with_endpoint(endpoint.trim_end_matches('/'));
    }
    if options.checksums {
        b = b
            .with_checksum_algorithm(datafusion::object_store::aws::Checksum::SHA256)
            .with_http_connector(ContentMd5);
    }
    if options.virtual_hosted_style {
        b = b.with_virtual_hosted_style_request(true);
    }
    if let Some(endpoint) = b
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .filter(|e| e.starts_with("http://"))
    {
        let loopback = url::Url::parse(&endpoint)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
            .is_some_and(|h| match h {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(a) => a.is_loopback(),
                url::Host::Ipv6(a) => a.is_loopback(),
            });
        if !loopback && !options.allow_http {
            return Err(OpenError::PlainHttp { endpoint });
        }
        b = b.with_allow_http(true);
    }
    Ok(b)
}

/// An HTTP client that adds `Content-MD5` to every upload (a PUT with a body): what S3
/// asks of an upload to a bucket whose Object Lock has a default retention. The object
/// store client signs a request before it reaches this client; `Content-MD5`, unlike an
/// `x-amz-*` header, need not be signed.
#[derive(Debug, Default)]
struct ContentMd5;

impl datafusion::object_store::client::HttpConnector for ContentMd5 {
    fn connect(
        &self,
        options: &datafusion::object_store::ClientOptions,
    ) -> datafusion::object_store::Result<datafusion::object_store::client::HttpClient> {
        use datafusion::object_store::client::{HttpClient, ReqwestConnector};
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(WithContentMd5(inner)))
    }
}

#[derive(Debug)]
struct WithContentMd5(datafusion::object_store::client::HttpClient);

#[async_trait::async_trait]
impl datafusion::object_store::client::HttpService for WithContentMd5 {
    async fn call(
        &self,
        mut request: datafusion::object_store::client::HttpRequest,
    ) -> Result<
        datafusion::object_store::client::HttpResponse,
        datafusion::object_store::client::HttpError,
    > {
        use base64::Engine as _;
        use http_body_util::BodyExt as _;
        use md5::Digest as _;
        // (`HttpRequestBody::is_empty` answers the opposite for a payload: ask its length.)
        if request.method() == "PUT" && request.body().content_length() > 0 {
            // The body is in memory (a payload is a list of buffers): its frames are at hand.
            let body = request.body().clone().collect().await?.to_bytes();
            let digest = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
            let value = reqwest::header::HeaderValue::from_str(&digest)
                .expect("base64 is a valid header value");
            request.headers_mut().insert("content-md5", value);
        }
        self.0.execute(request).await
    }
}

/// The static credentials and region of the AWS profile (`AWS_PROFILE`, else
/// `default`) from `~/.aws/credentials` and `~/.aws/config`.
mod profile {
    #[derive(Debug, Default)]
    pub struct Profile {
        pub access_key_id: Option<String>,
        pub secret_access_key: Option<String>,
        pub session_token: Option<String>,
        pub region: Option<String>,
    }

    pub fn load() -> Option<Profile> {
        let home = std::path::PathBuf::from(std::env::var_os("HOME")?);
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map(Into::into)
            .unwrap_or_else(|| home.join(".aws/credentials"));
        let config = std::env::var_os("AWS_CONFIG_FILE")
            .map(Into::into)
            .unwrap_or_else(|| home.join(".aws/config"));
        let mut p = Profile::default();
        let mut found = false;
        if let Ok(text) = std::fs::read_to_string(credentials) {
            for (k, v) in section(&text, &name) {
                found = true;
                match k.as_str() {
                    "aws_access_key_id" => p.access_key_id = Some(v),
                    "aws_secret_access_key" => p.secret_access_key = Some(v),
                    "aws_session_token" => p.session_token = Some(v),
                    _ => {}
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(config) {
            let header = if name == "default" {
                name.clone()
            } else {
                format!("profile {name}")
            };
            for (k, v) in section(&text, &header) {
                found = true;
                if k == "region" {
                    p.region = Some(v);
                }
            }
        }
        found.then_some(p)
    }

    /// The `key = value` lines of the INI section `[name]`.
    pub fn section(text: &str, name: &str) -> Vec<(String, String)> {
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = header.trim() == name;
                continue;
            }
            if inside && let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        out
    }
}

fn cache_home() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .map(|h| h.join(".cache"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from(".cache"))
}

fn io_error(e: datafusion::object_store::Error) -> std::io::Error {
    match e {
        datafusion::object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, e)
        }
        e => std::io::Error::other(e),
    }
}

/// The runtime object-store requests of synchronous code run on.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("auditq-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Run `f` on the I/O runtime and wait for it, from whatever thread this is.
pub fn wait<F>(f: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io_runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    let recv = move || {
        rx.recv()
            .expect("the I/O runtime runs every task to its end")
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(recv)
        }
        _ => recv(),
    }
}

/// A data file on object storage, read through the byte ranges a Parquet reader asks
/// for: the footer is fetched once, the column chunks of a projection together
/// ([`RemoteFile::prefetch`]); anything else is fetched when asked.
#[derive(Clone)]
pub struct RemoteFile {
    remote: Arc<Remote>,
    rel: String,
    size: u64,
    /// Fetched ranges: (start, bytes), sorted by start.
    held: Arc<Mutex<Vec<(u64, Bytes)>>>,
}

/// How much of a file's end is fetched at once for its footer.
const FOOTER_GUESS: u64 = 256 * 1024;

impl RemoteFile {
    /// The object `rel` (relative to the archive) of `size` bytes, with its footer.
    pub fn open(remote: Arc<Remote>, rel: String, size: u64) -> std::io::Result<RemoteFile> {
        let f = RemoteFile {
            remote,
            rel,
            size,
            held: Arc::default(),
        };
        let start = size.saturating_sub(FOOTER_GUESS);
        let tail = f.remote.get_range(&f.rel, start..size)?;
        f.hold(start, tail);
        Ok(f)
    }

    fn hold(&self, start: u64, bytes: Bytes) {
        let mut held = self.held.lock().expect("not poisoned");
        held.push((start, bytes));
        held.sort_by_key(|(s, _)| *s);
    }

    /// Fetch these ranges (those not held already) in one go.
    pub fn prefetch(&self, ranges: Vec<std::ops::Range<u64>>) -> std::io::Result<()> {
        let missing: Vec<_> = ranges
            .into_iter()
            .filter(|r| self.find(r.start, r.end - r.start).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let starts: Vec<u64> = missing.iter().map(|r| r.start).collect();
        for (start, bytes) in starts
            .into_iter()
            .zip(self.remote.get_ranges(&self.rel, missing)?)
        {
            self.hold(start, bytes);
        }
        Ok(())
    }

    fn find(&self, start: u64, len: u64) -> Option<Bytes> {
        let held = self.held.lock().expect("not poisoned");
        held.iter().find_map(|(s, b)| {
            (start >= *s && start + len <= s + b.len() as u64)
                .then(|| b.slice((start - s) as usize..(start - s + len) as usize))
        })
    }

    /// The held range that starts at or before `start` and reaches past it.
    fn from(&self, start: u64) -> Option<Bytes> {
        let held = self.held.lock().expect("not poisoned");
        held.iter().find_map(|(s, b)| {
            (start >= *s && start < s + b.len() as u64).then(|| b.slice((start - s) as usize..))
        })
    }
}

impl Length for RemoteFile {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for RemoteFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let bytes = match self.from(start) {
            Some(b) => b,
            None => {
                let end = (start + FOOTER_GUESS).min(self.size);
                let b = self
                    .remote
                    .get_range(&self.rel, start..end)
                    .map_err(|e| datafusion::parquet::errors::ParquetError::External(e.into()))?;
                self.hold(start, b.clone());
                b
            }
        };
        Ok(bytes.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        if let Some(b) = self.find(start, length as u64) {
            return Ok(b);
        }
        let b = self
            .remote
            .get_range(&self.rel, start..start + length as u64)
            .map_err(|e| datafusion::parquet::errors::ParquetError::External(e.into()))?;
        self.hold(start, b.clone());
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_listing_holds_the_data_files_and_not_the_log() {
        let remote = Remote {
            url: url::Url::parse("s3://b/a/").unwrap(),
            store: Arc::new(datafusion::object_store::memory::InMemory::new()),
            prefix: ObjPath::from("a"),
            table_id: OnceLock::new(),
            listing: Mutex::default(),
        };
        for rel in [
            "events/_delta_log/00000000000000000000.json",
            "events/_delta_log/00000000000000000009.checkpoint.parquet",
            "events/_delta_log/_last_checkpoint",
            "events/date=2026-01-01/part-1.parquet",
            "events/date=2026-01-02/part-2.parquet",
            "checksums.jsonl",
        ] {
            remote.put(rel, Bytes::from_static(b"x")).unwrap();
        }
        let listing = remote.table_listing(true).unwrap();
        let mut names: Vec<&str> = listing.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "date=2026-01-01/part-1.parquet",
                "date=2026-01-02/part-2.parquet"
            ]
        );
        assert_eq!(remote.list("events").unwrap().len(), 5);
    }

    #[test]
    fn a_profile_section_is_read_by_name() {
        let text = "[default]\naws_access_key_id = A\n\n[other]\nAWS_Secret_Access_Key=B # no\n";
        assert_eq!(
            profile::section(text, "default"),
            vec![("aws_access_key_id".to_owned(), "A".to_owned())]
        );
        assert_eq!(
            profile::section(text, "other")[0].0,
            "aws_secret_access_key"
        );
        assert!(profile::section(text, "missing").is_empty());
    }

    /// Issue 27, item 7: `s3://KEY:SECRET@bucket` echoed the secret, and its
    /// credentials were silently ignored.
    #[test]
    fn credentials_in_an_archive_url_are_refused_without_being_shown() {
        for text in [
            "s3://AKIAKEY:s3cr3t@bucket/p",
            "s3://s3cr3t@bucket",
            "s3a://k:s3cr3t@b/x",
        ] {
            let url = url::Url::parse(text).unwrap();
            let e = Remote::open(&url, &S3Options::default()).unwrap_err();
            let shown = e.to_string();
            assert!(
                matches!(e, OpenError::Credentials { .. }),
                "{text}: {shown}"
            );
            assert!(
                !shown.contains("s3cr3t") && shown.contains("***@b"),
                "{shown}"
            );
        }
        assert_eq!(redact_url("s3://a:b@c/d@e"), "s3://***@c/d@e");
        assert_eq!(redact_url("s3://bucket/p@q"), "s3://bucket/p@q");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn plain_http_is_refused_off_this_machine_unless_allowed() {
        let url = url::Url::parse("s3://b/p").unwrap();
        let far = S3Options {
            endpoint: Some("http://10.1.2.3:9000".into()),
            ..Default::default()
        };
        assert!(matches!(
            Remote::open(&url, &far),
            Err(OpenError::PlainHttp { .. })
        ));
        let allowed = S3Options {
            allow_http: true,
            ..far.clone()
        };
        assert!(Remote::open(&url, &allowed).is_ok());
        let near = S3Options {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..Default::default()
        };
        let r = Remote::open(&url, &near).unwrap();
        assert_eq!(r.url.as_str(), "s3://b/p/");
        assert_eq!(r.path("events/x").as_ref(), "p/events/x");
        assert_eq!(r.table_url().as_str(), "s3://b/p/events/");
    }
}
