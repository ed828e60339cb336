//! A small mock of an mTLS region (wiremock speaks only plain HTTP): an axum router served
//! with tokio-rustls, requiring a client certificate from the region's CA of the test PKI
//! (`target/test-pki/upstream/<region>/ca.pem`) and presenting the region's server
//! certificate. Every request that passes the handshake is recorded and answered by a
//! test-supplied responder; failed handshakes are counted.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use hcgw_adapters::Secret;
use hcgw_adapters::upstream::UpstreamTls;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::support::test_pki;

/// One request the mock received (after a successful handshake).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let q = self.query.clone().unwrap_or_default();
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }

    /// One decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// What the mock answers.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers (the content type among them).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Delay before answering.
    pub delay: Duration,
    /// Instead of `body`: this prefix then a huge body streamed without a Content-Length.
    pub huge_chunked: Option<Vec<u8>>,
}

impl Reply {
    /// A reply with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
            huge_chunked: None,
        }
    }

    /// A reply streaming `prefix` then [`crate::support::HUGE_BYTES`] in chunks, without
    /// a Content-Length.
    pub fn huge_chunked(status: u16, content_type: &str, prefix: &[u8]) -> Self {
        let mut reply = Self::new(status, content_type, Vec::new());
        reply.huge_chunked = Some(prefix.to_vec());
        reply
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays the answer.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    responder: Responder,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

/// A running mTLS mock; stops when dropped.
pub struct MtlsMock {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    failed_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MtlsMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `target/test-pki/upstream/<region>/<rel>`.
pub fn upstream_path(region: &str, rel: &str) -> PathBuf {
    test_pki().join("upstream").join(region).join(rel)
}

/// The TLS material the gateway uses for `region`: its CA and our client identity.
pub fn region_tls(region: &str) -> UpstreamTls {
    tls_with(
        &upstream_path(region, "ca.pem"),
        Some((
            &upstream_path(region, "client/cert.pem"),
            &upstream_path(region, "client/key.pem"),
        )),
    )
}

/// TLS material from explicit files (a client identity is optional).
pub fn tls_with(ca: &Path, client: Option<(&Path, &Path)>) -> UpstreamTls {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    UpstreamTls {
        ca_pem: Some(read(ca)),
        client_cert_pem: client.map(|(c, _)| read(c)),
        client_key_pem: client
            .map(|(_, k)| Secret::new(String::from_utf8(read(k)).expect("PEM key is text"))),
    }
}

fn server_config(server_region: &str, client_ca_region: &str) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(upstream_path(server_region, "server/cert.pem"))
            .expect("server cert")
            .collect::<Result<_, _>>()
            .expect("server cert PEM");
    let key = PrivateKeyDer::from_pem_file(upstream_path(server_region, "server/key.pem"))
        .expect("server key");
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(upstream_path(client_ca_region, "ca.pem")).expect("client CA")
    {
        roots.add(cert.expect("client CA PEM")).expect("client CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config")
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let reply = (shared.responder)(&recorded);
    shared.requests.lock().unwrap().push(recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let body = match &reply.huge_chunked {
        Some(prefix) => crate::support::huge_chunked_body(prefix),
        None => Body::from(reply.body),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(reply.status).expect("status");
    for (k, v) in reply.headers {
        resp.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(&v).expect("header value"),
        );
    }
    resp
}

impl MtlsMock {
    /// Starts the mock of `region` (its server certificate, its CA for clients).
    pub async fn start(
        region: &str,
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(region, region, responder).await
    }

    /// Starts a mock presenting `server_region`'s server certificate and accepting client
    /// certificates from `client_ca_region`'s CA.
    pub async fn start_with(
        server_region: &str,
        client_ca_region: &str,
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        hcgw_adapters::upstream::install_crypto_provider();
        let acceptor = TlsAcceptor::from(Arc::new(server_config(server_region, client_ca_region)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let app = Router::new().fallback(handle).with_state(Shared {
            responder: Arc::new(responder),
            requests: requests.clone(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let failed = failed_handshakes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let failed = failed.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        MtlsMock {
            addr,
            requests,
            failed_handshakes,
            task,
        }
    }

    /// The base URL to configure the adapter with.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests passed the handshake and reached the router.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// How many TLS handshakes the server refused or lost.
    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_mock_requires_a_client_certificate_from_the_region_ca() {
    let mock = MtlsMock::start("sukang", |_| Reply::new(200, "text/plain", "ok")).await;
    let client = |tls: UpstreamTls| {
        let mut cfg =
            hcgw_adapters::upstream::UpstreamConfig::new(mock.base_url(), Duration::from_secs(2));
        cfg.tls = tls;
        hcgw_adapters::upstream::build_client(&cfg).unwrap()
    };
    let ok = client(region_tls("sukang"))
        .get(format!("{}/x?a=1", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let no_cert = client(tls_with(&upstream_path("sukang", "ca.pem"), None))
        .get(format!("{}/x", mock.base_url()))
        .send()
        .await;
    assert!(no_cert.is_err());
    assert_eq!(mock.count(), 1);
    assert_eq!(mock.requests()[0].param("a").as_deref(), Some("1"));
    assert!(mock.failed_handshakes() >= 1);
}
