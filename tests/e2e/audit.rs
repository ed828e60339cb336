//! The audit trail on disk and `hcgw audit verify`: tampering of every kind is found and
//! named by file and line; a writer killed mid-stream resumes an intact chain; no raw
//! identity number ever reaches an audit file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hcgw::audit::{
    AuditCaller, AuditLog, AuditOptions, AuditRecord, FileSink, hash_line, trail_files,
};
use hcgw::config::{AuditSection, FsyncPolicy, Role};
use hcgw_adapters::{Color, RegionId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A resident identity number that must never appear in an audit file.
const RAW_ID: &str = "32050119900307123X";
const SUBJECT_KEY: &[u8] = b"test-subject-key-not-a-secret";

fn subject_hash(raw: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SUBJECT_KEY).unwrap();
    mac.update(raw.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn rec(i: usize) -> AuditRecord {
    let caller = AuditCaller {
        name: "checkpoint-shanghai".into(),
        fingerprint: "cd".repeat(32),
        role: Role::Checkpoint,
        jurisdiction: "shanghai".into(),
    };
    let mut r = AuditRecord::new(format!("req-{i:06}"), caller, "verify");
    r.region = Some(RegionId::Hangzhou);
    r.subject_hash = Some(subject_hash(RAW_ID));
    r.checkpoint = Some("hongqiao-gate-3".into());
    r.color = Some(if i.is_multiple_of(7) {
        Color::Yellow
    } else {
        Color::Green
    });
    r.decision = Some(if i.is_multiple_of(7) { "deny" } else { "pass" }.into());
    r.upstream_latency_ms = Some(20 + (i % 30) as u64);
    r
}

fn options(rotate_bytes: u64) -> AuditOptions {
    AuditOptions {
        strict: true,
        rotate_bytes,
        rotate_daily: true,
        fsync: FsyncPolicy::EveryBatch,
        queue_capacity: 10_000,
        clock: Arc::new(Utc::now),
        heads: None,
    }
}

/// Writes `n` records (single records and batches mixed) into `dir`.
async fn write_trail(dir: &Path, n: usize, rotate_bytes: u64) {
    let log = AuditLog::open_with(options(rotate_bytes), Box::new(FileSink::new(dir))).unwrap();
    let mut i = 0;
    while i < n {
        if i % 3 == 0 {
            let k = (n - i).min(5);
            log.record_all((i..i + k).map(rec).collect()).await.unwrap();
            i += k;
        } else {
            log.record(rec(i)).await.unwrap();
            i += 1;
        }
    }
    log.shutdown().await;
}

fn verify(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .arg("audit")
        .arg("verify")
        .args(args)
        .output()
        .expect("run hcgw audit verify")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts `hcgw audit verify dir` fails naming `at` (`file:line`), with `what` in the message.
fn assert_broken(dir: &Path, at: &str, what: &str) {
    let o = verify(&[dir]);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}; stderr: {err}",
        stdout(&o)
    );
    assert!(err.contains(at), "expected {at} in: {err}");
    assert!(err.contains(what), "expected {what:?} in: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// The parts of the raw identity number a leak would show: its masked form, its area code
/// and its date of birth.
const RAW_ID_PARTS: [&str; 3] = ["3205**********123X", "320501", "19900307"];

/// `text` with what holds digits by chance blanked out: every digest (a run of 32 or more
/// lowercase hex digits) and the fraction of every time ("12:37:45.320501234Z"). Any six
/// digits turn up in those now and then: a few hundred records' hashes and nanoseconds held
/// "320501" roughly once in 100 runs.
fn without_chance_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let end_run = |run: &mut String, out: &mut String, next: Option<char>| {
        let digest = run.len() >= 32;
        let fraction = next == Some('Z')
            && run.bytes().all(|b| b.is_ascii_digit())
            && out
                .strip_suffix('.')
                .is_some_and(|o| o.ends_with(|c: char| c.is_ascii_digit()));
        if !digest && !fraction {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if matches!(c, '0'..='9' | 'a'..='f') {
            run.push(c);
        } else {
            end_run(&mut run, &mut out, Some(c));
            out.push(c);
        }
    }
    end_run(&mut run, &mut out, None);
    out
}

/// No file in `dir` (trail files, torn pieces, anything) contains the raw identity number,
/// nor a part of it (outside digests and time fractions).
fn assert_no_raw_id(dir: &Path) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(RAW_ID),
            "{} contains the raw id",
            path.display()
        );
        let outside = without_chance_digits(&text);
        for part in RAW_ID_PARTS {
            assert!(
                !outside.contains(part),
                "{} contains {part}, a part of the raw id",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn a_part_of_the_raw_id_is_found_outside_digests_and_time_fractions() {
    let digest = format!("{}320501{}", "ab".repeat(20), "cd".repeat(20));
    assert!(!without_chance_digits(&format!(r#"{{"hash":"{digest}"}}"#)).contains("320501"));
    let time = r#"{"time":"2026-12-03T12:37:45.320501234Z"}"#;
    assert_eq!(
        without_chance_digits(time),
        r#"{"time":"2026-12-03T12:37:45.Z"}"#
    );
    for leak in [
        r#"{"id":"320501"}"#,
        r#"{"masked":"3205**********123X"}"#,
        r#"{"dob":"19900307","area":"x320501y"}"#,
        "abc320501",
    ] {
        let outside = without_chance_digits(leak);
        assert!(
            RAW_ID_PARTS.iter().any(|p| outside.contains(p)),
            "{leak} -> {outside}"
        );
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// A trail of 300 records over at least three files (two rotations).
async fn trail() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 300, 32 * 1024).await;
    let files = trail_files(dir.path()).unwrap();
    assert!(files.len() >= 3, "{files:?}");
    (dir, files)
}

fn at(file: &Path, line: usize) -> String {
    format!("{}:{line}:", file.display())
}

#[tokio::test]
async fn an_intact_chain_over_rotations_verifies() {
    let (dir, files) = trail().await;
    let o = verify(&[dir.path()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("chain intact: 300 records in"), "{out}");
    assert!(out.contains("seq 1..300"), "{out}");
    assert_eq!(out.lines().count(), 1);
    // Files given out of order are sorted by name.
    let mut reversed: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    reversed.reverse();
    let o = verify(&reversed);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_no_raw_id(dir.path());
}

#[tokio::test]
async fn an_edited_record_is_named() {
    let (dir, files) = trail().await;
    let f = &files[1];
    let mut ls = lines(f);
    assert!(ls[4].contains(r#""decision":"deny""#) || ls[4].contains(r#""decision":"pass""#));
    ls[4] = ls[4]
        .replace(r#""decision":"deny""#, r#""decision":"PASS""#)
        .replace(r#""decision":"pass""#, r#""decision":"deny""#);
    write_lines(f, &ls);
    // Found at the next record, naming the edited one.
    assert_broken(dir.path(), &at(f, 6), &format!("{}:5", f.display()));
    assert_broken(dir.path(), &at(f, 6), "was changed");
}

#[tokio::test]
async fn an_edited_last_record_of_a_file_is_found_in_the_next_file() {
    let (dir, files) = trail().await;
    let f = &files[0];
    let mut ls = lines(f);
    let last = ls.len() - 1;
    ls[last] = ls[last].replace(r#""cache_hit":false"#, r#""cache_hit":true"#);
    write_lines(f, &ls);
    assert_broken(
        dir.path(),
        &at(&files[1], 1),
        &format!("{}:{}", f.display(), last + 1),
    );
}

#[tokio::test]
async fn a_removed_record_is_named() {
    let (dir, files) = trail().await;
    let f = &files[1];
    let mut ls = lines(f);
    ls.remove(10);
    write_lines(f, &ls);
    assert_broken(dir.path(), &at(f, 11), "missing");
}

#[tokio::test]
async fn reordered_records_are_named() {
    let (dir, files) = trail().await;
    let f = &files[0];
    let mut ls = lines(f);
    ls.swap(20, 21);
    write_lines(f, &ls);
    assert_broken(dir.path(), &at(f, 21), "out of order");
}

#[tokio::test]
async fn a_removed_middle_file_is_named() {
    let (dir, files) = trail().await;
    std::fs::remove_file(&files[1]).unwrap();
    assert_broken(dir.path(), &at(&files[2], 1), "missing");
}

#[tokio::test]
async fn a_truncated_last_line_is_named() {
    let (dir, files) = trail().await;
    let f = files.last().unwrap();
    let n = lines(f).len();
    let len = std::fs::metadata(f).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
    file.set_len(len - 40).unwrap();
    assert_broken(dir.path(), &at(f, n), "incomplete last line");
}

#[tokio::test]
async fn a_cut_in_the_middle_and_invalid_json_are_named() {
    let (dir, files) = trail().await;
    let f = &files[1];
    // Bytes cut out of the middle: two lines merge into one.
    let text = std::fs::read_to_string(f).unwrap();
    let third = text.match_indices('\n').nth(2).unwrap().0;
    let mut cut = text.clone();
    cut.replace_range(third - 30..third + 30, "");
    std::fs::write(f, &cut).unwrap();
    assert_broken(dir.path(), &at(f, 3), "not valid JSON");
    // A line replaced by something that is not JSON.
    let mut ls: Vec<String> = text.lines().map(String::from).collect();
    ls[7] = "garbage".into();
    write_lines(f, &ls);
    assert_broken(dir.path(), &at(f, 8), "not valid JSON");
}

#[tokio::test]
async fn verify_rejects_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir
        .path()
        .join("audit-20260101T000000-00000000000000000001.jsonl");
    let o = verify(&[&missing]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&at(&missing, 0)), "{}", stderr(&o));
    // An empty directory is not an intact trail.
    let o = verify(&[dir.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no audit-*.jsonl files"),
        "{}",
        stderr(&o)
    );
}

const CHILD_DIR: &str = "HCGW_AUDIT_CHILD_DIR";

/// Not a test of its own: the child process `the_writer_killed_mid_stream_resumes` kills.
/// It writes records from several tasks until it is killed.
#[test]
#[ignore = "child process of the_writer_killed_mid_stream_resumes"]
fn audit_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let log = AuditLog::open_with(options(16 * 1024), Box::new(FileSink::new(&dir))).unwrap();
        let mut tasks = Vec::new();
        for t in 0..4 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let r = if i % 5 == 0 {
                        log.record_all((0..3).map(|k| rec(t * 1000 + k)).collect())
                            .await
                            .map(drop)
                    } else {
                        log.record(rec(t * 1000 + i)).await.map(drop)
                    };
                    r.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn count_lines(dir: &Path) -> usize {
    trail_files(dir)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            std::fs::read(f)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test]
async fn the_writer_killed_mid_stream_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "audit::audit_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(dir.path()) < 500 {
        assert!(Instant::now() < deadline, "the child wrote too little");
        assert!(child.try_wait().unwrap().is_none(), "the child exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    child.wait().unwrap();

    // A write cut off by the crash: a partial line at the end of the newest file.
    let files = trail_files(dir.path()).unwrap();
    assert!(files.len() >= 2, "rotated while writing: {files:?}");
    let newest = files.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    if bytes.is_empty() || bytes.last() == Some(&b'\n') {
        bytes.extend_from_slice(br#"{"seq":999999,"prev":"12ab"#);
        std::fs::write(newest, &bytes).unwrap();
    }
    let o = verify(&[dir.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("incomplete last line"),
        "{}",
        stderr(&o)
    );
    let before = count_lines(dir.path());

    // Restart through the configuration: the partial line is cut off (kept aside) and the
    // chain continues from the last complete record.
    let section = AuditSection {
        dir: dir.path().to_path_buf(),
        strict: true,
        rotate_bytes: 16 * 1024,
        fsync: FsyncPolicy::EveryBatch,
        queue_capacity: 1000,
        rotate_daily: true,
        checkpoint_s: 60,
    };
    let log = AuditLog::open(&section).unwrap();
    for i in 0..25 {
        log.record(rec(i)).await.unwrap();
    }
    log.shutdown().await;
    let o = verify(&[dir.path()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("seq 1..{}", before + 25)), "{out}");
    let torn = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".torn-")
        })
        .count();
    assert_eq!(torn, 1);
    assert_no_raw_id(dir.path());
}

#[tokio::test]
async fn hashes_are_of_the_exact_line_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), 3, 1024 * 1024).await;
    let f = &trail_files(dir.path()).unwrap()[0];
    let ls = lines(f);
    let second: serde_json::Value = serde_json::from_str(&ls[1]).unwrap();
    assert_eq!(second["prev"], hash_line(ls[0].as_bytes()));
    // Whitespace alone is an edit.
    let mut edited = ls.clone();
    edited[0] = edited[0].replacen(':', ": ", 1);
    write_lines(f, &edited);
    assert_broken(dir.path(), &at(f, 2), "was changed");
    assert_no_raw_id(dir.path());
}

fn verify_with(dir: &Path, checkpoints: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcgw"));
    cmd.args(["audit", "verify"]).arg(dir);
    for c in checkpoints {
        cmd.args(["--checkpoint", c]);
    }
    cmd.output().expect("run hcgw audit verify")
}

#[tokio::test]
async fn removed_newest_records_are_found_only_with_a_shipped_checkpoint() {
    let (dir, files) = trail().await;
    let newest = files.last().unwrap();
    let mut ls = lines(newest);
    let last = ls.last().unwrap().clone();
    let checkpoint = format!("300:{}", hash_line(last.as_bytes()));
    let o = verify_with(dir.path(), std::slice::from_ref(&checkpoint));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The last two records removed: the chain alone is still intact…
    ls.truncate(ls.len() - 2);
    write_lines(newest, &ls);
    let o = verify(&[dir.path()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("seq 1..298"), "{}", stdout(&o));
    // …but not against the checkpoint shipped off-host.
    let o = verify_with(dir.path(), &[checkpoint]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&at(newest, ls.len())), "{err}");
    assert!(err.contains("records were removed from the end"), "{err}");

    // The last record edited: found by its checkpoint.
    let mut edited = ls.clone();
    let n = edited.len() - 1;
    let cp = format!("298:{}", hash_line(edited[n].as_bytes()));
    edited[n] = edited[n].replace(r#""cache_hit":false"#, r#""cache_hit":true"#);
    write_lines(newest, &edited);
    let o = verify_with(dir.path(), &[cp]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&at(newest, n + 1)), "{}", stderr(&o));
    assert!(stderr(&o).contains("shipped checkpoint"), "{}", stderr(&o));
    // A malformed checkpoint is a usage error.
    let o = verify_with(dir.path(), &["nonsense".into()]);
    assert_eq!(o.status.code(), Some(2));
}

/// Not a test of its own: the child process of `chain_checkpoints_are_logged`, with the
/// process-wide log subscriber a gateway has.
#[test]
#[ignore = "child process of chain_checkpoints_are_logged"]
fn audit_checkpoint_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let log = AuditLog::open_with(options(1024 * 1024), Box::new(FileSink::new(&dir))).unwrap();
        for chunk in 0..25 {
            log.record_all((chunk * 100..chunk * 100 + 100).map(rec).collect())
                .await
                .unwrap();
        }
        log.shutdown().await;
    });
}

#[test]
fn chain_checkpoints_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "audit::audit_checkpoint_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let checkpoints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("audit chain checkpoint"))
        .collect();
    assert_eq!(checkpoints.len(), 3, "{text}");
    for (line, seq) in checkpoints.iter().zip([1000, 2000, 2500]) {
        assert!(line.contains(&format!("seq={seq} ")), "{line}");
    }
    // The last one, shipped, checks the trail's end.
    let hash = checkpoints[2].rsplit("hash=").next().unwrap().trim();
    let o = verify_with(dir.path(), &[format!("2500:{hash}")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(hash), "{}", stdout(&o));
}

/// `hcgw audit verify DIR` where DIR holds one trail per gateway in subdirectories (as
/// `var/audit` of the federation configurations does): each trail (DIR's own files being
/// one more) is verified on its own and reported by name; a broken one fails the run
/// naming it; a checkpoint, which belongs to one trail, is refused naming the trails;
/// several arguments keep the one-chain meaning and say where the trails are.
#[tokio::test]
async fn verify_of_a_directory_of_trails_checks_each_trail() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (
        root.path().join("hcgw-shanghai"),
        root.path().join("nested/hcgw-jiangsu"),
    );
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
        write_trail(d, 20, 1500).await;
    }
    // Noise that is no trail.
    std::fs::create_dir_all(root.path().join("empty")).unwrap();
    std::fs::write(root.path().join("README"), "not a trail").unwrap();

    let o = verify(&[root.path()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    for name in [
        "hcgw-shanghai: chain intact: 20 records",
        "nested/hcgw-jiangsu: chain intact: 20 records",
    ] {
        assert!(out.contains(name), "{name} in: {out}");
    }
    assert!(out.contains("2 trails, all intact"), "{out}");

    // A checkpoint cannot apply to two trails.
    let o = verify_with(root.path(), &[format!("1:{}", "0".repeat(64))]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("hcgw-shanghai, nested/hcgw-jiangsu") && err.contains("--checkpoint"),
        "{err}"
    );

    // Together with another argument: one chain, and the error says where the trails are.
    let o = verify(&[root.path(), &a]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("trails are in its subdirectories hcgw-shanghai, nested/hcgw-jiangsu"),
        "{err}"
    );

    // A trail in the directory itself (the dev configuration writes to var/audit) is one
    // more, shown as `.`.
    write_trail(root.path(), 5, 1500).await;
    let o = verify(&[root.path()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains(".: chain intact: 5 records"), "{out}");
    assert!(out.contains("3 trails, all intact"), "{out}");

    // One trail broken: the run fails, naming that trail and the line; the others are
    // reported.
    let files = hcgw::audit::trail_files(&b).unwrap();
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut ls: Vec<String> = text.lines().map(String::from).collect();
    ls[1] = ls[1].replacen("\"pass\"", "\"deny\"", 1);
    assert_ne!(
        ls[1],
        text.lines().nth(1).unwrap(),
        "the record was changed"
    );
    write_lines(&files[0], &ls);
    let o = verify(&[root.path()]);
    assert_eq!(o.status.code(), Some(1));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("hcgw-shanghai: chain intact"), "{out}");
    assert!(
        err.contains("nested/hcgw-jiangsu: ") && err.contains(&at(&files[0], 2)),
        "{err}"
    );
    assert!(err.contains("1 of 3 trails broken"), "{err}");
}
