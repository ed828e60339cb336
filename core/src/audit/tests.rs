use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn caller() -> AuditCaller {
    AuditCaller {
        name: "platform-shanghai".into(),
        fingerprint: "ab".repeat(32),
        role: Role::Platform,
        jurisdiction: "shanghai".into(),
    }
}

fn rec(i: usize) -> AuditRecord {
    let mut r = AuditRecord::new(format!("req-{i}"), caller(), "lookup");
    r.region = Some(RegionId::Suzhou);
    r.subject_hash = Some(hash_line(format!("subject-{i}").as_bytes()));
    r.color = Some(Color::Green);
    r.upstream_latency_ms = Some(12);
    r
}

fn opts(strict: bool) -> AuditOptions {
    AuditOptions {
        strict,
        rotate_bytes: 64 * 1024 * 1024,
        rotate_daily: true,
        fsync: FsyncPolicy::EveryBatch,
        queue_capacity: 10_000,
        clock: Arc::new(Utc::now),
        heads: None,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    trail_files(dir).unwrap()
}

fn verify_dir(dir: &Path) -> Result<VerifyReport, VerifyError> {
    verify_files(&files(dir))
}

/// A file sink whose appends fail (after writing what fits: a partial line) once its byte
/// budget is spent; a negative budget is unlimited.
struct FailingSink {
    inner: FileSink,
    budget: Arc<AtomicI64>,
}

impl AuditSink for FailingSink {
    fn recover(&mut self) -> io::Result<Recovered> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "still full"));
        }
        self.inner.recover()
    }
    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()> {
        self.inner.start_file(opened, first_seq)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let budget = self.budget.load(Ordering::SeqCst);
        if budget < 0 || budget as usize >= bytes.len() {
            if budget >= 0 {
                self.budget.fetch_sub(bytes.len() as i64, Ordering::SeqCst);
            }
            return self.inner.append(bytes);
        }
        self.inner.append(&bytes[..budget as usize])?;
        self.budget.store(0, Ordering::SeqCst);
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "No space left on device",
        ))
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// A sink whose appends wait until the gate opens.
struct GatedSink {
    inner: FileSink,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl AuditSink for GatedSink {
    fn recover(&mut self) -> io::Result<Recovered> {
        self.inner.recover()
    }
    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()> {
        self.inner.start_file(opened, first_seq)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (lock, cv) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// The gate of a [`GatedSink`]: the writer blocks in `append` until it is opened.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// A log (strict or not, `queue_capacity` records) over a [`GatedSink`] whose gate is shut,
/// after its first record `rec(0)` has reached the writer and blocked it in the sink.
async fn gated_log(
    strict: bool,
    queue_capacity: usize,
) -> (
    tempfile::TempDir,
    Gate,
    AuditLog,
    tokio::task::JoinHandle<Result<Option<Receipt>, AuditError>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let sink = GatedSink {
        inner: FileSink::new(dir.path()),
        gate: gate.0.clone(),
    };
    let mut o = opts(strict);
    o.queue_capacity = queue_capacity;
    let log = AuditLog::open_with(o, Box::new(sink)).unwrap();
    let first = tokio::spawn({
        let log = log.clone();
        async move { log.record(rec(0)).await }
    });
    // The writer creates the file before it blocks in `append`.
    while files(dir.path()).is_empty() || log.queue_depth() != 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (dir, gate, log, first)
}

#[tokio::test]
async fn chain_over_many_records_and_rotations_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(true);
    o.rotate_bytes = 16 * 1024;
    let log = AuditLog::open_with(o, Box::new(FileSink::new(dir.path()))).unwrap();
    for i in 0..60 {
        log.record(rec(i)).await.unwrap();
    }
    log.record_all((60..120).map(rec).collect()).await.unwrap();
    log.clone().shutdown().await;
    let fs = files(dir.path());
    assert!(fs.len() >= 3, "expected two rotations, got {fs:?}");
    for f in &fs {
        assert!(std::fs::metadata(f).unwrap().len() <= 16 * 1024);
    }
    let report = verify_files(&fs).unwrap();
    assert_eq!(report.records, 120);
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(120)));
    assert!(report.from_genesis);
    // The first record of each file chains to the last record of the previous one, and
    // the file name carries its first seq.
    let first = std::fs::read_to_string(&fs[1]).unwrap();
    let first: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let seq = first["seq"].as_u64().unwrap();
    assert!(
        fs[1]
            .to_str()
            .unwrap()
            .ends_with(&format!("-{seq:020}.jsonl"))
    );
    let prev_text = std::fs::read_to_string(&fs[0]).unwrap();
    let last = prev_text.lines().last().unwrap();
    assert_eq!(first["prev"], hash_line(last.as_bytes()));
    assert_eq!(log.write_failures(), 0);
}

#[tokio::test]
async fn line_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    log.record(rec(1)).await.unwrap();
    log.record(rec(2)).await.unwrap();
    log.shutdown().await;
    let text = std::fs::read_to_string(&files(dir.path())[0]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!(r#"{{"seq":1,"prev":"{GENESIS_PREV}","time":"#)));
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["seq"], 2);
    assert_eq!(v["prev"], hash_line(lines[0].as_bytes()));
    assert_eq!(v["caller"]["role"], "platform");
    assert_eq!(v["endpoint"], "lookup");
    assert_eq!(v["region"], "suzhou");
    assert_eq!(v["color"], "green");
    assert_eq!(v["cache_hit"], false);
}

#[test]
fn a_record_has_no_field_for_personal_data() {
    let mut r = rec(1);
    r.on_behalf_of = Some("checkpoint:shanghai".into());
    r.via_peer = Some("jiangsu".into());
    r.purpose = Some("arrival".into());
    r.checkpoint = Some("hongqiao-gate-3".into());
    r.decision = Some("pass".into());
    r.error = Some(ErrorCode::RegionTimeout);
    let line = encode_line(1, GENESIS_PREV, &r).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    // Any new field must be reviewed against security.md "Personal data".
    assert_eq!(
        keys,
        [
            "cache_hit",
            "caller",
            "checkpoint",
            "color",
            "decision",
            "endpoint",
            "error",
            "on_behalf_of",
            "prev",
            "purpose",
            "region",
            "request_id",
            "seq",
            "subject_hash",
            "time",
            "upstream_latency_ms",
            "via_peer"
        ]
    );
    let mut ck: Vec<&str> = v["caller"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    ck.sort();
    assert_eq!(ck, ["fingerprint", "jurisdiction", "name", "role"]);
}

#[tokio::test]
async fn reopening_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
        for i in 0..10 {
            log.record(rec(round * 10 + i)).await.unwrap();
        }
        log.shutdown().await;
    }
    // Same day, under the size limit: appended to the same file.
    assert_eq!(files(dir.path()).len(), 1);
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.records, report.last_seq), (30, Some(30)));
}

#[tokio::test]
async fn strict_record_fails_when_the_sink_fails_and_the_chain_resumes_intact() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(AtomicI64::new(-1));
    let sink = FailingSink {
        inner: FileSink::new(dir.path()),
        budget: budget.clone(),
    };
    let log = AuditLog::open_with(opts(true), Box::new(sink)).unwrap();
    for i in 0..5 {
        log.record(rec(i)).await.unwrap();
    }
    // Disk full after 100 more bytes: the next line is cut off mid-way.
    budget.store(100, Ordering::SeqCst);
    let err = log.record(rec(5)).await.unwrap_err();
    assert!(matches!(err, AuditError::SinkFailed(_)), "{err:?}");
    assert!(err.is_strict_refusal());
    assert!(!log.is_healthy());
    assert_eq!(log.write_failures(), 1);
    // The file now ends in a partial line.
    assert!(matches!(
        verify_dir(dir.path()).unwrap_err().kind,
        VerifyErrorKind::PartialLine
    ));
    // Still full: still refused.
    assert!(log.record_all(vec![rec(6), rec(7)]).await.is_err());
    assert_eq!(log.write_failures(), 3);
    // Space again: the writer cuts the partial line off and continues from seq 5.
    budget.store(-1, Ordering::SeqCst);
    for i in 8..12 {
        log.record(rec(i)).await.unwrap();
    }
    assert!(log.is_healthy());
    log.shutdown().await;
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.records, report.last_seq), (9, Some(9)));
    // The cut-off bytes are kept aside, outside the trail.
    let torn: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(torn.len(), 1);
    assert_eq!(std::fs::metadata(torn[0].path()).unwrap().len(), 100);
}

#[tokio::test]
async fn a_failure_at_rotation_does_not_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(AtomicI64::new(-1));
    let sink = FailingSink {
        inner: FileSink::new(dir.path()),
        budget: budget.clone(),
    };
    let mut o = opts(true);
    o.rotate_bytes = 2000;
    let log = AuditLog::open_with(o, Box::new(sink)).unwrap();
    for i in 0..3 {
        log.record(rec(i)).await.unwrap();
    }
    // A batch that spans a rotation and fails in the new file.
    budget.store(3000, Ordering::SeqCst);
    assert!(log.record_all((3..20).map(rec).collect()).await.is_err());
    budget.store(-1, Ordering::SeqCst);
    log.record_all((20..40).map(rec).collect()).await.unwrap();
    log.shutdown().await;
    let report = verify_dir(dir.path()).unwrap();
    // Complete lines of the failed batch stay (over-recording, never under-recording).
    assert!(report.records >= 23, "{report}");
    assert!(files(dir.path()).len() >= 3);
}

#[tokio::test]
async fn non_strict_mode_counts_failures_and_returns_ok() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(AtomicI64::new(-1));
    let sink = FailingSink {
        inner: FileSink::new(dir.path()),
        budget: budget.clone(),
    };
    let log = AuditLog::open_with(opts(false), Box::new(sink)).unwrap();
    budget.store(0, Ordering::SeqCst);
    log.record(rec(1)).await.unwrap();
    log.record_all(vec![rec(2), rec(3)]).await.unwrap();
    // The writer is asynchronous: wait for it.
    for _ in 0..200 {
        if log.write_failures() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(log.write_failures(), 3);
    assert!(!log.is_healthy());
    budget.store(-1, Ordering::SeqCst);
    log.record(rec(4)).await.unwrap();
    log.clone().shutdown().await;
    assert_eq!(verify_dir(dir.path()).unwrap().records, 1);
    // After shutdown: counted, not silent.
    log.record(rec(5)).await.unwrap();
    assert_eq!(log.write_failures(), 4);
}

#[tokio::test]
async fn a_full_queue_refuses_in_strict_mode() {
    // The first record reaches the writer and blocks in the sink.
    let (dir, gate, log, first) = gated_log(true, 3).await;
    let mut waiting = Vec::new();
    for i in 1..4 {
        let log = log.clone();
        waiting.push(tokio::spawn(async move { log.record(rec(i)).await }));
    }
    while log.queue_depth() < 3 {
        tokio::task::yield_now().await;
    }
    // Still full after QUEUE_WAIT: refused (the answer is 503), counted.
    let started = std::time::Instant::now();
    assert_eq!(log.record(rec(9)).await, Err(AuditError::QueueFull));
    assert!(started.elapsed() >= QUEUE_WAIT);
    assert_eq!(log.write_failures(), 1);
    // A record (and a batch larger than the whole queue) waiting for room gets it when
    // the writer moves on.
    let patient = tokio::spawn({
        let log = log.clone();
        async move { log.record(rec(5)).await }
    });
    let big = tokio::spawn({
        let log = log.clone();
        async move { log.record_all((10..15).map(rec).collect()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!patient.is_finished() && !big.is_finished());
    gate.open();
    first.await.unwrap().unwrap();
    for w in waiting {
        w.await.unwrap().unwrap();
    }
    assert!(patient.await.unwrap().unwrap().is_some());
    assert_eq!(big.await.unwrap().unwrap().len(), 5);
    assert_eq!(log.queue_depth(), 0);
    log.clone().shutdown().await;
    assert_eq!(verify_dir(dir.path()).unwrap().records, 10);
    assert_eq!(log.write_failures(), 1);
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_in_non_strict_mode() {
    let (dir, gate, log, first) = gated_log(false, 1).await;
    // The writer is blocked on record 0; record 1 fills the queue; record 2 is dropped at
    // once and counted (non-strict never waits).
    log.record(rec(1)).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(log.record(rec(2)).await, Ok(None));
    assert!(started.elapsed() < QUEUE_WAIT);
    assert_eq!(log.write_failures(), 1);
    gate.open();
    first.await.unwrap().unwrap();
    log.shutdown().await;
    assert_eq!(verify_dir(dir.path()).unwrap().records, 2);
}

#[tokio::test]
async fn rotates_at_utc_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 58).unwrap(),
    ));
    let mut o = opts(true);
    o.clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().unwrap())
    };
    let log = AuditLog::open_with(o.clone(), Box::new(FileSink::new(dir.path()))).unwrap();
    log.record(rec(1)).await.unwrap();
    *now.lock().unwrap() = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 1).unwrap();
    log.record(rec(2)).await.unwrap();
    // The clock steps back across midnight: no new file per record.
    *now.lock().unwrap() = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 59).unwrap();
    log.record(rec(21)).await.unwrap();
    log.record(rec(22)).await.unwrap();
    log.shutdown().await;
    // Reopened later the same day: appends to today's file.
    let log = AuditLog::open_with(o, Box::new(FileSink::new(dir.path()))).unwrap();
    log.record(rec(3)).await.unwrap();
    log.shutdown().await;
    let names: Vec<String> = files(dir.path())
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            format!("audit-20261122T235958-{:020}.jsonl", 1),
            format!("audit-20261123T000001-{:020}.jsonl", 2)
        ]
    );
    assert_eq!(verify_dir(dir.path()).unwrap().records, 5);
}

#[tokio::test]
async fn a_partial_last_line_is_cut_off_on_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    for i in 0..4 {
        log.record(rec(i)).await.unwrap();
    }
    log.shutdown().await;
    let f = files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(br#"{"seq":5,"prev":"00"#);
    std::fs::write(&f, &bytes).unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    log.record(rec(5)).await.unwrap();
    log.shutdown().await;
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!((report.records, report.last_seq), (5, Some(5)));
}

#[test]
fn an_unreadable_last_record_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join(file_name(Utc::now(), 1));
    std::fs::write(&name, b"this is not json\n").unwrap();
    let err = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap_err();
    assert!(matches!(err, AuditError::Open(_)), "{err:?}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[tokio::test]
async fn interval_fsync_policy_writes_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(true);
    o.fsync = FsyncPolicy::Interval;
    let log = AuditLog::open_with(o, Box::new(FileSink::new(dir.path()))).unwrap();
    for i in 0..50 {
        log.record(rec(i)).await.unwrap();
    }
    log.shutdown().await;
    assert_eq!(verify_dir(dir.path()).unwrap().records, 50);
}

#[tokio::test]
async fn many_concurrent_callers_are_group_committed_into_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                log.record(rec(t * 100 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.shutdown().await;
    assert_eq!(verify_dir(dir.path()).unwrap().records, 400);
}

#[test]
fn file_names_sort_chronologically_and_parse() {
    let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let a = file_name(t, 9);
    let b = file_name(t, 10);
    assert_eq!(a, format!("audit-20260102T030405-{:020}.jsonl", 9));
    assert!(a < b);
    assert_eq!(parse_file_name(&a), Some(t));
    assert_eq!(parse_file_name("audit-x.jsonl"), None);
    assert_eq!(parse_file_name(&format!("{a}.torn-1-2")), None);
}

#[test]
fn verify_reports_a_chain_that_does_not_start_at_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = encode_line(7, &"1".repeat(64), &rec(7)).unwrap();
    let l2 = encode_line(8, &hash_line(&l1), &rec(8)).unwrap();
    let f = dir.path().join(file_name(Utc::now(), 7));
    std::fs::write(&f, [l1, b"\n".to_vec(), l2, b"\n".to_vec()].concat()).unwrap();
    let report = verify_files(&[f]).unwrap();
    assert!(!report.from_genesis);
    assert!(report.to_string().contains("starts at seq 7"), "{report}");
    // A first record claiming seq 1 must chain to zeros.
    let bad = encode_line(1, &"1".repeat(64), &rec(1)).unwrap();
    let g = dir.path().join("g.jsonl");
    std::fs::write(&g, [bad, b"\n".to_vec()].concat()).unwrap();
    assert_eq!(
        verify_files(&[g]).unwrap_err().kind,
        VerifyErrorKind::BadGenesis
    );
}

#[tokio::test]
async fn chain_checkpoints_every_1000_records_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    assert_eq!(log.last_checkpoint(), None);
    log.record_all((0..999).map(rec).collect()).await.unwrap();
    assert_eq!(log.last_checkpoint(), None);
    log.record_all((999..1500).map(rec).collect())
        .await
        .unwrap();
    let at_1000 = log.last_checkpoint().unwrap();
    assert_eq!(at_1000.seq, 1000);
    log.clone().shutdown().await;
    let report = verify_dir(dir.path()).unwrap();
    let last = log.last_checkpoint().unwrap();
    assert_eq!(
        (Some(last.seq), Some(last.hash)),
        (report.last_seq, report.last_hash)
    );
    let f = &files(dir.path())[0];
    let text = std::fs::read_to_string(f).unwrap();
    assert_eq!(
        at_1000.hash,
        hash_line(text.lines().nth(999).unwrap().as_bytes())
    );
}

/// A file sink that counts its appends (one per batch and file).
struct CountingSink {
    inner: FileSink,
    appends: Arc<AtomicI64>,
}

impl AuditSink for CountingSink {
    fn recover(&mut self) -> io::Result<Recovered> {
        self.inner.recover()
    }
    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()> {
        self.inner.start_file(opened, first_seq)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// Records arriving steadily, each a little after the previous one (faster than the
/// writer's window but slower than a write), are gathered into group commits instead of
/// being written one by one; the chain stays intact.
#[tokio::test]
async fn steady_arrivals_are_written_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let appends = Arc::new(AtomicI64::new(0));
    let sink = CountingSink {
        inner: FileSink::new(dir.path()),
        appends: appends.clone(),
    };
    let mut o = opts(false);
    o.fsync = FsyncPolicy::Interval;
    let log = AuditLog::open_with(o, Box::new(sink)).unwrap();
    const N: usize = 400;
    for i in 0..N {
        log.record(rec(i)).await.unwrap();
        // About 20 µs apart: ten times faster than the window.
        let t = std::time::Instant::now();
        while t.elapsed() < writer::GROUP_COMMIT_WINDOW / 10 {
            std::hint::spin_loop();
        }
    }
    log.clone().shutdown().await;
    let writes = appends.load(Ordering::SeqCst) as usize;
    assert!(
        writes <= N / 4,
        "{writes} writes for {N} steadily arriving records: not grouped"
    );
    assert_eq!(verify_dir(dir.path()).unwrap().records, N as u64);
}

/// An Ed25519 answer-signing key and its certificate, made with the openssl CLI.
fn signing_key(dir: &Path) -> (Arc<crate::signing::SigningKey>, PathBuf) {
    let key = dir.join("sign.key");
    let cert = dir.join("sign.pem");
    let run = |args: &[&str]| {
        assert!(
            std::process::Command::new("openssl")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success(),
            "openssl {args:?}"
        );
    };
    let (k, c) = (key.to_str().unwrap(), cert.to_str().unwrap());
    run(&["genpkey", "-algorithm", "ED25519", "-out", k]);
    run(&[
        "req",
        "-new",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=answers",
        "-key",
        k,
        "-out",
        c,
    ]);
    (
        Arc::new(crate::signing::SigningKey::from_files(&key, &cert).unwrap()),
        cert,
    )
}

fn signed_opts(dir: &Path, signer: Arc<crate::signing::SigningKey>, rotate: u64) -> AuditOptions {
    let mut o = opts(true);
    o.rotate_bytes = rotate;
    o.heads = Some(HeadOptions {
        path: dir.join(HEADS_FILE),
        signer,
        // Long: heads are written at shutdown in these tests.
        every: std::time::Duration::from_secs(3600),
    });
    o
}

#[tokio::test]
async fn strict_records_return_receipts_that_are_the_chain_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(true), Box::new(FileSink::new(dir.path()))).unwrap();
    let one = log.record(rec(1)).await.unwrap().unwrap();
    let many = log.record_all((2..5).map(rec).collect()).await.unwrap();
    log.shutdown().await;
    assert_eq!(one.seq, 1);
    assert_eq!(
        many.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let lines: Vec<String> = std::fs::read_to_string(&files(dir.path())[0])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(one.hash, hash_line(lines[0].as_bytes()));
    for (r, line) in many.iter().zip(&lines[1..]) {
        assert_eq!(r.hash, hash_line(line.as_bytes()));
    }
    // The last receipt is the chain's tip `verify` reports.
    assert_eq!(
        verify_dir(dir.path()).unwrap().last_hash.as_deref(),
        Some(many[2].hash.as_str())
    );
}

#[tokio::test]
async fn non_strict_records_return_no_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(opts(false), Box::new(FileSink::new(dir.path()))).unwrap();
    assert_eq!(log.record(rec(1)).await.unwrap(), None);
    assert_eq!(log.record_all(vec![rec(2), rec(3)]).await.unwrap(), vec![]);
    log.shutdown().await;
}

#[tokio::test]
async fn tree_heads_are_signed_at_shutdown_rebuilt_at_start_and_prove_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, cert) = signing_key(dir.path());
    let trail = dir.path().join("trail");
    let key = crate::signing::VerifyingKey::from_pem_file(&cert).unwrap();
    // Small files: the tree spans several (seq is monotonic across rotation).
    let log = AuditLog::open_with(
        signed_opts(&trail, signer.clone(), 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    assert_eq!(log.ledger().tree_size(), Some(0));
    assert_eq!(log.ledger().inclusion(1), Err(ProofRefusal::UnknownSeq(1)));
    for i in 0..30 {
        log.record(rec(i)).await.unwrap();
    }
    assert!(matches!(
        log.ledger().inclusion(3),
        Err(ProofRefusal::NotYetSigned {
            seq: 3,
            latest: 0,
            ..
        })
    ));
    log.shutdown().await;
    assert!(files(&trail).len() > 2, "rotated");
    let heads = read_heads(&trail.join(HEADS_FILE)).unwrap();
    assert_eq!(heads.len(), 1);
    let head = heads[0].1.clone().unwrap();
    assert_eq!(head.tree_size, 30);
    head.verify(&key).unwrap();
    // A changed field breaks the signature.
    let mut forged = head.clone();
    forged.tree_size = 29;
    assert!(forged.verify(&key).is_err());

    // Restart: the tree is rebuilt from every file, the head is loaded and proofs verify.
    let log = AuditLog::open_with(
        signed_opts(&trail, signer.clone(), 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    assert_eq!(log.ledger().tree_size(), Some(30));
    assert_eq!(log.ledger().latest(), Some(head.clone()));
    let all = files(&trail);
    let lines: Vec<String> = all
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let root = head.root().unwrap();
    for seq in 1..=30u64 {
        let p = log.ledger().inclusion(seq).unwrap();
        let line = read_record(&trail, seq).unwrap().unwrap();
        assert_eq!(line, lines[seq as usize - 1].as_bytes());
        let leaf = merkle::leaf_hash(&line);
        assert_eq!(p.leaf_hash, merkle::to_hex(&leaf));
        let path: Vec<_> = p
            .audit_path
            .iter()
            .map(|h| merkle::from_hex(h).unwrap())
            .collect();
        assert!(merkle::verify_inclusion(
            p.leaf_index,
            p.tree_size,
            &leaf,
            &path,
            &root
        ));
    }
    assert_eq!(read_record(&trail, 31).unwrap(), None);
    assert_eq!(
        log.ledger().inclusion(31),
        Err(ProofRefusal::UnknownSeq(31))
    );
    for i in 30..45 {
        log.record(rec(i)).await.unwrap();
    }
    log.shutdown().await;
    let heads = read_heads(&trail.join(HEADS_FILE)).unwrap();
    assert_eq!(heads.len(), 2);
    let newer = heads[1].1.clone().unwrap();
    assert_eq!(newer.tree_size, 45);
    let log = AuditLog::open_with(
        signed_opts(&trail, signer.clone(), 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    let c = log.ledger().consistency(30, 45).unwrap();
    let proof: Vec<_> = c
        .proof
        .iter()
        .map(|h| merkle::from_hex(h).unwrap())
        .collect();
    assert!(merkle::verify_consistency(
        30,
        45,
        &head.root().unwrap(),
        &newer.root().unwrap(),
        &proof
    ));
    assert_eq!(
        log.ledger().consistency(29, 45),
        Err(ProofRefusal::NoSuchHead(29))
    );
    assert!(matches!(
        log.ledger().consistency(45, 30),
        Err(ProofRefusal::Range(_))
    ));
    // No new records: shutdown writes no head.
    log.shutdown().await;
    assert_eq!(read_heads(&trail.join(HEADS_FILE)).unwrap().len(), 2);

    // The heads check the trail: intact, then a changed record fails on the head.
    let report = verify_heads(
        &all_files(&trail),
        &trail.join(HEADS_FILE),
        std::slice::from_ref(&key),
    )
    .unwrap();
    assert_eq!((report.heads, report.latest_size), (2, Some(45)));
    let first = files(&trail)[0].clone();
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, text.replacen("req-0", "req-X", 1)).unwrap();
    let err = verify_heads(&all_files(&trail), &trail.join(HEADS_FILE), &[key]).unwrap_err();
    assert!(err.contains("the trail was changed"), "{err}");
    // At start the gateway does not serve a head the trail no longer matches.
    let log = AuditLog::open_with(
        signed_opts(&trail, signer, 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    assert_eq!(log.ledger().latest(), None);
    log.shutdown().await;
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
}

#[tokio::test]
async fn a_trail_that_does_not_start_at_seq_1_keeps_no_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = signing_key(dir.path());
    let trail = dir.path().join("trail");
    let log = AuditLog::open_with(
        signed_opts(&trail, signer.clone(), 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    for i in 0..30 {
        log.record(rec(i)).await.unwrap();
    }
    log.shutdown().await;
    std::fs::remove_file(&files(&trail)[0]).unwrap();
    let log = AuditLog::open_with(
        signed_opts(&trail, signer, 2048),
        Box::new(FileSink::new(&trail)),
    )
    .unwrap();
    assert_eq!(log.ledger().tree_size(), None);
    assert_eq!(log.ledger().inclusion(30), Err(ProofRefusal::NoTree));
    // Records are still written.
    assert_eq!(log.record(rec(31)).await.unwrap().unwrap().seq, 31);
    log.shutdown().await;
}

#[test]
fn the_signed_text_is_fixed() {
    assert_eq!(
        TreeHead::signed_text(
            7,
            &"ab".repeat(32),
            "2026-12-02T03:00:00Z",
            "kid",
            "ed25519"
        ),
        format!(
            "hcgw-audit-tree-head/v1\ntree_size: 7\nroot_hash: {}\ntime: 2026-12-02T03:00:00Z\nkey_id: kid\nalgorithm: ed25519\n",
            "ab".repeat(32)
        )
    );
}

/// A file sink whose fsync fails while `fail` is set (the lines are on disk, complete).
struct SyncFailingSink {
    inner: FileSink,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl AuditSink for SyncFailingSink {
    fn recover(&mut self) -> io::Result<Recovered> {
        self.inner.recover()
    }
    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()> {
        self.inner.start_file(opened, first_seq)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("fsync failed"));
        }
        self.inner.sync()
    }
    fn replay(&mut self, each: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        self.inner.replay(each)
    }
}

#[tokio::test]
async fn after_a_failed_batch_left_its_lines_on_disk_the_tree_follows_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, cert) = signing_key(dir.path());
    let trail = dir.path().join("trail");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink = SyncFailingSink {
        inner: FileSink::new(&trail),
        fail: fail.clone(),
    };
    let log = AuditLog::open_with(signed_opts(&trail, signer, 1 << 20), Box::new(sink)).unwrap();
    for i in 0..3 {
        log.record(rec(i)).await.unwrap();
    }
    fail.store(true, Ordering::SeqCst);
    assert!(log.record_all(vec![rec(3), rec(4)]).await.is_err());
    fail.store(false, Ordering::SeqCst);
    // The writer recovers from the disk (seq 5 is the tip now) and rebuilds the tree.
    let r = log.record(rec(5)).await.unwrap().unwrap();
    assert_eq!(r.seq, 6);
    assert_eq!(log.ledger().tree_size(), Some(6));
    log.shutdown().await;
    let key = crate::signing::VerifyingKey::from_pem_file(&cert).unwrap();
    let report = verify_heads(&files(&trail), &trail.join(HEADS_FILE), &[key]).unwrap();
    assert_eq!(report.latest_size, Some(6));
}

#[test]
fn read_heads_names_bad_and_partial_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HEADS_FILE);
    std::fs::write(&path, "").unwrap();
    assert!(read_heads(&path).unwrap().is_empty());
    let head = r#"{"tree_size":1,"root_hash":"00","time":"t","key_id":"k","algorithm":"ed25519","signature":""}"#;
    std::fs::write(&path, format!("{head}\nnot json\n{head}\n{{\"tree_")).unwrap();
    let heads = read_heads(&path).unwrap();
    let lines: Vec<(u64, bool)> = heads.iter().map(|(l, h)| (*l, h.is_ok())).collect();
    assert_eq!(lines, vec![(1, true), (2, false), (3, true), (4, false)]);
    assert_eq!(heads[3].1, Err("incomplete last line".into()));
    // An unknown member is not a head (deny_unknown_fields).
    std::fs::write(
        &path,
        head.replace("\"signature\"", "\"extra\":1,\"signature\"") + "\n",
    )
    .unwrap();
    assert!(read_heads(&path).unwrap()[0].1.is_err());
}
