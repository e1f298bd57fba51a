//! The S3-compatible store that object-storage tests run against: moto's server mode,
//! from the test virtualenv, on 127.0.0.1. Safe concurrent writers without a lock file
//! depend on the store refusing a second put of the same key with `If-None-Match: *`
//! (a Delta commit is the put of `_delta_log/N.json`): this is tested first, on the
//! server itself.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server, killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let python = PathBuf::from(std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(python.with_file_name("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An S3 request the server routes (its credential scope names the service; moto does
/// not check the signature).
fn s3(http: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    http.request(method, url).header(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0",
    )
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn the_s3_server_refuses_a_second_conditional_put_of_a_key() {
    let server = S3Server::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let put = reqwest::Method::PUT;
        let bucket = format!("{}/archive", server.endpoint);
        let made = s3(&http, put.clone(), bucket.clone())
            .send()
            .await
            .expect("bucket");
        assert!(made.status().is_success(), "{}", made.status());
        let key = format!("{bucket}/events/_delta_log/00000000000000000001.json");
        let first = s3(&http, put.clone(), key.clone())
            .header("If-None-Match", "*")
            .body("first writer")
            .send()
            .await
            .expect("put");
        assert!(first.status().is_success(), "{}", first.status());
        let second = s3(&http, put.clone(), key.clone())
            .header("If-None-Match", "*")
            .body("second writer")
            .send()
            .await
            .expect("put");
        assert_eq!(
            second.status().as_u16(),
            412,
            "the second put of the same key"
        );
        let kept = s3(&http, reqwest::Method::GET, key)
            .send()
            .await
            .expect("get");
        assert_eq!(kept.text().await.expect("body"), "first writer");
    });
}
