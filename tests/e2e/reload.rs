//! Hot reload of the server certificate, client CA bundle and CRL: new handshakes see the
//! new files; an open keep-alive connection keeps working, unless the new files no longer
//! accept its client certificate (then it is closed: see `connections.rs`).

use std::path::Path;

use crate::support::*;

fn copy(from: &Path, to: &Path) {
    // Write-then-rename, as deployment tools do, so the gateway never reads half a file.
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn subject_cn(der: &[u8]) -> String {
    hcgw::identity::DistinguishedName::of_certificate(der)
        .unwrap()
        .canonical()
}

#[tokio::test]
async fn crl_reload_revokes_new_handshakes_and_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("intermediate.crl.pem");
    make_intermediate_crl(&crl, false);
    let mut tls = TlsPaths::standard();
    tls.crls = vec![crl.clone(), pki().join("crl/root.crl.pem")];
    let gw = start_gateway(
        &config_text(&tls, &dir.path().join("audit"), ""),
        dir.path(),
    )
    .await;

    // Not yet revoked: the revoked client gets in and keeps its connection open.
    let mut open = Conn::open(gw.api_addr, client_tls(Some(&client("revoked"))))
        .await
        .unwrap();
    let (status, body) = open.get("/v1/whoami").await.unwrap();
    assert_eq!(status, 200, "{body}");

    // The CRL that lists it is put in place.
    let revoked_crl = dir.path().join("with-revoked.pem");
    make_intermediate_crl(&revoked_crl, true);
    copy(&revoked_crl, &crl);
    eventually(
        10,
        "new handshakes refuse the revoked certificate",
        async || {
            fresh_get(
                gw.api_addr,
                client_tls(Some(&client("revoked"))),
                "/v1/whoami",
            )
            .await
            .is_err()
        },
    )
    .await;

    // The revoked client's open keep-alive connection is closed too.
    eventually(
        10,
        "the revoked client's open connection is closed",
        async || open.get("/v1/whoami").await.is_err(),
    )
    .await;
    // Other clients are unaffected.
    let (status, _) = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("platform-shanghai"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(gw.state.tls.reloads() >= 1);

    // The verifier in force re-checks a stored chain: the revoked client's is refused now,
    // another client's still passes (for closing connections a reload revoked).
    let chain = |name: &str| -> Vec<rustls_pki_types::CertificateDer<'static>> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::pem_file_iter(client(name).join("cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let verifier = gw.state.tls.current_verifier();
    let now = rustls_pki_types::UnixTime::now();
    let revoked = chain("revoked");
    let err = verifier
        .verify_client_cert(&revoked[0], &revoked[1..], now)
        .expect_err("the reloaded CRL revokes it");
    assert!(format!("{err:?}").contains("Revoked"), "{err:?}");
    let good = chain("platform-shanghai");
    verifier
        .verify_client_cert(&good[0], &good[1..], now)
        .expect("platform-shanghai is not revoked");
    gw.shutdown().await;
}

#[tokio::test]
async fn server_certificate_and_ca_bundle_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key.pem");
    let ca = dir.path().join("ca.pem");
    copy(&p.join("gateways/hcgw-dev/cert.pem"), &cert);
    copy(&p.join("gateways/hcgw-dev/key.pem"), &key);
    copy(&p.join("ca-bundle.pem"), &ca);
    // No CRLs here: with CRLs configured, a CA without one is refused (fail closed), which
    // would hide what this test is about.
    let tls = TlsPaths {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: ca.clone(),
        crls: vec![],
    };
    let gw = start_gateway(
        &config_text(&tls, &dir.path().join("audit"), ""),
        dir.path(),
    )
    .await;

    let mut open = Conn::open(gw.api_addr, client_tls(Some(&client("platform-shanghai"))))
        .await
        .unwrap();
    assert!(subject_cn(&open.server_cert).contains("CN=hcgw-dev"));
    assert_eq!(open.get("/v1/whoami").await.unwrap().0, 200);

    // Replace the server certificate: key first, then certificate (a half-done change is
    // refused and retried, never served).
    copy(&p.join("gateways/hcgw-shanghai/key.pem"), &key);
    copy(&p.join("gateways/hcgw-shanghai/cert.pem"), &cert);
    eventually(
        10,
        "new handshakes present the new server certificate",
        async || match Conn::open(gw.api_addr, client_tls(Some(&client("platform-shanghai")))).await
        {
            Ok(c) => subject_cn(&c.server_cert).contains("CN=hcgw-shanghai"),
            Err(_) => false,
        },
    )
    .await;
    assert_eq!(
        open.get("/v1/whoami")
            .await
            .expect("open connection survives")
            .0,
        200
    );

    // Replace the client CA bundle with the untrusted CA: federation clients are now
    // refused (their open connections closed), the untrusted CA's client is accepted (and,
    // unknown, gets 403).
    copy(&p.join("untrusted/ca.pem"), &ca);
    eventually(
        10,
        "federation clients refused after the CA bundle changed",
        async || {
            fresh_get(
                gw.api_addr,
                client_tls(Some(&client("platform-shanghai"))),
                "/v1/whoami",
            )
            .await
            .is_err()
        },
    )
    .await;
    let (status, _) = fresh_get(
        gw.api_addr,
        client_tls(Some(&p.join("untrusted/client"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
    eventually(
        10,
        "an open connection whose certificate no longer chains to the bundle is closed",
        async || open.get("/v1/whoami").await.is_err(),
    )
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn unusable_replacement_files_keep_the_previous_settings() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let cert = dir.path().join("server.pem");
    copy(&p.join("gateways/hcgw-dev/cert.pem"), &cert);
    let mut tls = TlsPaths::standard();
    tls.cert = cert.clone();
    let gw = start_gateway(
        &config_text(&tls, &dir.path().join("audit"), ""),
        dir.path(),
    )
    .await;
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, _) = fresh_get(gw.api_addr, client_tls(Some(&client("ops"))), "/v1/whoami")
        .await
        .unwrap();
    assert_eq!(status, 200, "the previous settings stay in force");
    assert_eq!(gw.state.tls.reloads(), 0);
    gw.shutdown().await;
}
