//! Checking a trail: `hcgw audit verify FILE…`.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{GENESIS_PREV, hash_line};

/// What an intact chain contained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files checked.
    pub files: usize,
    /// Records checked.
    pub records: u64,
    /// The first record's seq.
    pub first_seq: Option<u64>,
    /// The last record's seq.
    pub last_seq: Option<u64>,
    /// The hash of the last record (compare with the latest shipped checkpoint).
    pub last_hash: Option<String>,
    /// The chain starts at the first record of the trail (seq 1, prev all zeros). When
    /// false, older files were not given (or were removed) and were not checked.
    pub from_genesis: bool,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_seq, self.last_seq, &self.last_hash) {
            (Some(first), Some(last), Some(hash)) => {
                write!(
                    f,
                    "chain intact: {} records in {} file(s), seq {first}..{last}, last hash {hash}",
                    self.records, self.files
                )?;
                if !self.from_genesis {
                    write!(
                        f,
                        " (starts at seq {first}: the records before it were not checked)"
                    )?;
                }
                Ok(())
            }
            _ => write!(f, "no records in {} file(s)", self.files),
        }
    }
}

/// Where a chain breaks: file, 1-based line (0: the file as a whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {kind}", file.display())]
pub struct VerifyError {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), 0 when the file cannot be read.
    pub line: u64,
    /// What is wrong.
    pub kind: VerifyErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyErrorKind {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The line is not JSON.
    #[error("not valid JSON ({0})")]
    InvalidJson(String),
    /// The line is JSON but lacks a valid `seq` or `prev`.
    #[error("not an audit record: {0}")]
    NotARecord(String),
    /// The file does not end in a newline: its last line was cut off.
    #[error("incomplete last line: the file was truncated or a write was cut off")]
    PartialLine,
    /// `seq` is not the previous record's plus one.
    #[error("seq {found} where {expected} was expected: {}", if found > expected {
        "records are missing (removed record or file) or out of order"
    } else {
        "records are out of order or duplicated"
    })]
    SeqMismatch {
        /// The seq that should follow.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev` is not the hash of the previous record.
    #[error(
        "prev does not match the hash of the previous record at {previous}: that record was changed (or this one's prev)"
    )]
    PrevMismatch {
        /// `file:line` of the previous record.
        previous: String,
    },
    /// The first record of the trail (seq 1) must chain to 64 zeros.
    #[error("seq 1 must have prev = 64 zeros")]
    BadGenesis,
    /// The record of a shipped checkpoint does not have the checkpoint's hash.
    #[error("seq {seq} does not have the hash of the shipped checkpoint: the record was changed")]
    CheckpointMismatch {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The files end before a shipped checkpoint (newest records or files removed), or
    /// start after it.
    #[error("the checkpoint of seq {seq} is not in the files given ({})", match last {
        Some(last) if last < seq => format!("they end at seq {last}: records were removed from the end"),
        Some(_) => "they start after it: give the older files too".to_string(),
        None => "they hold no records".to_string(),
    })]
    CheckpointMissing {
        /// The checkpoint's seq.
        seq: u64,
        /// The last seq in the files.
        last: Option<u64>,
    },
}

/// A chain checkpoint shipped off-host (`audit chain checkpoint` log lines): the trail
/// must contain record `seq` with this hash. Written `SEQ:HASH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The record's seq.
    pub seq: u64,
    /// Lowercase hex SHA-256 of its line.
    pub hash: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or("expected SEQ:HASH (from an `audit chain checkpoint` log line)")?;
        let seq = seq
            .trim()
            .parse()
            .map_err(|_| format!("`{seq}` is not a seq number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the hash must be 64 hex digits".into());
        }
        Ok(Checkpoint { seq, hash })
    }
}

/// The files to verify for the command line: directories are expanded to their trail
/// files; everything is sorted by file name (which is chronological).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = super::sink::trail_files(p).map_err(|e| VerifyError {
                file: p.clone(),
                line: 0,
                kind: VerifyErrorKind::Io(e.to_string()),
            })?;
            if found.is_empty() {
                let below = trails_below(p).unwrap_or_default();
                let why = if below.is_empty() {
                    "no audit-*.jsonl files in this directory".to_string()
                } else {
                    format!(
                        "no audit-*.jsonl files in this directory; trails are in its subdirectories {}: verify each, or this directory alone",
                        below
                            .iter()
                            .map(|d| d.strip_prefix(p).unwrap_or(d).display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(VerifyError {
                    file: p.clone(),
                    line: 0,
                    kind: VerifyErrorKind::Io(why),
                });
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));
    files.dedup();
    Ok(files)
}

/// How deep [`trails_below`] looks.
const TRAIL_DEPTH: usize = 4;

/// The directories below `dir` (not `dir` itself, at most four levels down, symbolic links
/// not followed) that hold a trail (`audit-*.jsonl` files), sorted: `var/audit` of the
/// federation configurations holds one per gateway.
pub fn trails_below(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let sub = entry.path();
            if !super::sink::trail_files(&sub)?.is_empty() {
                out.push(sub.clone());
            }
            if depth > 1 {
                walk(&sub, depth - 1, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, TRAIL_DEPTH, &mut out)?;
    out.sort();
    Ok(out)
}

/// Checks `files`, in the order given, as one chain.
pub fn verify_files(files: &[PathBuf]) -> Result<VerifyReport, VerifyError> {
    verify_with_checkpoints(files, &[])
}

/// The previous record.
struct Prev {
    seq: u64,
    hash: String,
    file: PathBuf,
    line: u64,
}

/// Checks `files` as one chain, and that it contains every shipped checkpoint: this
/// detects records removed from the end, which the chain alone cannot.
pub fn verify_with_checkpoints(
    files: &[PathBuf],
    checkpoints: &[Checkpoint],
) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport {
        files: files.len(),
        ..VerifyReport::default()
    };
    let mut prev: Option<Prev> = None;
    for path in files {
        verify_file(path, &mut prev, &mut report, checkpoints)?;
    }
    for c in checkpoints {
        let covered = matches!((report.first_seq, &prev), (Some(first), Some(p)) if first <= c.seq && c.seq <= p.seq);
        if !covered {
            let (file, line) = match &prev {
                Some(p) => (p.file.clone(), p.line),
                None => (files.last().cloned().unwrap_or_default(), 0),
            };
            return Err(VerifyError {
                file,
                line,
                kind: VerifyErrorKind::CheckpointMissing {
                    seq: c.seq,
                    last: prev.as_ref().map(|p| p.seq),
                },
            });
        }
    }
    if let Some(p) = prev {
        report.last_seq = Some(p.seq);
        report.last_hash = Some(p.hash);
    }
    Ok(report)
}

fn verify_file(
    path: &Path,
    prev: &mut Option<Prev>,
    report: &mut VerifyReport,
    checkpoints: &[Checkpoint],
) -> Result<(), VerifyError> {
    let err = |line: u64, kind: VerifyErrorKind| VerifyError {
        file: path.to_path_buf(),
        line,
        kind,
    };
    let file = File::open(path).map_err(|e| err(0, VerifyErrorKind::Io(e.to_string())))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(line_no + 1, VerifyErrorKind::Io(e.to_string())))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            return Err(err(line_no, VerifyErrorKind::PartialLine));
        }
        let line = &buf[..buf.len() - 1];
        let value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| err(line_no, VerifyErrorKind::InvalidJson(e.to_string())))?;
        let not_record = |what: &str| err(line_no, VerifyErrorKind::NotARecord(what.into()));
        if !value.is_object() {
            return Err(not_record("not a JSON object"));
        }
        let seq = value
            .get("seq")
            .and_then(|s| s.as_u64())
            .filter(|s| *s >= 1)
            .ok_or_else(|| not_record("no `seq` (a number from 1)"))?;
        let prev_hash = value
            .get("prev")
            .and_then(|p| p.as_str())
            .filter(|p| p.len() == 64 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| not_record("no `prev` (64 lowercase hex digits)"))?;
        match prev.as_ref() {
            None => {
                report.first_seq = Some(seq);
                report.from_genesis = seq == 1;
                if seq == 1 && prev_hash != GENESIS_PREV {
                    return Err(err(line_no, VerifyErrorKind::BadGenesis));
                }
            }
            Some(p) => {
                if seq != p.seq + 1 {
                    return Err(err(
                        line_no,
                        VerifyErrorKind::SeqMismatch {
                            expected: p.seq + 1,
                            found: seq,
                        },
                    ));
                }
                if prev_hash != p.hash {
                    return Err(err(
                        line_no,
                        VerifyErrorKind::PrevMismatch {
                            previous: format!("{}:{}", p.file.display(), p.line),
                        },
                    ));
                }
            }
        }
        let hash = hash_line(line);
        if checkpoints.iter().any(|c| c.seq == seq && c.hash != hash) {
            return Err(err(line_no, VerifyErrorKind::CheckpointMismatch { seq }));
        }
        report.records += 1;
        *prev = Some(Prev {
            seq,
            hash,
            file: path.to_path_buf(),
            line: line_no,
        });
    }
}
