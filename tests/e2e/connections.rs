//! Connections are bounded after the handshake: header-read and idle timeouts, a maximum
//! age, caps overall and per client certificate, HTTP/2 stream and reset limits, and a
//! client revoked while connected loses its open connections. Real TLS handshakes with the
//! dev PKI's certificates; misbehaving HTTP/2 clients are written frame by frame (a real
//! client library refuses to misbehave).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// A gateway whose `[listener]` also has `listener` (TOML lines), with `extra` appended.
async fn gateway_with(listener: &str, extra: &str) -> (hcgw::app::Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = listener_config(&TlsPaths::standard(), dir.path(), listener, extra);
    (start_gateway(&text, dir.path()).await, dir)
}

fn listener_config(tls: &TlsPaths, dir: &Path, listener: &str, extra: &str) -> String {
    let text = config_text(tls, &dir.join("audit"), extra);
    let anchor = "addr = \"127.0.0.1:0\"\n\n[admin]";
    assert!(
        text.contains(anchor),
        "the test configuration has its [listener] addr"
    );
    text.replacen(
        anchor,
        &format!("addr = \"127.0.0.1:0\"\n{listener}\n\n[admin]"),
        1,
    )
}

/// The value of one sample of the process's metrics (0 when absent).
fn metric(series: &str) -> u64 {
    let text = hcgw::metrics::render().expect("the gateway installed the recorder");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn closed(reason: &str) -> u64 {
    metric(&format!(
        "hcgw_connections_closed_total{{reason=\"{reason}\"}}"
    ))
}

/// Waits until `hcgw_connections_closed_total{reason}` reaches `n` (the gateway counts a
/// close after the client may already have seen it).
async fn closed_at_least(reason: &str, n: u64) {
    eventually(20, &format!("{n} closes counted as {reason}"), async || {
        closed(reason) >= n
    })
    .await;
}

fn refused(reason: &str) -> u64 {
    metric(&format!(
        "hcgw_connections_refused_total{{reason=\"{reason}\"}}"
    ))
}

/// A TLS connection presenting `client`'s certificate, offering `alpn`.
async fn tls_stream(addr: SocketAddr, client: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut cfg = (*client_tls(Some(&crate::support::client(client)))).clone();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake")
}

/// Reads until the gateway closes the connection (end of stream or an error); `None` if it
/// is still open after `secs`. Returns what was read.
async fn read_until_closed(stream: &mut TlsStream<TcpStream>, secs: u64) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), read)
        .await
        .ok()
        .map(|()| got)
}

const WHOAMI: &[u8] = b"GET /v1/whoami HTTP/1.1\r\nhost: localhost\r\n\r\n";

#[tokio::test]
async fn half_a_request_line_is_cut_by_the_header_read_timeout() {
    let (gw, _d) = gateway_with("header_read_timeout_ms = 300\nidle_timeout_ms = 600000", "").await;
    let before = closed("header_timeout");
    // The handshake completes and a full request is answered: the timeout is not the
    // handshake's.
    let mut s = tls_stream(gw.api_addr, "platform-shanghai", &[b"http/1.1"]).await;
    s.write_all(WHOAMI).await.unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Then half a request line, and nothing more (the idle timeout is ten minutes).
    s.write_all(b"GET /v1/who").await.unwrap();
    read_until_closed(&mut s, 20)
        .await
        .expect("a stalled request head is disconnected");
    closed_at_least("header_timeout", before + 1).await;

    // The same on a fresh connection that never completes its first request line.
    let mut s = tls_stream(gw.api_addr, "platform-shanghai", &[]).await;
    s.write_all(b"GET /v1/whoami HTT").await.unwrap();
    assert!(read_until_closed(&mut s, 20).await.is_some());
    gw.shutdown().await;
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    let (gw, _d) = gateway_with(
        "header_read_timeout_ms = 120000\nidle_timeout_ms = 300\nmax_connection_age_s = 600",
        "",
    )
    .await;
    let before = closed("idle");
    let mut s = tls_stream(gw.api_addr, "platform-shanghai", &[b"http/1.1"]).await;
    s.write_all(WHOAMI).await.unwrap();
    let got = read_until_closed(&mut s, 20)
        .await
        .expect("an idle keep-alive connection is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "answered first: {text}");
    closed_at_least("idle", before + 1).await;
    gw.shutdown().await;
}

/// An HTTP/2 connection (ALPN `h2`) through hyper's client: the request sender and the
/// connection task (which ends when the gateway closes the connection).
async fn h2_client(
    addr: SocketAddr,
    client: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let s = tls_stream(addr, client, &[b"h2"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("HTTP/2 handshake");
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
) -> Result<u16, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::get("https://localhost/v1/whoami")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway_after_the_idle_timeout() {
    let (gw, _d) = gateway_with("idle_timeout_ms = 300\nmax_connection_age_s = 600", "").await;
    let before = closed("idle");
    let (mut sender, conn) = h2_client(gw.api_addr, "platform-shanghai").await;
    assert_eq!(h2_get(&mut sender).await, Ok(200));
    tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap();
    assert!(h2_get(&mut sender).await.is_err());
    closed_at_least("idle", before + 1).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_busy_connection_is_closed_at_its_maximum_age_http1_and_http2() {
    // Requests every 50 ms never let the connection idle (idle timeout 60 s), so only its
    // age (1 s) can end it.
    let (gw, _d) = gateway_with(
        "header_read_timeout_ms = 60000\nidle_timeout_ms = 60000\nmax_connection_age_s = 1",
        "",
    )
    .await;
    let before = closed("max_age");

    let mut h1 = Conn::open(gw.api_addr, client_tls(Some(&client("platform-shanghai"))))
        .await
        .unwrap();
    let started = Instant::now();
    let mut answered = 0;
    while h1.get("/v1/whoami").await.is_ok() {
        answered += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "HTTP/1 connection still open after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered >= 2, "served until its age ran out: {answered}");

    let (mut sender, conn) = h2_client(gw.api_addr, "platform-shanghai").await;
    let started = Instant::now();
    let mut answered = 0;
    while h2_get(&mut sender).await.is_ok() {
        answered += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "HTTP/2 connection still open after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered >= 2, "served until its age ran out: {answered}");
    tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .expect("the HTTP/2 connection ends after GOAWAY")
        .unwrap();
    closed_at_least("max_age", before + 2).await;
    gw.shutdown().await;
}

/// Opens `attempts` connections of `name` (at most 32 handshakes at a time) and keeps those
/// the gateway answers on; the others were closed by the gateway right after the handshake.
async fn open_many(addr: SocketAddr, name: &str, attempts: usize) -> (Vec<Conn>, Vec<String>) {
    let tls = client_tls(Some(&client(name)));
    let results: Vec<Result<Conn, String>> = futures_util::stream::iter(0..attempts)
        .map(|_| {
            let tls = tls.clone();
            async move {
                let mut c = Conn::open(addr, tls).await?;
                c.get("/v1/whoami").await?;
                Ok(c)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(c) => kept.push(c),
            Err(e) => errors.push(e),
        }
    }
    (kept, errors)
}

fn fingerprint_of(name: &str) -> String {
    std::fs::read_to_string(client(name).join("fingerprint.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn two_thousand_idle_connections_of_one_certificate_are_capped_per_client() {
    let (gw, _d) = gateway_with(
        "header_read_timeout_ms = 120000\nidle_timeout_ms = 600000\nmax_connections = 5000\nmax_connections_per_client = 20\nmax_connections_per_unknown_client = 2",
        "",
    )
    .await;
    let before = refused("max_connections_per_client");
    let (mut kept, errors) = open_many(gw.api_addr, "platform-shanghai", 2000).await;
    assert_eq!(
        kept.len(),
        20,
        "exactly the per-client cap is held; first refusals: {:?}",
        &errors[..errors.len().min(3)]
    );
    assert_eq!(
        gw.connections.held_by(&fingerprint_of("platform-shanghai")),
        20
    );
    assert!(refused("max_connections_per_client") >= before + 1980);

    // Another client still gets answers, on fresh connections.
    for _ in 0..3 {
        let (status, body) = fresh_get(
            gw.api_addr,
            client_tls(Some(&client("platform-guangdong"))),
            "/v1/whoami",
        )
        .await
        .expect("another client is not affected");
        assert_eq!(status, 200, "{body}");
    }
    // The held connections keep working.
    for c in kept.iter_mut() {
        assert_eq!(c.get("/v1/whoami").await.unwrap().0, 200);
    }
    // A place given back is taken again.
    kept.pop();
    eventually(20, "a freed place is usable", async || {
        fresh_get(
            gw.api_addr,
            client_tls(Some(&client("platform-shanghai"))),
            "/v1/whoami",
        )
        .await
        .is_ok()
    })
    .await;

    // A CA-valid certificate no entry names gets its own, smaller cap.
    let (unknown, _) = open_many(gw.api_addr, "unknown", 10).await;
    assert_eq!(unknown.len(), 2, "the unknown-client cap");
    drop(kept);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_overall_cap_refuses_new_connections_before_the_handshake() {
    let (gw, _d) = gateway_with(
        "header_read_timeout_ms = 120000\nidle_timeout_ms = 600000\nmax_connections = 10\nmax_connections_per_client = 10",
        "",
    )
    .await;
    let before = refused("max_connections");
    let (mut kept, _) = open_many(gw.api_addr, "platform-shanghai", 10).await;
    assert_eq!(kept.len(), 10);
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("platform-guangdong"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "the listener is full: {r:?}");
    assert!(refused("max_connections") > before);
    assert_eq!(gw.connections.open(), 10);
    kept.truncate(9);
    eventually(
        20,
        "a freed place is usable by another client",
        async || {
            fresh_get(
                gw.api_addr,
                client_tls(Some(&client("platform-guangdong"))),
                "/v1/whoami",
            )
            .await
            .is_ok_and(|(status, _)| status == 200)
        },
    )
    .await;
    drop(kept);
    gw.shutdown().await;
}

/// A raw HTTP/2 client: frames written by hand, so it can break the rules.
struct RawH2 {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
    /// The gateway's SETTINGS: (identifier, value).
    settings: Vec<(u16, u32)>,
}

/// An HTTP/2 frame as read: type, flags, stream id, payload.
#[derive(Debug)]
struct Frame {
    kind: u8,
    stream: u32,
    payload: Vec<u8>,
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET /v1/whoami` as an HPACK block: static-table method, scheme and authority name,
/// literal path and authority, without indexing.
fn get_headers() -> Vec<u8> {
    let mut h = vec![0x82, 0x87];
    h.push(0x04); // :path, literal without indexing (static index 4)
    h.push(10);
    h.extend_from_slice(b"/v1/whoami");
    h.push(0x01); // :authority (static index 1)
    h.push(9);
    h.extend_from_slice(b"localhost");
    h
}

impl RawH2 {
    /// Connects with ALPN h2, exchanges SETTINGS (and acknowledges the gateway's).
    async fn connect(addr: SocketAddr, client: &str) -> RawH2 {
        let mut stream = tls_stream(addr, client, &[b"h2"]).await;
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        let mut raw = RawH2 {
            stream,
            buf: Vec::new(),
            settings: Vec::new(),
        };
        loop {
            let f = raw.next_frame(10).await.expect("the gateway's SETTINGS");
            if f.kind == SETTINGS && f.stream == 0 && !f.payload.is_empty() {
                raw.settings = f
                    .payload
                    .chunks(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
                break;
            }
        }
        raw.send(&frame(SETTINGS, 0x1, 0, &[])).await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The gateway may already have closed the connection: that is what some tests want.
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// The next frame, or `None` when the connection ended or nothing came for `secs`.
    async fn next_frame(&mut self, secs: u64) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head: Vec<u8> = self.buf.drain(..9 + len).collect();
                    return Some(Frame {
                        kind: head[3],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload: head[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    fn setting(&self, id: u16) -> Option<u32> {
        self.settings
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }
}

fn error_code(payload: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([
        payload[at],
        payload[at + 1],
        payload[at + 2],
        payload[at + 3],
    ])
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_are_refused_and_the_header_list_is_bounded() {
    let (gw, _d) = gateway_with(
        "http2_max_concurrent_streams = 4\nhttp2_max_header_list_bytes = 4096",
        "",
    )
    .await;
    let mut h2 = RawH2::connect(gw.api_addr, "platform-shanghai").await;
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) and SETTINGS_MAX_HEADER_LIST_SIZE (0x6).
    assert_eq!(h2.setting(0x3), Some(4), "{:?}", h2.settings);
    assert_eq!(h2.setting(0x6), Some(4096), "{:?}", h2.settings);
    // Six requests at once whose request streams stay open (no END_STREAM): four are
    // served, the fifth and sixth are refused, whatever the client's manners.
    let mut burst = Vec::new();
    for id in [1u32, 3, 5, 7, 9, 11] {
        burst.extend(frame(HEADERS, END_HEADERS, id, &get_headers()));
    }
    h2.send(&burst).await;
    let mut answered = std::collections::BTreeSet::new();
    let mut refused_streams = std::collections::BTreeSet::new();
    while answered.len() < 4 || refused_streams.len() < 2 {
        let Some(f) = h2.next_frame(20).await else {
            panic!("connection ended: answered {answered:?}, refused {refused_streams:?}")
        };
        match f.kind {
            HEADERS => {
                answered.insert(f.stream);
            }
            // The gateway may also end a served stream whose request it no longer needs
            // (NO_ERROR); only refusals count here.
            RST_STREAM if error_code(&f.payload, 0) == REFUSED_STREAM => {
                refused_streams.insert(f.stream);
            }
            RST_STREAM => assert!(answered.contains(&f.stream), "{f:?}"),
            GOAWAY => panic!("no GOAWAY for six streams: {f:?}"),
            _ => {}
        }
    }
    assert_eq!(answered, [1, 3, 5, 7].into());
    assert_eq!(refused_streams, [9, 11].into());
    gw.shutdown().await;
}

#[tokio::test]
async fn an_http2_rapid_reset_flood_is_cut_off() {
    let (gw, _d) = gateway_with("http2_max_pending_accept_reset_streams = 5", "").await;
    let before = closed("error");
    let mut h2 = RawH2::connect(gw.api_addr, "platform-shanghai").await;
    // Requests cancelled as soon as they are sent, in one burst: the server would start
    // work for each and the client pays nothing.
    let mut flood = Vec::new();
    for n in 0..500u32 {
        let id = 2 * n + 1;
        flood.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &get_headers()));
        flood.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    h2.send(&flood).await;
    let mut goaway = None;
    while let Some(f) = h2.next_frame(20).await {
        if f.kind == GOAWAY {
            goaway = Some(error_code(&f.payload, 4));
        }
    }
    assert_eq!(
        goaway,
        Some(ENHANCE_YOUR_CALM),
        "the flood ends in GOAWAY(ENHANCE_YOUR_CALM) and the connection closes"
    );
    closed_at_least("error", before + 1).await;
    // The gateway serves others (and this client on a new connection) as before.
    let (status, _) = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("platform-shanghai"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_revoked_while_connected_loses_its_open_connections_at_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("intermediate.crl.pem");
    make_intermediate_crl(&crl, false);
    let mut tls = TlsPaths::standard();
    tls.crls = vec![crl.clone(), pki().join("crl/root.crl.pem")];
    // Reload checks every 100 ms (the test configuration's interval).
    let text = listener_config(&tls, dir.path(), "idle_timeout_ms = 600000", "");
    let gw = start_gateway(&text, dir.path()).await;
    let before = closed("revoked");

    // Not yet revoked: the client gets in, over HTTP/1 and HTTP/2, and stays connected.
    let mut revoked_h1 = Conn::open(gw.api_addr, client_tls(Some(&client("revoked"))))
        .await
        .unwrap();
    assert_eq!(revoked_h1.get("/v1/whoami").await.unwrap().0, 200);
    let (mut revoked_h2, revoked_h2_conn) = h2_client(gw.api_addr, "revoked").await;
    assert_eq!(h2_get(&mut revoked_h2).await, Ok(200));
    let mut other = Conn::open(gw.api_addr, client_tls(Some(&client("platform-shanghai"))))
        .await
        .unwrap();
    assert_eq!(other.get("/v1/whoami").await.unwrap().0, 200);

    // The CRL that lists it is put in place (write, then rename).
    let with_revoked = dir.path().join("with-revoked.pem");
    make_intermediate_crl(&with_revoked, true);
    std::fs::rename(&with_revoked, &crl).unwrap();
    let swapped = Instant::now();
    eventually(
        20,
        "the revoked client's open connection is closed",
        async || revoked_h1.get("/v1/whoami").await.is_err(),
    )
    .await;
    let after = swapped.elapsed();
    tokio::time::timeout(Duration::from_secs(20), revoked_h2_conn)
        .await
        .expect("its HTTP/2 connection is cut too")
        .unwrap();
    assert!(h2_get(&mut revoked_h2).await.is_err());
    closed_at_least("revoked", before + 2).await;
    assert!(gw.state.tls.reloads() >= 1);
    // Another client's open connection stays.
    assert_eq!(
        other
            .get("/v1/whoami")
            .await
            .expect("another client's connection stays")
            .0,
        200
    );
    // And new handshakes of the revoked certificate fail, as before.
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("revoked"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    eprintln!("revoked connection closed {after:?} after the CRL was replaced");
    gw.shutdown().await;
}

#[test]
fn out_of_range_listener_bounds_are_reported_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "header_read_timeout_ms = 0",
            "listener.header_read_timeout_ms",
        ),
        ("idle_timeout_ms = 10", "listener.idle_timeout_ms"),
        ("max_connection_age_s = 0", "listener.max_connection_age_s"),
        ("close_grace_ms = 9999999", "listener.close_grace_ms"),
        ("max_connections = 0", "listener.max_connections"),
        (
            "max_connections_per_client = 0",
            "listener.max_connections_per_client",
        ),
        (
            "max_connections = 10\nmax_connections_per_client = 11",
            "listener.max_connections_per_client",
        ),
        (
            "max_connections = 10\nmax_connections_per_unknown_client = 11",
            "listener.max_connections_per_unknown_client",
        ),
        (
            "http2_max_concurrent_streams = 0",
            "listener.http2_max_concurrent_streams",
        ),
        (
            "http2_max_header_list_bytes = 100",
            "listener.http2_max_header_list_bytes",
        ),
        (
            "http2_max_pending_accept_reset_streams = 0",
            "listener.http2_max_pending_accept_reset_streams",
        ),
        (
            "http2_max_local_error_reset_streams = 0",
            "listener.http2_max_local_error_reset_streams",
        ),
        ("max_conections = 5", "listener"),
    ];
    for (line, path) in cases {
        let text = listener_config(&TlsPaths::standard(), dir.path(), line, "");
        let problems = match hcgw::config::load_str(&text, &dir.path().join("bad.toml")) {
            Ok(_) => panic!("{line}: accepted"),
            Err(e) => e.problems().to_vec(),
        };
        assert!(
            problems
                .iter()
                .any(|p| p.path == path || (path == "listener" && p.path.starts_with(path))),
            "{line}: expected a problem at {path}, got {problems:?}"
        );
    }
    // The defaults and a zero unknown-client cap are valid.
    for line in ["", "max_connections_per_unknown_client = 0"] {
        let text = listener_config(&TlsPaths::standard(), dir.path(), line, "");
        let config = hcgw::config::load_str(&text, &dir.path().join("ok.toml"))
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        if line.is_empty() {
            let l = &config.listener;
            assert_eq!(
                (
                    l.header_read_timeout_ms,
                    l.idle_timeout_ms,
                    l.max_connection_age_s,
                    l.max_connections,
                    l.max_connections_per_client,
                    l.max_connections_per_unknown_client,
                    l.http2_max_concurrent_streams,
                ),
                (10_000, 60_000, 3600, 10_000, 1024, 4, 100)
            );
        }
    }
}
