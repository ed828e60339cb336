//! The ceiling of hcgw's stack for the benchmark (`scripts/bench.sh`): a bare axum handler
//! behind the same rustls mTLS settings as the gateway (`hcgw::tls::server_config`),
//! returning a fixed lookup-sized JSON body. No identity lookup, no policy, no cache: what
//! TLS + HTTP alone cost on this machine. `POST /v1/lookup` does not even read the request;
//! `POST /v1/lookup/read` reads it first (for HTTP/2).
//!
//! Given an answer-signing key, `POST /v1/lookup/signed` also signs each answer as the
//! gateway does (`hcgw_core::signing::sign_answer`: `Content-Digest`, `Signature-Input`,
//! `Signature`, with the time of the request): the floor of any signed answer on this stack,
//! TLS + HTTP + one signature and nothing else.
//!
//! `bench-ceiling <addr> <server cert> <server key> <client CA bundle> [<signing key> <signing cert>]`

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

const BODY: &str = r#"{"request_id":"01M8213EBGFBGGR9M0H4EM4AQ9","status":{"region":"xuzhou","color":"green","level":"clear","source":{"code":"GREEN"},"reasons":[],"as_of":"2026-11-23T00:23:20+08:00","observed_at":"2026-11-22T16:23:20.177Z","holder":{"name_masked":"郭*","id_type":"resident_id","id_masked":"3203**********5510"},"actions":[]},"recognition":{"verifier":"jiangsu","issuer":"jiangsu/xuzhou","recognized":true,"decision":"pass","basis":"xuzhou-within-jiangsu","note":"Green code: pass."},"cache":{"hit":true,"age_ms":12},"served_by":"ceiling"}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 && args.len() != 7 {
        eprintln!(
            "usage: bench-ceiling <addr> <server cert> <server key> <client CA bundle> [<signing key> <signing cert>]"
        );
        std::process::exit(2);
    }
    let signer = (args.len() == 7).then(|| {
        Arc::new(
            hcgw_core::signing::SigningKey::from_files(args[5].as_ref(), args[6].as_ref())
                .expect("signing key"),
        )
    });
    let files = hcgw::tls::TlsFiles {
        cert: args[2].clone().into(),
        key: args[3].clone().into(),
        client_ca: vec![args[4].clone().into()],
        crls: vec![],
        // the ceiling measures TLS + HTTP only: no CRLs to check
        revocation: hcgw::config::Revocation::Disabled,
    };
    let tls = Arc::new(hcgw::tls::server_config(&files).expect("TLS settings"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = Router::new()
            .route(
                "/v1/lookup",
                post(|| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        BODY,
                    )
                }),
            )
            // The same, reading the request body first: over HTTP/2 an answer sent before
            // the body is read resets the stream, and many resets close the connection
            // (scripts/scale.sh's HTTP/2 run uses this one).
            .route(
                "/v1/lookup/read",
                post(|_: axum::body::Bytes| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        BODY,
                    )
                }),
            );
        let app = match signer {
            Some(key) => app.route(
                "/v1/lookup/signed",
                post(move || {
                    let key = Arc::clone(&key);
                    async move { signed(key.as_ref()) }
                }),
            ),
            None => app,
        };
        let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
}

/// The fixed body with a fresh request id, signed now as the gateway signs its answers.
fn signed(key: &hcgw_core::signing::SigningKey) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    // A fresh request id, as the gateway gives every answer (the signature covers it).
    let id = hcgw_core::request_id::choose(None);
    headers.insert(
        hcgw_core::request_id::HEADER,
        axum::http::HeaderValue::from_str(&id).expect("a ULID is a header value"),
    );
    let created = chrono::Utc::now().timestamp();
    hcgw_core::signing::sign_answer(key, 200, &mut headers, BODY.as_bytes(), created)
        .expect("signing the fixed body");
    (headers, BODY).into_response()
}
