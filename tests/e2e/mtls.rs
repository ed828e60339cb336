//! The mTLS listener: who gets in, and the identity handlers see.

use crate::support::*;

async fn gateway() -> (hcgw::app::Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), "");
    (start_gateway(&text, dir.path()).await, dir)
}

#[tokio::test]
async fn handshake_without_a_client_certificate_fails() {
    let (gw, _d) = gateway().await;
    let r = fresh_get(gw.api_addr, client_tls(None), "/v1/whoami").await;
    assert!(
        r.is_err(),
        "no client certificate must not get an answer: {r:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn client_certificate_from_an_untrusted_ca_fails() {
    let (gw, _d) = gateway().await;
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&pki().join("untrusted/client"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn revoked_client_certificate_fails_with_the_crl_in_place() {
    let (gw, _d) = gateway().await;
    // Configured as a platform client: only the CRL keeps it out.
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("revoked"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn expired_client_certificate_fails() {
    let (gw, _d) = gateway().await;
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("expired"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn valid_but_unknown_certificate_gets_403_forbidden_everywhere() {
    let (gw, _d) = gateway().await;
    for path in ["/v1/whoami", "/v1/regions", "/no/such/path"] {
        let (status, body) = fresh_get(gw.api_addr, client_tls(Some(&client("unknown"))), path)
            .await
            .unwrap();
        assert_eq!(status, 403, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "forbidden");
        assert_eq!(v["status"], 403);
        assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn each_role_reaches_the_handler_with_its_configured_identity() {
    let (gw, _d) = gateway().await;
    let expected = [
        ("platform-shanghai", "platform", "shanghai"),
        ("platform-guangdong", "platform", "guangdong"),
        ("checkpoint-shanghai", "checkpoint", "shanghai"),
        ("checkpoint-guangzhou", "checkpoint", "guangdong/guangzhou"),
        ("ops", "ops", "federation"),
        ("peer-jiangsu", "peer", "jiangsu"),
    ];
    for (name, role, jurisdiction) in expected {
        let (status, body) = fresh_get(gw.api_addr, client_tls(Some(&client(name))), "/v1/whoami")
            .await
            .unwrap();
        assert_eq!(status, 200, "{name}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (
                v["name"].as_str(),
                v["role"].as_str(),
                v["jurisdiction"].as_str()
            ),
            (Some(name), Some(role), Some(jurisdiction))
        );
        let fp = std::fs::read_to_string(client(name).join("fingerprint.txt")).unwrap();
        assert_eq!(v["fingerprint"], fp.trim(), "{name}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_can_be_matched_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let fp = std::fs::read_to_string(client("unknown").join("fingerprint.txt")).unwrap();
    // Colons and upper case are accepted in the configuration.
    let fp_colons: String = fp
        .trim()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let extra = format!(
        "[[clients]]\nname = \"by-fingerprint\"\nrole = \"checkpoint\"\njurisdiction = \"anhui\"\nfingerprint_sha256 = \"{fp_colons}\"\n"
    );
    let gw = start_gateway(
        &config_text(&TlsPaths::standard(), &dir.path().join("a"), &extra),
        dir.path(),
    )
    .await;
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("unknown"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"by-fingerprint\"") && body.contains("\"anhui\""),
        "{body}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let (gw, _d) = gateway().await;
    let (status, body) = fresh_get(gw.api_addr, client_tls(Some(&client("ops"))), "/v1/regions")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["regions"].as_array().unwrap().len(),
        8,
        "every region is listed"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_port_answers_health_and_readiness_over_plain_http() {
    let (gw, _d) = gateway().await;
    let client = reqwest::Client::new();
    let h = client
        .get(format!("http://{}/healthz", gw.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let r = client
        .get(format!("http://{}/readyz", gw.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true);
    assert!(v["server_certificate_days_left"].as_i64().unwrap() > 300);
    gw.shutdown().await;
}

/// A gateway whose CRLs also cover the second operator's intermediate (so its certificates
/// pass the handshake and only the issuer binding can refuse them), with `extra` clients.
async fn gateway_with_second_operator(extra: &str) -> (hcgw::app::Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut tls = TlsPaths::standard();
    tls.crls
        .push(pki().join("crl/intermediate-zhejiang.crl.pem"));
    let text = config_text(&tls, &dir.path().join("audit"), extra);
    (start_gateway(&text, dir.path()).await, dir)
}

fn whoami_name(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["name"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_same_subject_from_another_operators_intermediate_is_an_unknown_client() {
    let (gw, _d) = gateway_with_second_operator("").await;
    // The real platform-shanghai (dev intermediate) is known …
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("platform-shanghai"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami_name(&body), "platform-shanghai");
    // … the same subject issued by Zhejiang's intermediate under the same root is not.
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&pki().join("impostors/platform-shanghai"))),
        "/v1/whoami",
    )
    .await
    .expect("the handshake succeeds: the chain is CA-valid");
    assert_eq!(status, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "forbidden");
    gw.shutdown().await;
}

const JIANGSU_PEER: &str = r#"
[[clients]]
name = "hcgw-jiangsu"
role = "peer"
jurisdiction = "jiangsu"
subject = "O=jiangsu, OU=peer, CN=hcgw-jiangsu"
max_on_behalf_of = "platform"
"#;

#[tokio::test]
async fn a_peer_certificate_reissued_by_another_operator_is_refused() {
    let (gw, _d) = gateway_with_second_operator(JIANGSU_PEER).await;
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&pki().join("gateways/hcgw-jiangsu"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami_name(&body), "hcgw-jiangsu");
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&pki().join("impostors/hcgw-jiangsu"))),
        "/v1/whoami",
    )
    .await
    .expect("the handshake succeeds: the chain is CA-valid");
    assert_eq!(
        status, 403,
        "Zhejiang's certificate with Jiangsu's subject: {body}"
    );
    gw.shutdown().await;
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo, computed with the openssl CLI.
fn spki_sha256_by_openssl(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[tokio::test]
async fn a_client_can_be_pinned_by_its_public_key() {
    let pin = spki_sha256_by_openssl(&client("unknown").join("cert.pem"));
    let extra = format!(
        "[[clients]]\nname = \"pinned\"\nrole = \"ops\"\njurisdiction = \"federation\"\nspki_sha256 = \"{pin}\"\n"
    );
    let (gw, _d) = gateway_with_second_operator(&extra).await;
    let (status, body) = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("unknown"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami_name(&body), "pinned");
    // another key with a subject nobody configured stays unknown
    let (status, _) = fresh_get(
        gw.api_addr,
        client_tls(Some(&pki().join("impostors/hcgw-jiangsu"))),
        "/v1/whoami",
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_expired_crl_refuses_handshakes_makes_the_gateway_not_ready_and_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("lapsed-intermediate.crl.pem");
    make_expired_intermediate_crl(&crl);
    let mut tls = TlsPaths::standard();
    tls.crls = vec![crl, pki().join("crl/root.crl.pem")];
    let text = config_text(&tls, &dir.path().join("audit"), "");
    let gw = start_gateway(&text, dir.path()).await;

    // Every client of the intermediate is refused in the handshake.
    let r = fresh_get(
        gw.api_addr,
        client_tls(Some(&client("platform-shanghai"))),
        "/v1/whoami",
    )
    .await;
    assert!(r.is_err(), "a lapsed CRL must refuse the handshake: {r:?}");

    let admin = reqwest::Client::new();
    let r = admin
        .get(format!("http://{}/readyz", gw.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ready"], false);
    let reasons = v["crls_lapsed"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{v}");
    let reason = reasons[0].as_str().unwrap();
    assert!(
        reason.contains("lapsed-intermediate.crl.pem") && reason.contains("2020-01-02T00:00:00Z"),
        "{reason}"
    );

    let metrics = admin
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "hcgw_crl_next_update_timestamp_seconds{crl=\"lapsed-intermediate.crl.pem\"}",
            )
        })
        .unwrap_or_else(|| panic!("no CRL gauge in:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, 1_577_923_200.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_gateway_with_current_crls_is_ready_and_exports_their_next_update() {
    let (gw, _d) = gateway().await;
    let admin = reqwest::Client::new();
    let v: serde_json::Value = admin
        .get(format!("http://{}/readyz", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["revocation"], "enforced");
    assert_eq!(v["crls_lapsed"], serde_json::json!([]));
    let metrics = admin
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hcgw_crl_next_update_timestamp_seconds{crl=\"root.crl.pem\"}"))
        .unwrap_or_else(|| panic!("no CRL gauge in:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > now, "{line}");
    gw.shutdown().await;
}
