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
