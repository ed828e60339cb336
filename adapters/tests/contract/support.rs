//! Shared helpers of the contract tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads `fixtures/<region>/<name>` as bytes.
pub fn fixture(region: &str, name: &str) -> Vec<u8> {
    let p = fixtures_dir().join(region).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Reads `fixtures/<region>/<name>` as text.
pub fn fixture_str(region: &str, name: &str) -> String {
    String::from_utf8(fixture(region, name)).expect("fixture is UTF-8")
}

/// The dev PKI made by `certs/dev-pki.sh` into `target/test-pki` (once per test run;
/// the script is idempotent and locks against concurrent runs).
pub fn test_pki() -> PathBuf {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = root.join("target/test-pki");
        let status = std::process::Command::new("bash")
            .arg(root.join("certs/dev-pki.sh"))
            .arg(&out)
            .status()
            .expect("run certs/dev-pki.sh");
        assert!(status.success(), "certs/dev-pki.sh failed");
        out
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// One named test per contract case: each region module writes one helper per kind
// (`check_colour`, `check_error`, `check_auth`) and lists its cases with these macros,
// which expand to one `#[tokio::test]` per case calling the helper in scope.
// ---------------------------------------------------------------------------------------

/// `case_tests!(helper { name: (args…), … })`: one `#[tokio::test] async fn name()` per
/// case, each running `helper(args…).await`.
macro_rules! case_tests {
    ($helper:ident { $($name:ident: ($($arg:expr),* $(,)?)),* $(,)? }) => {
        $(
            #[tokio::test]
            async fn $name() {
                $helper($($arg),*).await;
            }
        )*
    };
}

/// One test per colour value of the region's table, each calling `check_colour(args…)`.
macro_rules! colour_tests {
    ($($cases:tt)*) => { case_tests!(check_colour { $($cases)* }); };
}

/// One test per error code of the region's table, each calling `check_error(args…)`.
macro_rules! error_tests {
    ($($cases:tt)*) => { case_tests!(check_error { $($cases)* }); };
}

/// One test per authentication failure, each calling `check_auth(args…)`.
macro_rules! auth_tests {
    ($($cases:tt)*) => { case_tests!(check_auth { $($cases)* }); };
}

// ---------------------------------------------------------------------------------------
// A huge response streamed WITHOUT a Content-Length (chunked transfer encoding): wiremock
// always sets the length, so this covers the streaming path of `read_body_limited`.
// ---------------------------------------------------------------------------------------

/// How much the huge chunked bodies stream (far over any adapter's body limit).
pub const HUGE_BYTES: usize = 8 << 20;
const HUGE_CHUNK: usize = 64 << 10;

/// `prefix` then [`HUGE_BYTES`] of `x`, in 64 KiB chunks, with no length known up front
/// (hyper sends it with `Transfer-Encoding: chunked`).
pub fn huge_chunked_body(prefix: &[u8]) -> axum::body::Body {
    let prefix = axum::body::Bytes::copy_from_slice(prefix);
    let filler = axum::body::Bytes::from(vec![b'x'; HUGE_CHUNK]);
    let chunks = std::iter::once(prefix)
        .chain(std::iter::repeat_n(filler, HUGE_BYTES / HUGE_CHUNK))
        .map(Ok::<_, std::convert::Infallible>);
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

/// A fixed answer of [`ChunkedServer`] for one path (e.g. a token endpoint).
#[derive(Clone)]
pub struct Fixed {
    /// The request path it answers.
    pub path: String,
    /// HTTP status.
    pub status: u16,
    /// Headers, the content type among them.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A plain-HTTP server answering every request with HTTP 200, `content_type` and a huge
/// chunked body starting with `prefix` — except the paths of `fixed`. Stops when dropped.
pub struct ChunkedServer {
    addr: std::net::SocketAddr,
    streamed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChunkedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChunkedServer {
    /// Starts the server.
    pub async fn start(content_type: &str, prefix: &[u8], fixed: Vec<Fixed>) -> Self {
        use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
        let content_type = HeaderValue::from_str(content_type).expect("content type");
        let prefix = prefix.to_vec();
        let streamed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = streamed.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (content_type, prefix, fixed, counter) = (
                content_type.clone(),
                prefix.clone(),
                fixed.clone(),
                counter.clone(),
            );
            async move {
                if let Some(f) = fixed.iter().find(|f| f.path == req.uri().path()) {
                    let mut resp = Response::new(axum::body::Body::from(f.body.clone()));
                    *resp.status_mut() = StatusCode::from_u16(f.status).expect("status");
                    for (k, v) in &f.headers {
                        resp.headers_mut().append(
                            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                            HeaderValue::from_str(v).expect("header value"),
                        );
                    }
                    return resp;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut resp = Response::new(huge_chunked_body(&prefix));
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, content_type);
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ChunkedServer {
            addr,
            streamed,
            task,
        }
    }

    /// How many requests it received that were not for a `fixed` path (answered with
    /// the huge body).
    pub fn streamed(&self) -> usize {
        self.streamed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The base URL to configure the adapter with.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[tokio::test]
async fn the_chunked_server_streams_without_a_content_length() {
    hcgw_adapters::upstream::install_crypto_provider();
    let server = ChunkedServer::start("application/json", b"{", vec![]).await;
    let resp = reqwest::get(format!("{}/any", server.uri())).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), None);
    assert_eq!(
        resp.headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 1 + HUGE_BYTES);
    assert_eq!(server.streamed(), 1);
}
