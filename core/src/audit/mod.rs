//! The tamper-evident audit trail (security.md "Audit trail"; docs/audit.md).
//!
//! Every lookup, batch item and verify becomes one [`AuditRecord`], written by a
//! background writer as one JSON line carrying `seq` (monotonic across files) and `prev`
//! (the SHA-256 of the previous line), so that an edited, removed or reordered record
//! breaks the chain that [`verify_files`] (`hcgw audit verify`) checks.
//!
//! [`AuditLog::record`] enqueues into a bounded queue. In strict mode (the default) it
//! waits until the record's batch was written (and fsynced with `fsync = "every_batch"`),
//! and fails when it could not be: the caller answers 503 instead of serving unaudited.
//! In non-strict mode it returns once enqueued; records that cannot be written are
//! counted ([`AuditLog::write_failures`], `hcgw_audit_write_failures_total`) and logged
//! at error level, never dropped silently.
//!
//! No record holds a raw identity number, name or QR token: there is no field for one,
//! and `subject_hash` must be the keyed hash (HMAC-SHA256) computed by the caller.
//!
//! In strict mode `record`/`record_all` return each record's [`Receipt`] (`seq` and chain
//! hash), which the answers carry. With a signing key ([`AuditLog::open_signed`]) the log
//! is also an RFC 9162 Merkle tree ([`merkle`]) whose heads the writer signs into
//! `tree-heads.jsonl` ([`TreeHead`]); [`Ledger`] answers inclusion and consistency proofs
//! (docs/proofs.md).

pub mod audited;
mod heads;
pub mod leaves;
pub mod merkle;
mod sink;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hcgw_adapters::{Color, RegionId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, oneshot};

use crate::config::{AuditSection, FsyncPolicy, Role};
use crate::error_code::ErrorCode;

pub use crate::receipt::Receipt;
pub use heads::{
    Consistency, HEADS_FILE, HeadOptions, HeadsReport, Inclusion, Ledger, ProofRefusal,
    SIGNED_TEXT_TAG, TreeHead, head_signature, read_heads, verify_heads,
};
pub use sink::{
    AuditSink, CurrentFile, FileSink, Recovered, file_name, parse_file_name, read_record,
    trail_files,
};
pub use verify::{
    Checkpoint, VerifyError, VerifyErrorKind, VerifyReport, collect_files, trails_below,
    verify_files, verify_with_checkpoints,
};

use writer::{Msg, Writer};

/// `prev` of the first record of a trail.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditCaller {
    /// The configured client name.
    pub name: String,
    /// Lowercase hex SHA-256 of its certificate.
    pub fingerprint: String,
    /// Its role.
    pub role: Role,
    /// Its jurisdiction.
    pub jurisdiction: String,
}

impl From<&crate::identity::Caller> for AuditCaller {
    fn from(c: &crate::identity::Caller) -> Self {
        AuditCaller {
            name: c.name.clone(),
            fingerprint: c.fingerprint.clone(),
            role: c.role,
            jurisdiction: c.jurisdiction.clone(),
        }
    }
}

/// One audited lookup, batch item or verify. Serialised as one JSON object per line
/// (with `seq` and `prev` added by the writer); `None` fields are left out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When the request was handled.
    pub time: DateTime<Utc>,
    /// The request id (`X-Request-Id`).
    pub request_id: String,
    /// The caller, from its verified client certificate.
    pub caller: AuditCaller,
    /// `role:jurisdiction` a peer forwarded the request for (`checkpoint:shanghai`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The peer this gateway forwarded the lookup to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_peer: Option<String>,
    /// What proves the peer's answer: its verified signature and its audit receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_answer: Option<std::sync::Arc<crate::pipeline::PeerProof>>,
    /// `lookup`, `batch` or `verify`.
    pub endpoint: &'static str,
    /// The region asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionId>,
    /// The keyed hash (HMAC-SHA256) of the normalised subject, computed by the caller of
    /// this API. Never the raw identity number, name or QR text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_hash: Option<String>,
    /// The declared purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The checkpoint (verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The colour answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    /// The decision answered (verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The error answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    /// Served from the cache.
    pub cache_hit: bool,
    /// Time spent waiting for the region (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_latency_ms: Option<u64>,
}

impl AuditRecord {
    /// A record of `endpoint` by `caller` now, every optional field empty.
    pub fn new(request_id: impl Into<String>, caller: AuditCaller, endpoint: &'static str) -> Self {
        AuditRecord {
            time: Utc::now(),
            request_id: request_id.into(),
            caller,
            on_behalf_of: None,
            via_peer: None,
            peer_answer: None,
            endpoint,
            region: None,
            subject_hash: None,
            purpose: None,
            checkpoint: None,
            color: None,
            decision: None,
            error: None,
            cache_hit: false,
            upstream_latency_ms: None,
        }
    }
}

/// Why a record was not (or may not have been) written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The queue is full: the writer cannot keep up.
    #[error("the audit queue is full")]
    QueueFull,
    /// The sink failed (I/O error, disk full) writing this record's batch.
    #[error("the audit sink failed: {0}")]
    SinkFailed(String),
    /// The log was shut down or its writer is gone.
    #[error("the audit log is closed")]
    Closed,
    /// The trail cannot be opened (directory, unreadable last record).
    #[error("cannot open the audit trail: {0}")]
    Open(String),
}

impl AuditError {
    /// True for the errors of `record`/`record_all`: the request must be refused with 503
    /// (`region_unavailable`-style "audit unavailable") instead of served unaudited.
    pub fn is_strict_refusal(&self) -> bool {
        !matches!(self, AuditError::Open(_))
    }
}

/// The last complete record of a trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// Its seq.
    pub seq: u64,
    /// Lowercase hex SHA-256 of its line (without the newline).
    pub hash: String,
}

/// How the log writes. [`AuditOptions::from_section`] reads the configuration.
#[derive(Clone)]
pub struct AuditOptions {
    /// Wait for the write (and fail) rather than return once enqueued.
    pub strict: bool,
    /// Start a new file before one would exceed this size.
    pub rotate_bytes: u64,
    /// Start a new file when the UTC day changes.
    pub rotate_daily: bool,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Records waiting for the writer at most.
    pub queue_capacity: usize,
    /// The clock deciding daily rotation and file names (tests move it).
    pub clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Signed tree heads: `None` keeps no Merkle tree and signs nothing.
    pub heads: Option<HeadOptions>,
}

impl AuditOptions {
    /// The options of `[audit]`.
    pub fn from_section(s: &AuditSection) -> Self {
        AuditOptions {
            strict: s.strict,
            rotate_bytes: s.rotate_bytes,
            rotate_daily: s.rotate_daily,
            fsync: s.fsync,
            queue_capacity: s.queue_capacity.max(1),
            clock: Arc::new(Utc::now),
            heads: None,
        }
    }
}

impl std::fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditOptions")
            .field("strict", &self.strict)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("rotate_daily", &self.rotate_daily)
            .field("fsync", &self.fsync)
            .field("queue_capacity", &self.queue_capacity)
            .field("heads", &self.heads)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Stats {
    depth: AtomicUsize,
    failures: AtomicU64,
    healthy: AtomicBool,
    closed: AtomicBool,
    checkpoint: std::sync::Mutex<Option<ChainTip>>,
}

/// How long a strict record waits for room in a full queue before it is refused with
/// [`AuditError::QueueFull`] (the answer is then 503): long enough for the writer to
/// take a burst of concurrent 1,000-item batches, short against a caller's timeout.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The audit trail: a handle to its writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Msg>,
    strict: bool,
    capacity: usize,
    /// Room in the queue, one permit a record (fair: a waiting batch is served in turn,
    /// not overtaken by single records); the writer releases them as it takes records.
    room: Arc<Semaphore>,
    stats: Arc<Stats>,
    ledger: Arc<Ledger>,
    /// The trail's directory (a [`FileSink`]'s), where records are read back for proofs.
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl AuditLog {
    /// Opens the trail in `section.dir` (created when missing), resuming the chain from
    /// the newest file, and starts the writer (a dedicated thread: writes and fsyncs
    /// block, and must not stall the runtime's workers).
    pub fn open(section: &AuditSection) -> Result<AuditLog, AuditError> {
        AuditLog::open_signed(section, None)
    }

    /// [`AuditLog::open`], and with `signer` also keeps the Merkle tree over the records
    /// (rebuilt from the whole trail now) and signs a tree head into
    /// `<dir>/tree-heads.jsonl` every `audit.checkpoint_s` and at shutdown when it grew.
    pub fn open_signed(
        section: &AuditSection,
        signer: Option<Arc<dyn crate::signing::Signer>>,
    ) -> Result<AuditLog, AuditError> {
        let mut opts = AuditOptions::from_section(section);
        opts.heads = signer.map(|signer| HeadOptions {
            path: section.dir.join(HEADS_FILE),
            signer,
            every: std::time::Duration::from_secs(section.checkpoint_s.max(1)),
        });
        let mut log = AuditLog::open_with(opts, Box::new(FileSink::new(&section.dir)))?;
        if let Some(inner) = Arc::get_mut(&mut log.inner) {
            inner.dir = Some(section.dir.clone());
        }
        Ok(log)
    }

    /// Opens a trail on any sink.
    pub fn open_with(
        opts: AuditOptions,
        mut sink: Box<dyn AuditSink>,
    ) -> Result<AuditLog, AuditError> {
        let recovered = sink
            .recover()
            .map_err(|e| AuditError::Open(e.to_string()))?;
        if let Some(tip) = &recovered.tip {
            tracing::info!(seq = tip.seq, hash = %tip.hash, "audit chain resumed");
        }
        let every_s = opts.heads.as_ref().map_or(0, |h| h.every.as_secs());
        let tree = match &opts.heads {
            Some(h) => writer::rebuild(sink.as_mut(), recovered.tip.as_ref(), h),
            None => None,
        };
        let ledger = Arc::new(Ledger::new(tree, every_s));
        if let Some(h) = &opts.heads {
            heads::load_heads(&h.path, &mut ledger.write())
                .map_err(|e| AuditError::Open(format!("{}: {e}", h.path.display())))?;
        }
        if let Some(size) = ledger.tree_size() {
            metrics::gauge!("hcgw_audit_tree_size").set(size as f64);
        }
        let stats = Arc::new(Stats {
            depth: AtomicUsize::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            checkpoint: std::sync::Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let inner = Inner {
            tx,
            strict: opts.strict,
            capacity: opts.queue_capacity.max(1),
            room: Arc::new(Semaphore::new(
                opts.queue_capacity.clamp(1, Semaphore::MAX_PERMITS),
            )),
            stats: stats.clone(),
            ledger: ledger.clone(),
            dir: None,
        };
        let head_size = ledger.latest().map_or(0, |h| h.tree_size);
        let writer = Writer {
            sink,
            opts,
            stats,
            tip: recovered.tip,
            current: recovered.current,
            broken: false,
            dirty: false,
            last_sync: Instant::now(),
            last_batch: None,
            ledger,
            last_head: Instant::now(),
            head_size,
        };
        // The writer logs to the subscriber in effect where the log was opened.
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::Builder::new()
            .name("hcgw-audit".into())
            .spawn(move || tracing::dispatcher::with_default(&dispatch, || writer.run(rx)))
            .map_err(|e| AuditError::Open(format!("cannot start the writer: {e}")))?;
        metrics::gauge!("hcgw_audit_queue_depth").set(0.0);
        Ok(AuditLog {
            inner: Arc::new(inner),
        })
    }

    /// Records one request. Strict: returns once written, with the record's receipt
    /// (Err → answer 503). Non-strict: returns once enqueued, without a receipt (its seq
    /// is not known yet); failures are counted and logged.
    pub async fn record(&self, rec: AuditRecord) -> Result<Option<Receipt>, AuditError> {
        Ok(self.submit(vec![rec]).await?.into_iter().next())
    }

    /// Records several (one per batch item) in one write: all are written or all fail.
    /// Strict: one receipt per record, in order; non-strict: none.
    pub async fn record_all(&self, recs: Vec<AuditRecord>) -> Result<Vec<Receipt>, AuditError> {
        self.submit(recs).await
    }

    /// The Merkle tree and signed tree heads (empty without a signing key).
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The trail's directory, when it is a directory of files.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.inner.dir.as_deref()
    }

    /// Records waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.inner.stats.depth.load(Ordering::Relaxed)
    }

    /// Records that could not be written (queue full, sink failure, closed), since start.
    pub fn write_failures(&self) -> u64 {
        self.inner.stats.failures.load(Ordering::Relaxed)
    }

    /// False after a failed write until the sink recovers (the writer retries every second).
    pub fn is_healthy(&self) -> bool {
        let s = &self.inner.stats;
        s.healthy.load(Ordering::Relaxed) && !s.closed.load(Ordering::Relaxed)
    }

    /// Whether a record submitted now could be written: `Err` when the log is closed or its
    /// sink failed (a write or the writer's periodic check of the trail's directory, until
    /// it recovers). Strict handlers ask before any upstream call. A full queue is not
    /// refused here: it is a moment's backlog the strict `record` waits out
    /// ([`QUEUE_WAIT`]).
    pub fn ready(&self) -> Result<(), AuditError> {
        let s = &self.inner.stats;
        if s.closed.load(Ordering::SeqCst) {
            return Err(AuditError::Closed);
        }
        if !s.healthy.load(Ordering::Relaxed) {
            return Err(AuditError::SinkFailed(
                "the trail failed and has not recovered yet".into(),
            ));
        }
        Ok(())
    }

    /// The latest chain checkpoint logged (every 1000 records and at shutdown), for
    /// shipping off-host: `hcgw audit verify --checkpoint SEQ:HASH`.
    pub fn last_checkpoint(&self) -> Option<ChainTip> {
        self.inner
            .stats
            .checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes what is queued, fsyncs, logs the final checkpoint and stops the writer.
    /// Later `record`s fail with [`AuditError::Closed`] (strict) or are counted.
    pub async fn shutdown(self) {
        self.inner.stats.closed.store(true, Ordering::SeqCst);
        // Records still waiting for room are refused as closed.
        self.inner.room.close();
        let (done, wait) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
    }

    fn refuse(&self, n: usize, err: AuditError) -> Result<Vec<Receipt>, AuditError> {
        self.inner
            .stats
            .failures
            .fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("hcgw_audit_write_failures_total").increment(n as u64);
        if self.inner.strict {
            Err(err)
        } else {
            tracing::error!(records = n, error = %err, "audit records dropped (non-strict mode)");
            Ok(Vec::new())
        }
    }

    async fn submit(&self, recs: Vec<AuditRecord>) -> Result<Vec<Receipt>, AuditError> {
        let n = recs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let stats = &self.inner.stats;
        if stats.closed.load(Ordering::SeqCst) {
            return self.refuse(n, AuditError::Closed);
        }
        // Reserve room: one permit a record; a batch larger than the whole queue takes the
        // whole queue (it passes when the queue is empty). Strict: wait for room at most
        // QUEUE_WAIT; non-strict: never wait.
        let room = &self.inner.room;
        let permits = n.min(self.inner.capacity).min(Semaphore::MAX_PERMITS) as u32;
        let permit = match room.clone().try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(_) if !self.inner.strict => return self.refuse(n, AuditError::QueueFull),
            Err(_) => {
                match tokio::time::timeout(QUEUE_WAIT, room.clone().acquire_many_owned(permits))
                    .await
                {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return self.refuse(n, AuditError::Closed),
                    Err(_) => return self.refuse(n, AuditError::QueueFull),
                }
            }
        };
        let depth = stats.depth.fetch_add(n, Ordering::AcqRel) + n;
        metrics::gauge!("hcgw_audit_queue_depth").set(depth as f64);
        let (ack, wait) = if self.inner.strict {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if self.inner.tx.send(Msg::Records(recs, ack, permit)).is_err() {
            stats.depth.fetch_sub(n, Ordering::AcqRel);
            return self.refuse(n, AuditError::Closed);
        }
        match wait {
            None => Ok(Vec::new()),
            Some(rx) => rx.await.unwrap_or(Err(AuditError::Closed)),
        }
    }
}

/// Lowercase hex SHA-256 of a line's bytes (without its newline).
pub fn hash_line(line: &[u8]) -> String {
    crate::hexfmt::lower(&Sha256::digest(line))
}

/// The bytes of one line (without the newline): `seq`, `prev`, then the record.
pub fn encode_line(seq: u64, prev: &str, rec: &AuditRecord) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Line<'a> {
        seq: u64,
        prev: &'a str,
        #[serde(flatten)]
        rec: &'a AuditRecord,
    }
    serde_json::to_vec(&Line { seq, prev, rec })
}

#[cfg(test)]
mod tests;
