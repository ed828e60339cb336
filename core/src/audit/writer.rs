//! The writer thread: group commit, the hash chain, rotation, fsync policy, recovery.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::heads::{HeadOptions, Ledger, TreeHead, append_head};
use super::leaves::FileLeaves;
use super::merkle::{self, Tree};
use super::sink::{AuditSink, CurrentFile};
use super::{
    AuditError, AuditOptions, AuditRecord, ChainTip, GENESIS_PREV, Receipt, Stats, encode_line,
    hash_line,
};
use crate::config::FsyncPolicy;

/// Most records written in one batch.
const MAX_BATCH: usize = 4096;
/// A checkpoint (seq and hash at info level) every this many records.
pub(super) const CHECKPOINT_EVERY: u64 = 1000;
/// Longest time between fsyncs with `fsync = "interval"`, and between recovery attempts.
const INTERVAL: Duration = Duration::from_secs(1);
/// Under sustained load, how long the writer lets records gather after the first one
/// arrives before it writes them as one batch (group commit). One write, one wake-up of
/// this thread and one round of acknowledgements then serve many requests instead of one
/// each; a request waits this much longer at most.
pub(super) const GROUP_COMMIT_WINDOW: Duration = Duration::from_micros(100);
/// "Sustained load": the previous batch was written less than this long before the next
/// record arrived. After a quieter spell the first record is written at once.
const BUSY_GAP: Duration = Duration::from_millis(2);

pub(super) type Ack = oneshot::Sender<Result<Vec<Receipt>, AuditError>>;

/// The seq of a record line: its leading `{"seq":N` (as [`encode_line`] writes it), or
/// the JSON's `seq`.
fn seq_of(line: &[u8]) -> Option<u64> {
    if let Some(rest) = line.strip_prefix(b"{\"seq\":") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b',') {
            return std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
        }
    }
    super::sink::tip_of(line).ok().map(|t| t.seq)
}

/// The Merkle tree over the whole trail, read back through the sink: `None` (with a
/// warning) when the sink cannot replay, the trail does not start at seq 1 (older files
/// removed) or its seqs are not 1, 2, 3… — proofs are not served then.
///
/// The leaves of completed chunks go to a new `tree-leaves.bin` beside the heads file
/// ([`FileLeaves`]); `None` too when it cannot be created.
pub(super) fn rebuild(
    sink: &mut dyn AuditSink,
    tip: Option<&ChainTip>,
    heads: &HeadOptions,
) -> Option<Tree> {
    let dir = heads.path.parent().unwrap_or(std::path::Path::new("."));
    let store = match FileLeaves::create(dir, 1 << merkle::CHUNK_BITS) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the audit tree's leaf file: no signed tree heads, no proofs");
            return None;
        }
    };
    let mut tree = Tree::with_store(Box::new(store), merkle::CHUNK_BITS);
    let mut broken: Option<String> = None;
    let replayed = sink.replay(&mut |line| {
        if broken.is_some() {
            return;
        }
        let expected = tree.size() + 1;
        match seq_of(line) {
            Some(seq) if seq == expected => {
                if let Err(e) = tree.push(merkle::leaf_hash(line)) {
                    log_unstored(&tree, &e);
                }
            }
            found => broken = Some(format!("seq {found:?} where {expected} was expected")),
        }
    });
    let why = match replayed {
        Err(e) => Some(e.to_string()),
        Ok(false) => Some("the audit sink cannot be read back".into()),
        Ok(true) => broken.or_else(|| {
            (tree.size() != tip.map_or(0, |t| t.seq))
                .then(|| "the tree does not end at the chain's tip".to_string())
        }),
    };
    match why {
        None => {
            tracing::info!(
                records = tree.size(),
                "audit Merkle tree rebuilt from the trail"
            );
            Some(tree)
        }
        Some(why) => {
            tracing::warn!(reason = %why, "no Merkle tree over the audit trail (it must start at seq 1): no signed tree heads, no proofs");
            None
        }
    }
}

/// A completed chunk of leaves the leaf file did not take (it is held in memory and
/// offered again with the next chunk).
fn log_unstored(tree: &Tree, e: &std::io::Error) {
    tracing::error!(error = %e, chunks_in_memory = tree.unstored_chunks(), "cannot write the audit tree's leaf file; its chunks are held in memory until it can");
}

pub(super) enum Msg {
    /// Records, the acknowledgement a strict caller waits on, and their room in the
    /// queue (released when the writer takes them).
    Records(
        Vec<AuditRecord>,
        Option<Ack>,
        tokio::sync::OwnedSemaphorePermit,
    ),
    Shutdown(oneshot::Sender<()>),
}

pub(super) struct Writer {
    pub sink: Box<dyn AuditSink>,
    pub opts: AuditOptions,
    pub stats: Arc<Stats>,
    pub tip: Option<ChainTip>,
    pub current: Option<CurrentFile>,
    /// The sink failed: recover before the next write.
    pub broken: bool,
    /// Written but not yet fsynced (interval policy).
    pub dirty: bool,
    pub last_sync: Instant,
    /// When the last batch was written (decides whether to gather the next one).
    pub last_batch: Option<Instant>,
    /// The Merkle tree and signed heads.
    pub ledger: Arc<Ledger>,
    /// When the last tree head was due.
    pub last_head: Instant,
    /// The tree size of the latest signed head.
    pub head_size: u64,
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let first = if self.dirty || self.broken {
                let wait = if self.dirty {
                    INTERVAL.saturating_sub(self.last_sync.elapsed())
                } else {
                    INTERVAL
                };
                match rx.recv_timeout(wait) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.idle();
                        self.maybe_head(false);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                // Idle: check the trail about once a second, so that a failing one is known
                // (and strict lookups refused before any region is asked) before the next
                // record arrives.
                match rx.recv_timeout(INTERVAL) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.check();
                        self.maybe_head(false);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            if matches!(first, Msg::Records(..)) && self.busy() {
                std::thread::sleep(GROUP_COMMIT_WINDOW);
            }
            let mut batch = Vec::new();
            let mut count = 0;
            let mut shutdown = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Records(recs, ack, room) => {
                        count += recs.len();
                        batch.push((recs, ack));
                        // Taken off the queue: its room is free again.
                        drop(room);
                    }
                    Msg::Shutdown(done) => shutdown = Some(done),
                }
                if count < MAX_BATCH || shutdown.is_some() {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write_batch(batch, count);
                self.last_batch = Some(Instant::now());
                self.maybe_head(false);
            }
            if let Some(done) = shutdown {
                self.finish();
                let _ = done.send(());
                return;
            }
        }
        self.finish();
    }

    /// Whether records have been arriving steadily (see [`BUSY_GAP`]).
    fn busy(&self) -> bool {
        self.last_batch.is_some_and(|t| t.elapsed() < BUSY_GAP)
    }

    fn idle(&mut self) {
        if self.dirty && self.last_sync.elapsed() >= INTERVAL {
            self.sync();
        }
        if self.broken && self.recover().is_ok() {
            tracing::info!("audit sink recovered");
        }
    }

    fn check(&mut self) {
        if let Err(e) = self.sink.check() {
            tracing::error!(error = %e, "audit trail unusable; records are refused until it recovers");
            self.fail();
        }
    }

    fn sync(&mut self) {
        match self.sink.sync() {
            Ok(()) => {
                self.dirty = false;
                self.last_sync = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "audit fsync failed");
                self.fail();
            }
        }
    }

    /// The chain checkpoint to ship off-host (docs/audit.md, "What a chain cannot prove").
    fn checkpoint(&self, tip: ChainTip) {
        tracing::info!(seq = tip.seq, hash = %tip.hash, "audit chain checkpoint");
        *self
            .stats
            .checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tip);
    }

    fn fail(&mut self) {
        self.broken = true;
        self.stats.healthy.store(false, Ordering::Relaxed);
    }

    fn recover(&mut self) -> std::io::Result<()> {
        // Recovered only when the trail also passes the idle check, or a trail made
        // unusable would flap between healthy and failed once a second.
        let recovered = self
            .sink
            .recover()
            .and_then(|r| self.sink.check().map(|()| r));
        match recovered {
            Ok(r) => {
                self.tip = r.tip;
                self.current = r.current;
                self.broken = false;
                self.dirty = false;
                self.resync_tree();
                self.stats.healthy.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "audit sink cannot recover");
                self.fail();
                Err(e)
            }
        }
    }

    /// Signs and appends a tree head when one is due (every `audit.checkpoint_s`, or
    /// `now` at shutdown) and the tree grew since the last one.
    fn maybe_head(&mut self, now: bool) {
        let Some(opts) = &self.opts.heads else { return };
        if !now && self.last_head.elapsed() < opts.every {
            return;
        }
        self.last_head = Instant::now();
        let (size, root) = {
            let state = self.ledger.write();
            let Some(tree) = state.tree.as_ref() else {
                return;
            };
            let size = tree.size();
            if size <= self.head_size {
                return;
            }
            match tree.root(size) {
                Ok(root) => (size, root),
                Err(_) => return,
            }
        };
        let head = TreeHead::sign(size, &root, (self.opts.clock)(), opts.signer.as_ref());
        match append_head(&opts.path, &head) {
            Ok(()) => {
                self.head_size = size;
                tracing::info!(tree_size = size, root_hash = %head.root_hash, "audit tree head signed");
                metrics::counter!("hcgw_audit_tree_heads_total").increment(1);
                let mut state = self.ledger.write();
                state.heads.push((size, root));
                state.latest = Some(head);
            }
            Err(e) => {
                // Not served: a head a reader cannot find in the file proves nothing.
                tracing::error!(file = %opts.path.display(), error = %e, "cannot write the audit tree head; retrying at the next interval");
            }
        }
    }

    /// After a recovery, the tree must end where the chain does (a failed batch may have
    /// left complete lines on disk): rebuilt from the trail when it does not.
    fn resync_tree(&mut self) {
        let want = self.tip.as_ref().map_or(0, |t| t.seq);
        let have = self.ledger.write().tree.as_ref().map(Tree::size);
        if have.is_some_and(|h| h != want)
            && let Some(heads) = &self.opts.heads
        {
            let tree = rebuild(self.sink.as_mut(), self.tip.as_ref(), heads);
            self.ledger.write().tree = tree;
        }
    }

    fn finish(&mut self) {
        if !self.broken {
            self.sync();
        }
        self.maybe_head(true);
        if let Some(tip) = &self.tip {
            self.checkpoint(tip.clone());
        }
    }

    fn write_batch(&mut self, batch: Vec<(Vec<AuditRecord>, Option<Ack>)>, count: usize) {
        let depth = self.stats.depth.fetch_sub(count, Ordering::AcqRel) - count;
        metrics::gauge!("hcgw_audit_queue_depth").set(depth as f64);
        let result = self.write(&batch);
        match &result {
            Ok(_) => {
                metrics::counter!("hcgw_audit_records_total").increment(count as u64);
                metrics::counter!("hcgw_audit_batches_total").increment(1);
            }
            Err(e) => {
                self.stats
                    .failures
                    .fetch_add(count as u64, Ordering::Relaxed);
                metrics::counter!("hcgw_audit_write_failures_total").increment(count as u64);
                tracing::error!(records = count, error = %e, "audit write failed; records not written");
            }
        }
        let mut receipts = match result {
            Ok(r) => Ok(r.into_iter()),
            Err(e) => Err(e),
        };
        for (recs, ack) in batch {
            let mine = match &mut receipts {
                Ok(all) => Ok(all.by_ref().take(recs.len()).collect()),
                Err(e) => Err(e.clone()),
            };
            if let Some(ack) = ack {
                let _ = ack.send(mine);
            }
        }
    }

    fn write(
        &mut self,
        batch: &[(Vec<AuditRecord>, Option<Ack>)],
    ) -> Result<Vec<Receipt>, AuditError> {
        let failed = |e: std::io::Error| AuditError::SinkFailed(e.to_string());
        if self.broken {
            self.recover().map_err(failed)?;
        }
        let mut tip = self.tip.clone();
        let mut current = self.current;
        let mut pending: Vec<u8> = Vec::new();
        let mut checkpoints = Vec::new();
        let keep_tree = self.opts.heads.is_some();
        let mut written: Vec<(Receipt, Option<merkle::Hash>)> = Vec::new();
        let result = (|| {
            for rec in batch.iter().flat_map(|(recs, _)| recs) {
                let seq = tip.as_ref().map_or(1, |t| t.seq + 1);
                let prev = tip.as_ref().map_or(GENESIS_PREV, |t| t.hash.as_str());
                let line = encode_line(seq, prev, rec)
                    .map_err(|e| AuditError::SinkFailed(format!("cannot encode a record: {e}")))?;
                let now = (self.opts.clock)();
                let rotate = match current {
                    None => true,
                    Some(c) => {
                        (c.len > 0 && c.len + line.len() as u64 + 1 > self.opts.rotate_bytes)
                            || (self.opts.rotate_daily && now.date_naive() > c.opened.date_naive())
                    }
                };
                if rotate {
                    if !pending.is_empty() {
                        self.sink.append(&pending).map_err(failed)?;
                        pending.clear();
                    }
                    if current.is_some() {
                        self.sink.sync().map_err(failed)?;
                    }
                    // Names must sort chronologically even if the clock steps back.
                    let opened = current.map_or(now, |c| c.opened.max(now));
                    self.sink.start_file(opened, seq).map_err(failed)?;
                    current = Some(CurrentFile { opened, len: 0 });
                }
                let hash = hash_line(&line);
                written.push((
                    Receipt {
                        seq,
                        hash: hash.clone(),
                    },
                    keep_tree.then(|| merkle::leaf_hash(&line)),
                ));
                pending.extend_from_slice(&line);
                pending.push(b'\n');
                if let Some(c) = current.as_mut() {
                    c.len += line.len() as u64 + 1;
                }
                if seq.is_multiple_of(CHECKPOINT_EVERY) {
                    checkpoints.push((seq, hash.clone()));
                }
                tip = Some(ChainTip { seq, hash });
            }
            if !pending.is_empty() {
                self.sink.append(&pending).map_err(failed)?;
            }
            match self.opts.fsync {
                FsyncPolicy::EveryBatch => {
                    self.sink.sync().map_err(failed)?;
                    self.last_sync = Instant::now();
                }
                FsyncPolicy::Interval => {
                    if self.last_sync.elapsed() >= INTERVAL {
                        self.sink.sync().map_err(failed)?;
                        self.last_sync = Instant::now();
                        self.dirty = false;
                    } else {
                        self.dirty = true;
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.tip = tip;
                self.current = current;
                self.stats.healthy.store(true, Ordering::Relaxed);
                for (seq, hash) in checkpoints {
                    self.checkpoint(ChainTip { seq, hash });
                }
                if keep_tree {
                    let mut state = self.ledger.write();
                    if let Some(tree) = state.tree.as_mut() {
                        for leaf in written.iter().filter_map(|(_, l)| *l) {
                            if let Err(e) = tree.push(leaf) {
                                log_unstored(tree, &e);
                            }
                        }
                        metrics::gauge!("hcgw_audit_tree_size").set(tree.size() as f64);
                    }
                }
                Ok(written.into_iter().map(|(r, _)| r).collect())
            }
            Err(e) => {
                // The end of the trail is unknown now (maybe a partial line): recover
                // from what is on disk before the next write.
                self.fail();
                Err(e)
            }
        }
    }
}
