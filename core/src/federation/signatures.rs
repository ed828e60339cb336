//! A peer's answer-signing keys and the check of its answers' signatures (issue 15,
//! docs/proofs.md).
//!
//! The keys come from the peer's `GET /v1/signing-keys`, over the same mTLS connection as
//! its answers. A key is used only when its certificate was issued, through its chain, by
//! the peer's CA (`peers[].ca`) for document signing, is valid now, names the peer as its
//! common name, and its `key_id` is its thumbprint. An answer whose `keyid` is not known
//! refetches the keys — at most once per [`REFRESH_EVERY`] — then is refused if it is still
//! unknown. Every answer, problem answers too, must carry a signature that holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::pipeline::PeerProof;
use crate::receipt::Receipt;
use crate::signing::{AnswerSignatureError, VerifyingKey, verify_answer};

/// The least time between two fetches of a peer's keys.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How far a signature's `created` may be from this gateway's clock.
pub const MAX_SKEW_S: i64 = 300;

/// The signing keys of one peer.
#[derive(Debug)]
pub(super) struct PeerKeys {
    /// The peer's name: the common name its signing certificates must carry.
    gateway: String,
    url: String,
    anchors: Vec<CertificateDer<'static>>,
    known: RwLock<Known>,
}

#[derive(Debug, Default)]
struct Known {
    keys: HashMap<String, VerifyingKey>,
    fetched: Option<Instant>,
}

#[derive(Deserialize)]
struct Published {
    keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_id: String,
    certificate: String,
}

#[derive(Deserialize)]
struct WithReceipt {
    #[serde(default)]
    audit: Option<Receipt>,
}

impl PeerKeys {
    /// The keys of peer `gateway` at `base_url`, trusted through the CA certificates `anchors`.
    pub(super) fn new(
        gateway: &str,
        base_url: &str,
        anchors: Vec<CertificateDer<'static>>,
    ) -> Self {
        PeerKeys {
            gateway: gateway.to_owned(),
            url: format!("{}/v1/signing-keys", base_url.trim_end_matches('/')),
            anchors,
            known: RwLock::new(Known::default()),
        }
    }

    /// Checks the signature of a peer's answer and returns what proves it, with the
    /// answer's audit receipt when it has one. `Err` says why the answer is refused.
    pub(super) async fn check(
        &self,
        client: &reqwest::Client,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<PeerProof, String> {
        let now = chrono::Utc::now().timestamp();
        let first = {
            let known = self.known.read().await;
            verify_answer(
                status,
                headers,
                body,
                |id| known.keys.get(id),
                now,
                MAX_SKEW_S,
            )
        };
        let verified = match first {
            Err(AnswerSignatureError::UnknownKey(id)) => {
                self.refresh(client).await?;
                let known = self.known.read().await;
                verify_answer(
                    status,
                    headers,
                    body,
                    |id| known.keys.get(id),
                    now,
                    MAX_SKEW_S,
                )
                .map_err(|e| match e {
                    AnswerSignatureError::UnknownKey(_) => {
                        format!("an answer signed by a key it does not publish ({id})")
                    }
                    e => format!("an answer whose signature does not hold ({e})"),
                })?
            }
            Err(e) => return Err(format!("an answer whose signature does not hold ({e})")),
            Ok(v) => v,
        };
        let receipt = serde_json::from_slice::<WithReceipt>(body)
            .map_err(|_| "an answer with an unreadable audit receipt".to_owned())?
            .audit;
        if let Some(r) = &receipt
            && !(r.hash.len() == 64
                && r.hash
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err("an answer with a malformed audit receipt".into());
        }
        let content_digest = headers
            .get("content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(PeerProof {
            key_id: verified.key_id,
            created: verified.created,
            signature_input: verified.signature_input,
            signature: verified.signature,
            content_digest,
            receipt,
        })
    }

    /// Fetches the peer's published keys (at most once per [`REFRESH_EVERY`]) and keeps
    /// those whose certificates hold; `Err` when the fetch itself fails.
    async fn refresh(&self, client: &reqwest::Client) -> Result<(), String> {
        let mut known = self.known.write().await;
        if known.fetched.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return Ok(());
        }
        known.fetched = Some(Instant::now());
        let fail = |why: &str| format!("an answer it cannot prove: its signing keys {why}");
        let resp = client
            .get(&self.url)
            .send()
            .await
            .map_err(|_| fail("could not be fetched"))?;
        if resp.status().as_u16() != 200 {
            return Err(fail(&format!("answered HTTP {}", resp.status().as_u16())));
        }
        let bytes = super::client::read_limited(resp)
            .await
            .map_err(|e| fail(&format!("could not be read ({e})")))?;
        let published: Published =
            serde_json::from_slice(&bytes).map_err(|_| fail("are not a key list"))?;
        let mut keys = HashMap::new();
        for k in published.keys {
            let key = match VerifyingKey::from_pem(&k.certificate) {
                Ok(key) if key.key_id() == k.key_id => key,
                Ok(_) => {
                    tracing::warn!(peer = %self.gateway, key_id = %k.key_id, "peer signing key refused: key id is not its thumbprint");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(peer = %self.gateway, key_id = %k.key_id, error = %e, "peer signing key refused");
                    continue;
                }
            };
            if let Err(e) = key.check_issued_to(&self.anchors, &self.gateway) {
                tracing::warn!(peer = %self.gateway, key_id = %k.key_id, error = %e, "peer signing key refused");
                continue;
            }
            keys.insert(key.key_id().to_owned(), key);
        }
        tracing::info!(peer = %self.gateway, keys = keys.len(), "peer signing keys fetched");
        known.keys = keys;
        Ok(())
    }
}
