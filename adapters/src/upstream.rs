//! Shared plumbing for calling regions: HTTP clients (plain or mTLS with a private CA),
//! size-limited body reads, and the mapping of transport failures to [`AdapterError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::AdapterError;
use crate::secret::Secret;

/// Default limit on an upstream response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// How to reach one region.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// The region's base URL, without trailing slash (e.g. `https://api.example:8443`).
    pub base_url: String,
    /// The federation-agreed deadline for one call (the whole request, body included).
    pub deadline: Duration,
    /// Responses larger than this are `upstream_invalid_response`.
    pub max_body_bytes: usize,
    /// TLS settings for regions that need a private CA or a client certificate.
    pub tls: UpstreamTls,
    /// Most idle keep-alive connections kept to this region.
    pub max_idle_connections: usize,
}

impl UpstreamConfig {
    /// A config with the given base URL and deadline and defaults elsewhere.
    pub fn new(base_url: impl Into<String>, deadline: Duration) -> Self {
        UpstreamConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            deadline,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            tls: UpstreamTls::default(),
            max_idle_connections: 64,
        }
    }

    /// `base_url` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// TLS material for a region (PEM). Without a CA bundle, `https` upstreams are refused:
/// regions are reached through the federation's private PKI, never the public web PKI.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTls {
    /// The region's server CA bundle (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Our client certificate chain for this region (PEM), for mTLS regions.
    pub client_cert_pem: Option<Vec<u8>>,
    /// The key of that certificate (PEM, PKCS#8 or SEC1).
    pub client_key_pem: Option<Secret>,
}

/// Why an upstream client could not be built (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The CA bundle has no certificate or cannot be parsed.
    #[error("the region CA bundle is not valid PEM with at least one certificate")]
    CaBundle,
    /// The client certificate or key cannot be parsed or do not match.
    #[error("the client certificate or key for the region is not valid: {0}")]
    ClientIdentity(String),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Builds the HTTP client for one region: deadline as total timeout, no proxies, no
/// redirects, and rustls (TLS 1.2+ AEAD, aws-lc-rs) with the region's CA and client identity.
pub fn build_client(cfg: &UpstreamConfig) -> Result<reqwest::Client, ClientBuildError> {
    if cfg.base_url.starts_with("https://") && cfg.tls.ca_pem.is_none() {
        return Err(ClientBuildError::CaBundle);
    }
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.deadline)
        .connect_timeout(cfg.deadline)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(cfg.max_idle_connections)
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(tls) = rustls_client_config(&cfg.tls)? {
        builder = builder.tls_backend_preconfigured(tls);
    } else {
        builder = builder.https_only(false);
    }
    builder
        .build()
        .map_err(|e| ClientBuildError::Http(e.to_string()))
}

/// Installs rustls' aws-lc-rs provider as the process default (reqwest asks for one even for
/// plain-HTTP clients). Idempotent.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn rustls_client_config(
    tls: &UpstreamTls,
) -> Result<Option<rustls::ClientConfig>, ClientBuildError> {
    let Some(ca_pem) = &tls.ca_pem else {
        if tls.client_cert_pem.is_some() {
            return Err(ClientBuildError::ClientIdentity(
                "a client certificate needs the region's CA bundle too".into(),
            ));
        }
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|_| ClientBuildError::CaBundle)?;
        roots.add(cert).map_err(|_| ClientBuildError::CaBundle)?;
    }
    if roots.is_empty() {
        return Err(ClientBuildError::CaBundle);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientBuildError::Http(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|_| ClientBuildError::ClientIdentity("certificate PEM".into()))?;
            if chain.is_empty() {
                return Err(ClientBuildError::ClientIdentity(
                    "no certificate in the PEM".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                .map_err(|_| ClientBuildError::ClientIdentity("private key PEM".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientBuildError::ClientIdentity(e.to_string()))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ClientBuildError::ClientIdentity(
                "certificate and key go together".into(),
            ));
        }
    };
    Ok(Some(config))
}

/// Maps a transport error (connect, TLS, timeout, reset) to the gateway's error.
pub fn transport_error(err: &reqwest::Error, deadline: Duration) -> AdapterError {
    if err.is_timeout() {
        AdapterError::Timeout(deadline)
    } else if err.is_connect() {
        AdapterError::unavailable_retryable("connection to the region failed")
    } else if err.is_body() || err.is_decode() {
        AdapterError::invalid_response("the region's body could not be read")
    } else {
        AdapterError::unavailable_retryable("transport error talking to the region")
    }
}

/// Reads a response body, refusing more than `limit` bytes (checked against the declared
/// length first, then while streaming) so a huge body cannot exhaust memory.
pub async fn read_body_limited(
    mut resp: reqwest::Response,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, AdapterError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(AdapterError::invalid_response(
            "response body over the size limit",
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(&e, deadline))?
    {
        if body.len() + chunk.len() > limit {
            return Err(AdapterError::invalid_response(
                "response body over the size limit",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the response's media type is the expected one (`application/json`,
/// `application/xml`, …), ignoring parameters such as `charset`.
pub fn has_media_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

/// Parses a region's JSON answer into `T`: `application/json` only, then one strict pass
/// straight into the typed answer ([`crate::strict_json`]): a duplicate key at any depth, an
/// array where the contract has an object, a value of the wrong JSON type or `null` for a
/// required field is `upstream_invalid_response`. Every JSON adapter goes through here.
pub fn parse_json_answer<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, AdapterError> {
    if !has_media_type(headers, "application/json") {
        return Err(AdapterError::invalid_response(
            "unexpected content type from the region",
        ));
    }
    parse_json_body(body)
}

/// [`parse_json_answer`] without the media-type check (for adapters that checked it before
/// reading the body).
pub fn parse_json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdapterError> {
    crate::strict_json::from_slice(body)
        .map_err(|_| AdapterError::invalid_response("JSON answer not in the contract's shape"))
}

/// `Retry-After` in seconds (the only form regions use), capped at one day.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(86_400)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{CONTENT_TYPE, HeaderValue};

    #[test]
    fn media_type_ignores_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(has_media_type(&h, "application/json"));
        assert!(!has_media_type(&h, "application/xml"));
        assert!(!has_media_type(&HeaderMap::new(), "application/json"));
    }

    #[test]
    fn json_answers_refuse_arrays_where_the_contract_has_objects() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Data {
            color: String,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Env {
            data: Option<Data>,
        }
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let parse = |b: &[u8]| parse_json_answer::<Env>(&h, b);
        assert!(parse(br#"{"data":{"color":"green"}}"#).is_ok());
        assert!(parse(br#"{"data":null}"#).is_ok());
        // What serde alone would accept as a green:
        assert!(parse(br#"{"data":["green"]}"#).is_err());
        assert!(parse(br#"[["green"]]"#).is_err());
        assert!(parse(b"{\"data\":").is_err());
        // Duplicates, top level or inside `data`, and wrong types.
        assert!(parse(br#"{"data":{"color":"red","color":"green"}}"#).is_err());
        assert!(parse(br#"{"data":null,"data":{"color":"green"}}"#).is_err());
        assert!(parse(br#"{"data":{"color":1}}"#).is_err());
        assert!(parse(br#"{"data":{"color":null}}"#).is_err());
        let mut xml = HeaderMap::new();
        xml.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert!(parse_json_answer::<Env>(&xml, br#"{"data":{"color":"green"}}"#).is_err());
    }

    #[test]
    fn retry_after_seconds_only() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999999"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn https_needs_a_private_ca() {
        let mut cfg = UpstreamConfig::new("http://127.0.0.1:1/", Duration::from_secs(1));
        assert_eq!(cfg.base_url, "http://127.0.0.1:1");
        assert!(build_client(&cfg).is_ok());
        cfg.tls.ca_pem = Some(b"not pem".to_vec());
        assert!(matches!(
            build_client(&cfg),
            Err(ClientBuildError::CaBundle)
        ));
    }
}
