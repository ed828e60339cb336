//! Shared fixtures: the test PKI, generated configurations (and each region's section),
//! API and simulator clients, and an mTLS client that keeps one explicit connection (so
//! keep-alive behaviour can be tested).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hcgw_adapters::RegionId;
use hcgw_sim::RunningSim;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dev PKI made once per test run in `target/test-pki` (the script is idempotent and
/// locks against the contract tests running it at the same time).
pub fn pki() -> PathBuf {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let out = repo().join("target/test-pki");
        hcgw_sim::dev_pki::run_quiet(&repo(), &out).expect("certs/dev-pki.sh");
        out
    })
    .clone()
}

/// A PKI file as a quoted TOML string.
pub fn pki_path(rel: &str) -> String {
    format!("{:?}", pki().join(rel).display().to_string())
}

/// The `[regions.<id>]` section of a region at `base_url`, with the dev PKI's credentials.
pub fn region_section(r: RegionId, base_url: &str) -> String {
    let p = pki_path;
    let auth = match r {
        RegionId::Suzhou => format!(
            "app_id = \"hcgw-dev\"\napp_secret = {{ file = {} }}",
            p("secrets/suzhou_app_secret")
        ),
        RegionId::Suishen => format!(
            "client_id = \"hcgw-dev\"\nclient_secret = {{ file = {} }}\nsigning_keys = [{{ key_id = \"sign-key-1\", public_key = {} }}, {{ key_id = \"sign-key-2\", public_key = {} }}]",
            p("secrets/suishen_client_secret"),
            p("upstream/suishen/sign-key-1.pub.pem"),
            p("upstream/suishen/sign-key-2.pub.pem")
        ),
        RegionId::Sukang => format!(
            "ca = {}\nclient_cert = {}\nclient_key = {}",
            p("upstream/sukang/ca.pem"),
            p("upstream/sukang/client/cert.pem"),
            p("upstream/sukang/client/key.pem")
        ),
        RegionId::Xuzhou => format!("api_key = {{ file = {} }}", p("secrets/xuzhou_api_key")),
        RegionId::Hangzhou => format!("appcode = {{ file = {} }}", p("secrets/hangzhou_appcode")),
        RegionId::Huzhou => format!("token = {{ file = {} }}", p("secrets/huzhou_token")),
        RegionId::Guangzhou => format!(
            "appid = \"hcgw-dev\"\nsecret = {{ file = {} }}",
            p("secrets/guangzhou_secret")
        ),
        RegionId::Guangdong => format!(
            "ca = {}\nclient_cert = {}\nclient_key = {}\npaas_id = {{ file = {} }}",
            p("upstream/guangdong/ca.pem"),
            p("upstream/guangdong/client/cert.pem"),
            p("upstream/guangdong/client/key.pem"),
            p("secrets/guangdong_paas_id")
        ),
    };
    format!("\n[regions.{r}]\nbase_url = \"{base_url}\"\n[regions.{r}.auth]\n{auth}\n")
}

/// The URL the gateway reaches a running simulator at: `https://localhost:<port>` for the
/// mTLS simulators (their certificates name `localhost`), else the simulator's own.
pub fn sim_url(sim: &RunningSim) -> String {
    if sim.scheme == "https" {
        format!("https://localhost:{}", sim.addr.port())
    } else {
        sim.base_url()
    }
}

/// A client for the simulators' control endpoints (their TLS certificates not checked).
pub fn sim_client() -> reqwest::Client {
    hcgw_adapters::upstream::install_crypto_provider();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// An API client (own connection pool) trusting the PKI and presenting `cert_dir`'s
/// certificate (see [`client_tls`]), giving up on a call after `timeout`.
pub fn api_client(cert_dir: Option<&Path>, timeout: Duration) -> reqwest::Client {
    hcgw_adapters::upstream::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_preconfigured((*client_tls(cert_dir)).clone())
        .timeout(timeout)
        .build()
        .unwrap()
}

/// The standard `[[clients]]` of the test configurations (by subject).
pub const CLIENTS: &str = r#"
[[clients]]
name = "platform-shanghai"
role = "platform"
jurisdiction = "shanghai"
subject = "O=shanghai, OU=platform, CN=platform-shanghai"

[[clients]]
name = "platform-guangdong"
role = "platform"
jurisdiction = "guangdong"
subject = "CN=platform-guangdong, OU=platform, O=guangdong"

[[clients]]
name = "checkpoint-shanghai"
role = "checkpoint"
jurisdiction = "shanghai"
subject = "O=shanghai, OU=checkpoint, CN=checkpoint-shanghai"

[[clients]]
name = "checkpoint-guangzhou"
role = "checkpoint"
jurisdiction = "guangdong/guangzhou"
subject = "O=guangdong/guangzhou, OU=checkpoint, CN=checkpoint-guangzhou"

[[clients]]
name = "ops"
role = "ops"
jurisdiction = "federation"
subject = "O=federation, OU=ops, CN=ops"

[[clients]]
name = "peer-jiangsu"
role = "peer"
jurisdiction = "jiangsu"
subject = "O=jiangsu, OU=peer, CN=peer-jiangsu"
max_on_behalf_of = "platform"
acts_for = ["jiangsu", "shanghai", "zhejiang"]

[[clients]]
name = "revoked"
role = "platform"
jurisdiction = "shanghai"
subject = "O=shanghai, OU=platform, CN=revoked"

[[clients]]
name = "expired"
role = "platform"
jurisdiction = "shanghai"
subject = "O=shanghai, OU=platform, CN=expired"
"#;

/// TLS file paths for a test configuration.
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
}

impl TlsPaths {
    /// The PKI's own files (gateway `hcgw-dev`).
    pub fn standard() -> Self {
        let p = pki();
        TlsPaths {
            cert: p.join("gateways/hcgw-dev/cert.pem"),
            key: p.join("gateways/hcgw-dev/key.pem"),
            client_ca: p.join("ca-bundle.pem"),
            crls: vec![
                p.join("crl/intermediate.crl.pem"),
                p.join("crl/root.crl.pem"),
            ],
        }
    }
}

/// A complete configuration on ephemeral ports, with `extra` TOML appended.
pub fn config_text(tls: &TlsPaths, audit_dir: &Path, extra: &str) -> String {
    let p = pki();
    let crls = tls
        .crls
        .iter()
        .map(|c| format!("{:?}", c.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    // No CRLs (a test about something else) must say so: revocation is enforced by default.
    let revocation = if tls.crls.is_empty() {
        "revocation = \"disabled\""
    } else {
        ""
    };
    format!(
        r#"
[gateway]
name = "hcgw-test"
log_level = "warn"

[listener]
addr = "127.0.0.1:0"

[admin]
addr = "127.0.0.1:0"

[tls]
cert = {cert:?}
key = {key:?}
client_ca = [{ca:?}]
crls = [{crls}]
{revocation}
reload_interval_ms = 100

[cache]
subject_key = {{ file = {subject:?} }}

[audit]
dir = {audit:?}
{CLIENTS}
{extra}
"#,
        cert = tls.cert.display().to_string(),
        key = tls.key.display().to_string(),
        ca = tls.client_ca.display().to_string(),
        subject = p.join("secrets/subject_hash_key").display().to_string(),
        audit = audit_dir.display().to_string(),
    )
}

/// Starts a gateway in this process from configuration text.
pub async fn start_gateway(text: &str, dir: &Path) -> hcgw::app::Gateway {
    let path = dir.join("hcgw.toml");
    std::fs::write(&path, text).unwrap();
    let config = hcgw::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    hcgw::app::start(config).await.expect("gateway starts")
}

/// Client TLS settings trusting the PKI's CA bundle, presenting `client`'s certificate
/// (`clients/<name>` or any directory with cert.pem and key.pem), or none.
pub fn client_tls(client: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki().join("ca-bundle.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some(dir) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(cfg)
}

/// The PKI directory of a named client.
pub fn client(name: &str) -> PathBuf {
    pki().join("clients").join(name)
}

/// One HTTP/1.1 connection over mTLS, kept open across requests.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    /// The server certificate the gateway presented.
    pub server_cert: Vec<u8>,
}

impl Conn {
    /// Connects and completes the TLS handshake.
    pub async fn open(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let stream = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let server_cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn {
            sender,
            server_cert,
        })
    }

    /// `GET path` on this connection: status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Opens a fresh connection and GETs `path` (with TLS 1.3 a refused client certificate
/// surfaces on the first request, so both steps count as "the handshake").
pub async fn fresh_get(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(u16, String), String> {
    let mut c = Conn::open(addr, tls).await?;
    c.get(path).await
}

/// Writes an intermediate-CA CRL listing the revoked certificates of the PKI or none,
/// using the openssl CLI with a throw-away CA database.
pub fn make_intermediate_crl(out: &Path, include_revoked: bool) {
    make_intermediate_crl_with(out, include_revoked, &[]);
}

/// A CRL of the intermediate that lapsed long ago (lastUpdate 2020-01-01, nextUpdate
/// 2020-01-02T00:00:00Z = 1577923200), listing the revoked certificates.
pub fn make_expired_intermediate_crl(out: &Path) {
    make_intermediate_crl_with(
        out,
        true,
        &[
            "-crl_lastupdate",
            "20200101000000Z",
            "-crl_nextupdate",
            "20200102000000Z",
        ],
    );
}

/// [`make_intermediate_crl`] with extra `openssl ca -gencrl` arguments.
fn make_intermediate_crl_with(out: &Path, include_revoked: bool, extra: &[&str]) {
    let p = pki();
    let work = tempfile::tempdir().unwrap();
    let index: String = std::fs::read_to_string(p.join("intermediate/index.txt"))
        .unwrap()
        .lines()
        .filter(|l| include_revoked || !l.starts_with('R'))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(work.path().join("index.txt"), index).unwrap();
    std::fs::write(work.path().join("index.txt.attr"), "unique_subject = no\n").unwrap();
    std::fs::write(work.path().join("crlnumber"), "1000\n").unwrap();
    let cnf = format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}\ncrlnumber = {num}\ncertificate = {cert}\nprivate_key = {key}\ndefault_md = sha256\ndefault_crl_days = 30\n",
        db = work.path().join("index.txt").display(),
        num = work.path().join("crlnumber").display(),
        cert = p.join("intermediate/ca.pem").display(),
        key = p.join("intermediate/ca.key").display(),
    );
    std::fs::write(work.path().join("ca.cnf"), cnf).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["ca", "-batch", "-gencrl", "-config"])
        .arg(work.path().join("ca.cnf"))
        .arg("-out")
        .arg(out)
        .args(extra)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl ca -gencrl");
}

/// Waits until `f` returns true (polling), or panics after `secs`.
pub async fn eventually<F: AsyncFnMut() -> bool>(secs: u64, what: &str, mut f: F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Runs `curl` over mTLS as the client `client` (its PKI certificate), writing the output
/// to `out`; panics when curl fails (`--fail-with-body`: an HTTP error status too).
pub fn curl_as(client: &str, args: &[&str], out: &Path) {
    let p = pki();
    let c = p.join("clients").join(client);
    let ok = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(p.join("ca-bundle.pem"))
        .arg("--cert")
        .arg(c.join("cert.pem"))
        .arg("--key")
        .arg(c.join("key.pem"))
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap()
        .success();
    assert!(ok, "curl {args:?}");
}
