//! The ceiling of hcgw's stack for the benchmark (`scripts/bench.sh`): a bare axum handler
//! behind the same rustls mTLS settings as the gateway (`hcgw::tls::server_config`),
//! returning a fixed lookup-sized JSON body. No identity lookup, no policy, no cache: what
//! TLS + HTTP alone cost on this machine. `POST /v1/lookup` does not even read the request;
//! `POST /v1/lookup/read` reads it first (for HTTP/2).
//!
//! `bench-ceiling <addr> <server cert> <server key> <client CA bundle>`

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

const BODY: &str = r#"{"request_id":"01M8213EBGFBGGR9M0H4EM4AQ9","status":{"region":"xuzhou","color":"green","level":"clear","source":{"code":"GREEN"},"reasons":[],"as_of":"2026-11-23T00:23:20+08:00","observed_at":"2026-11-22T16:23:20.177Z","holder":{"name_masked":"郭*","id_type":"resident_id","id_masked":"3203**********5510"},"actions":[]},"recognition":{"verifier":"jiangsu","issuer":"jiangsu/xuzhou","recognized":true,"decision":"pass","basis":"xuzhou-within-jiangsu","note":"Green code: pass."},"cache":{"hit":true,"age_ms":12},"served_by":"ceiling"}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: bench-ceiling <addr> <server cert> <server key> <client CA bundle>");
        std::process::exit(2);
    }
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
