//! The three questions the API asks the core — a lookup, a batch of lookups, a verify —
//! and the one path each takes: validate → fetch → decide → audit. Handlers parse the
//! request into a [`Query`], call [`LookupService::answer`] (or
//! [`LookupService::answer_batch`]) and render the [`Decided`] answer.
//!
//! The order of the checks is part of the contract: the caller's role, the request's own
//! fields, the region, then (strict audit) whether the audit trail can take the record —
//! before any region or peer is asked, so a lookup that could not be audited sends no
//! personal data out. No answer is served without its audit record (strict mode).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use hcgw_adapters::{RegionId, Subject};

use super::{Fetched, LookupError, LookupService};
use crate::audit::audited::Audited;
use crate::config::Role;
use crate::error_code::ErrorCode;
use crate::identity::acting::Acting;
use crate::protect::quota::{BATCH_PATIENCE, BatchPacing, Quotas, Refusal};
use crate::recognition::Recognition;
use crate::subject::SubjectIn;

/// Distinct upstream lookups of one batch in flight at once.
pub const BATCH_CONCURRENCY: usize = 32;

/// Which endpoint asks (the audit record's `endpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/lookup`.
    Lookup,
    /// One item of `POST /v1/lookup/batch`.
    Batch,
    /// `POST /v1/verify`.
    Verify,
}

impl Endpoint {
    /// The name in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Lookup => "lookup",
            Endpoint::Batch => "batch",
            Endpoint::Verify => "verify",
        }
    }
}

/// A question as the caller asked it, before validation.
#[derive(Debug)]
pub enum Query<'a> {
    /// A lookup (or one batch item): a region, a subject and an optional purpose.
    Lookup {
        /// The region id as sent.
        region: &'a str,
        /// The subject as sent.
        subject: &'a SubjectIn,
        /// Free text up to 64 characters, recorded in the audit trail.
        purpose: Option<&'a str>,
    },
    /// A verify: the raw scanned QR text and the checkpoint's own id.
    Verify {
        /// The QR text.
        qr: &'a str,
        /// The checkpoint id, up to 64 characters.
        checkpoint: Option<&'a str>,
    },
}

/// A validated question: the region, the subject the adapter takes, and what the audit
/// record keeps of the request.
#[derive(Clone, Debug)]
pub struct Validated {
    endpoint: Endpoint,
    /// The region asked.
    pub region: RegionId,
    subject: Subject,
    purpose: Option<String>,
    checkpoint: Option<String>,
}

/// An answer, decided for the acting caller.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The region that answered.
    pub region: RegionId,
    /// The status and where it came from; `None` when the region could not answer and a
    /// verify turned that into a manual check.
    pub fetched: Option<Fetched>,
    /// The view of the status the caller may see: the acting role's, or the checkpoint
    /// view when a peer answered with only that.
    pub view: Role,
    /// The recognition decision for the acting jurisdiction.
    pub recognition: Recognition,
    /// The receipt of the answer's audit record (strict mode; `None` before it is recorded
    /// and in non-strict mode).
    pub receipt: Option<crate::receipt::Receipt>,
}

/// Attaches the receipt of its audit record to an answer or error.
fn with_receipt(
    answer: Result<Decided, LookupError>,
    receipt: Option<crate::receipt::Receipt>,
) -> Result<Decided, LookupError> {
    match answer {
        Ok(mut d) => {
            d.receipt = receipt;
            Ok(d)
        }
        Err(e) => Err(e.with_receipt(receipt)),
    }
}

fn check_short_text(field: &str, value: Option<&str>) -> Result<(), LookupError> {
    match value {
        Some(v) if v.chars().count() > 64 || v.chars().any(char::is_control) => {
            Err(LookupError::invalid(format!(
                "{field}: at most 64 characters, no control characters"
            )))
        }
        _ => Ok(()),
    }
}

fn not_served(region: RegionId) -> LookupError {
    LookupError::new(
        ErrorCode::UnknownRegion,
        format!("{region} is not served by this gateway nor by its peers"),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LookupService {
    /// Validates a question: its short texts, the region (known to the federation and
    /// served here or by a peer), the subject (resident-id check digit, QR format and
    /// region). A batch item is validated as [`Endpoint::Batch`].
    pub fn validate(&self, query: Query<'_>, batch: bool) -> Result<Validated, LookupError> {
        match query {
            Query::Lookup {
                region,
                subject,
                purpose,
            } => {
                let region = region.parse::<RegionId>().map_err(|_| {
                    LookupError::new(
                        ErrorCode::UnknownRegion,
                        "region: not a region id known to the federation",
                    )
                })?;
                if !self.knows(region) {
                    return Err(not_served(region));
                }
                check_short_text("purpose", purpose)?;
                let subject = subject.validate(region)?;
                Ok(Validated {
                    endpoint: if batch {
                        Endpoint::Batch
                    } else {
                        Endpoint::Lookup
                    },
                    region,
                    subject,
                    purpose: purpose.map(str::to_owned),
                    checkpoint: None,
                })
            }
            Query::Verify { qr, checkpoint } => {
                check_short_text("checkpoint", checkpoint)?;
                let detected = hcgw_adapters::qr::detect(qr)
                    .map_err(|e| LookupError::new(ErrorCode::UnrecognizedQr, e.to_string()))?;
                let region = detected.region;
                if !self.knows(region) {
                    return Err(not_served(region).with_region(region));
                }
                Ok(Validated {
                    endpoint: Endpoint::Verify,
                    region,
                    subject: Subject::QrToken(detected.token),
                    purpose: None,
                    checkpoint: checkpoint.map(str::to_owned),
                })
            }
        }
    }

    /// Answers one validated question for `acting`: checks that the audit trail can take
    /// the record (strict mode), fetches the status (cache, protection, region or peer),
    /// decides recognition with the current time, and records the audit record — the
    /// answer is returned only once its record is written (strict mode). A verify turns an
    /// upstream fault into a manual-check answer: a gate needs an answer.
    pub async fn answer(&self, acting: &Acting, q: Validated) -> Result<Decided, LookupError> {
        self.auditor().ready()?;
        let mut ctx = acting.forward_context();
        ctx.purpose = q.purpose.clone();
        let result = self.fetch(q.region, &q.subject, &ctx).await;
        let decided = self.decide(acting, &q, &result);
        let receipt = self
            .auditor()
            .record(vec![self.audited(acting, q, &result, &decided)])
            .await?
            .into_iter()
            .next()
            .flatten();
        with_receipt(decided, receipt)
    }

    /// The decision for a fetched status (or a verify's manual check for an upstream
    /// fault).
    fn decide(
        &self,
        acting: &Acting,
        q: &Validated,
        result: &Result<Fetched, LookupError>,
    ) -> Result<Decided, LookupError> {
        match result {
            Ok(f) => Ok(self.decision(acting, f)),
            Err(e) if q.endpoint == Endpoint::Verify && e.code.is_upstream_fault() => Ok(Decided {
                region: q.region,
                fetched: None,
                view: acting.role,
                recognition: self
                    .policy()
                    .unavailable(&acting.jurisdiction, q.region, e.code),
                receipt: None,
            }),
            Err(e) => Err(e.clone()),
        }
    }

    /// The recognition decision for `fetched`, as `acting` may see it.
    fn decision(&self, acting: &Acting, fetched: &Fetched) -> Decided {
        // A peer that showed only the checkpoint view is not second-guessed: nothing it
        // withheld is made up here.
        let view = match fetched.peer_view {
            Some(Role::Checkpoint) => Role::Checkpoint,
            _ => acting.role,
        };
        let max_age = self.max_status_age(fetched.status.region);
        let recognition = self.policy().decide(
            &acting.jurisdiction,
            &fetched.status,
            chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::hours(24)),
            chrono::Utc::now(),
        );
        Decided {
            region: fetched.status.region,
            fetched: Some(fetched.clone()),
            view,
            recognition,
            receipt: None,
        }
    }

    /// The audit record of one answered question.
    fn audited(
        &self,
        acting: &Acting,
        q: Validated,
        result: &Result<Fetched, LookupError>,
        decided: &Result<Decided, LookupError>,
    ) -> Audited {
        Audited::lookup(
            q.endpoint.as_str(),
            acting,
            q.region,
            self.hasher().audit_hash(&q.subject),
            q.purpose,
            q.checkpoint,
        )
        .outcome(result, decided.as_ref().ok().map(|d| &d.recognition))
    }

    /// Answers a batch of validated items (each `Err` is an item that failed validation
    /// and is answered with its error). Each distinct question is asked once, at most
    /// [`BATCH_CONCURRENCY`] at a time, each item waiting up to [`BATCH_PATIENCE`] for its
    /// region's rate. With `pacing` (a batch larger than its caller's burst), the items
    /// beyond the prepaid ones are taken in burst-sized chunks, each paid for from `quotas`
    /// before any of its questions is asked; the chunk that cannot be paid for in time, and
    /// every later one, is answered `rate_limited`. All records are written together, and
    /// the batch is answered only once they are (strict mode).
    pub async fn answer_batch(
        self: &Arc<Self>,
        acting: &Acting,
        items: Vec<Result<Validated, LookupError>>,
        pacing: Option<(BatchPacing, Arc<Quotas>)>,
    ) -> Result<Vec<Result<Decided, LookupError>>, LookupError> {
        // Strict audit: refused before any region or peer is asked when the trail is failing.
        self.auditor().ready()?;
        // The items in chunks: the first `prepaid` are paid for; each later chunk takes its
        // quota (one burst's worth at most) before any of its questions is asked.
        let (prepaid, chunk) = match &pacing {
            Some((p, _)) => (p.prepaid, p.chunk.max(1)),
            None => (items.len(), 1),
        };
        let chunk_of = |i: usize| {
            if i < prepaid {
                0
            } else {
                1 + (i - prepaid) / chunk
            }
        };
        let chunks = items
            .len()
            .checked_sub(1)
            .map_or(0, |last| chunk_of(last) + 1);
        // Each distinct question once, with the purpose of its first item (forwarded to a
        // peer), in the chunk of that item.
        let mut seen: HashSet<String> = HashSet::new();
        let mut questions: Vec<Vec<Question>> = vec![Vec::new(); chunks];
        let keys: Vec<Option<String>> = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_ref().ok().map(|v| {
                    let key = self.hasher().cache_key(v.region, &v.subject);
                    if seen.insert(key.clone()) {
                        questions[chunk_of(i)].push((
                            key.clone(),
                            v.region,
                            v.subject.clone(),
                            v.purpose.clone(),
                        ));
                    }
                    key
                })
            })
            .collect();
        let chunk_cost = |c: usize| {
            let (from, to) = if c == 0 {
                (0, prepaid)
            } else {
                (prepaid + (c - 1) * chunk, prepaid + c * chunk)
            };
            to.min(items.len()).saturating_sub(from) as u32
        };
        let costs: Vec<u32> = (0..chunks).map(chunk_cost).collect();
        // Where the batch stopped (quota not refilled in time, or the audit trail failing):
        // the first chunk not asked, and the error its items and all later ones get.
        let stopped: Arc<Mutex<Option<(usize, LookupError)>>> = Arc::new(Mutex::new(None));
        // Duplicates cost one upstream call; distinct ones run with bounded concurrency.
        // Batch items wait for the region's rate limit instead of being refused: a manifest
        // is paced at the rate the region publishes (BATCH_PATIENCE at most).
        let mut ctx = acting.forward_context();
        ctx.patience = Some(BATCH_PATIENCE);
        let gated = futures_util::stream::iter(questions.into_iter().zip(costs).enumerate()).then(
            |(c, (qs, cost))| {
                let (service, pacing, stopped) = (self.clone(), pacing.clone(), stopped.clone());
                async move {
                    if c > 0 && lock(&stopped).is_none() {
                        let refusal = match &pacing {
                            Some((p, quotas)) => quotas
                                .take_by(&p.client, cost, p.deadline)
                                .await
                                .err()
                                .map(|wait| Refusal::Spent(wait).into_error()),
                            None => None,
                        };
                        let refusal = refusal.or_else(|| service.auditor().ready().err());
                        if let Some(e) = refusal {
                            *lock(&stopped) = Some((c, e));
                        }
                    }
                    let go = lock(&stopped).is_none();
                    futures_util::stream::iter(qs.into_iter().filter(move |_| go))
                }
            },
        );
        let answers: HashMap<String, Result<Fetched, LookupError>> = gated
            .flatten()
            .map(|(key, region, subject, purpose)| {
                let service = self.clone();
                let mut ctx = ctx.clone();
                ctx.purpose = purpose;
                let id = crate::request_id::current().unwrap_or_default();
                async move {
                    let r = crate::request_id::scope(id, async {
                        service.fetch(region, &subject, &ctx).await
                    })
                    .await;
                    (key, r)
                }
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let stopped = lock(&stopped).take();
        let mut results = Vec::with_capacity(items.len());
        let mut audit = Vec::new();
        // The result index of each audit record.
        let mut audited_at = Vec::new();
        for (i, (v, key)) in items.into_iter().zip(keys).enumerate() {
            let item = match (v, key) {
                (Err(e), _) => Err(e),
                (Ok(v), Some(key)) => {
                    let result = match &stopped {
                        // Not paid for (or not auditable): not answered, even when an
                        // earlier item asked the same question.
                        Some((from, e)) if chunk_of(i) >= *from => Err(e.clone()),
                        _ => answers.get(&key).cloned().unwrap_or_else(|| {
                            Err(LookupError::new(ErrorCode::RegionUnavailable, "no answer"))
                        }),
                    };
                    let decided = self.decide(acting, &v, &result);
                    audit.push(self.audited(acting, v, &result, &decided));
                    audited_at.push(i);
                    decided
                }
                (Ok(_), None) => Err(LookupError::new(ErrorCode::RegionUnavailable, "no answer")),
            };
            results.push(item);
        }
        let receipts = self.auditor().record(audit).await?;
        for (i, receipt) in audited_at.into_iter().zip(receipts) {
            let item = std::mem::replace(
                &mut results[i],
                Err(LookupError::new(ErrorCode::RegionUnavailable, "no answer")),
            );
            results[i] = with_receipt(item, receipt);
        }
        Ok(results)
    }
}

/// One distinct question of a batch: its cache key, region, subject and the purpose of its
/// first item.
type Question = (String, RegionId, Subject, Option<String>);
