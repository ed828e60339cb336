//! Where audit lines go: the [`AuditSink`] trait and the [`FileSink`] that writes
//! `<dir>/audit-<UTC yyyymmddTHHMMSS>-<seq>.jsonl` files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{ChainTip, hash_line};

/// What [`AuditSink::recover`] found at the end of the trail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last complete record (`None`: the trail is empty and starts at seq 1).
    pub tip: Option<ChainTip>,
    /// The file appends now go to, if there is one.
    pub current: Option<CurrentFile>,
}

/// The file appends go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentFile {
    /// When it was started (from its name; decides the daily rotation).
    pub opened: DateTime<Utc>,
    /// Its size in bytes (decides the size rotation).
    pub len: u64,
}

/// The storage under the audit writer. The writer decides what to write and when to
/// rotate; the sink does the I/O. It is a trait so tests can make writes fail.
pub trait AuditSink: Send {
    /// Called before the first write and again after any failure: makes the end of the
    /// trail consistent again (a trailing partial line is cut off) and reports the last
    /// complete record, which the chain continues from, and the file appends go to.
    fn recover(&mut self) -> io::Result<Recovered>;
    /// Starts a new file whose first record will be `first_seq`.
    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()>;
    /// Appends bytes (whole lines, each ending in `\n`) to the current file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes what was appended durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// Whether appends can still reach the trail (called by the idle writer about once a
    /// second, so a failing trail is known before the next record arrives).
    fn check(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Calls `each` with every complete line of the trail, oldest first (without the
    /// newline), to rebuild the Merkle tree. `Ok(false)`: this sink cannot (no tree is
    /// kept then).
    fn replay(&mut self, each: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        let _ = each;
        Ok(false)
    }
}

/// The first seq in a trail file's name.
fn first_seq_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    rest.split_once('-')?.1.parse().ok()
}

/// The line (without its newline) of the record `seq` in the trail in `dir`, read from the
/// file whose name says it holds it; `None` when no file does or the line there does not
/// carry that seq. Reads up to one file (at most `rotate_bytes`).
pub fn read_record(dir: &Path, seq: u64) -> io::Result<Option<Vec<u8>>> {
    let files = trail_files(dir)?;
    let Some(path) = files
        .iter()
        .rev()
        .find(|p| first_seq_of(p).is_some_and(|first| first <= seq))
    else {
        return Ok(None);
    };
    let first = first_seq_of(path).unwrap_or(u64::MAX);
    let reader = io::BufReader::new(File::open(path)?);
    let Some(line) = io::BufRead::split(reader, b'\n').nth((seq - first) as usize) else {
        return Ok(None);
    };
    let line = line?;
    Ok(tip_of(&line).ok().filter(|t| t.seq == seq).map(|_| line))
}

/// The file name of a trail file.
pub fn file_name(opened: DateTime<Utc>, first_seq: u64) -> String {
    format!(
        "audit-{}-{first_seq:020}.jsonl",
        opened.format("%Y%m%dT%H%M%S")
    )
}

/// The time in a trail file's name, or `None` when the name is not one.
pub fn parse_file_name(name: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let (time, seq) = rest.split_once('-')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// The trail files in a directory, sorted by name (which is chronological).
pub fn trail_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().and_then(parse_file_name).is_some() && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The end of a file: the length of its complete lines and its last complete line.
pub(crate) fn last_line(file: &mut File) -> io::Result<(u64, Option<Vec<u8>>)> {
    let len = file.metadata()?.len();
    let mut chunk = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        match buf.iter().rposition(|&b| b == b'\n') {
            None if start == 0 => return Ok((0, None)),
            None => {}
            Some(p) => match buf[..p].iter().rposition(|&b| b == b'\n') {
                Some(q) => return Ok((start + p as u64 + 1, Some(buf[q + 1..p].to_vec()))),
                None if start == 0 => return Ok((p as u64 + 1, Some(buf[..p].to_vec()))),
                None => {}
            },
        }
        chunk = chunk.saturating_mul(4);
    }
}

/// The chain tip recorded in a line: its `seq` and the hash of its bytes.
pub(crate) fn tip_of(line: &[u8]) -> Result<ChainTip, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let seq = value
        .get("seq")
        .and_then(|s| s.as_u64())
        .ok_or("no numeric `seq`")?;
    Ok(ChainTip {
        seq,
        hash: hash_line(line),
    })
}

/// Audit files in a directory, rotated by the writer.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    file: Option<File>,
    /// Where `file` was opened.
    path: Option<PathBuf>,
}

impl FileSink {
    /// A sink writing into `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSink {
            dir: dir.into(),
            file: None,
            path: None,
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Cuts a trailing partial line off `path`, keeping the cut bytes next to it in
    /// `<name>.torn-<offset>-<nanos>` for inspection. Returns the file's new length.
    fn repair(&self, path: &Path) -> io::Result<u64> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let (complete, _) = last_line(&mut file)?;
        if complete < len {
            file.seek(SeekFrom::Start(complete))?;
            let mut torn = Vec::new();
            file.read_to_end(&mut torn)?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
            let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let side = self.dir.join(format!("{name}.torn-{complete}-{nanos}"));
            // Best effort: with the disk full, the cut must still free the way.
            let kept = (|| {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&side)?;
                f.write_all(&torn)?;
                f.sync_all()
            })();
            if let Err(e) = kept {
                tracing::warn!(file = %side.display(), error = %e, "cannot keep the partial audit line aside");
            }
            file.set_len(complete)?;
            file.sync_all()?;
            tracing::warn!(
                file = %path.display(),
                offset = complete,
                bytes = torn.len(),
                kept_in = %side.display(),
                "audit file ended in a partial line (a write was cut off); cut it off and continue the chain from the last complete record"
            );
        }
        Ok(complete)
    }
}

impl AuditSink for FileSink {
    fn recover(&mut self) -> io::Result<Recovered> {
        self.file = None;
        fs::create_dir_all(&self.dir)?;
        let files = trail_files(&self.dir)?;
        let Some(newest) = files.last() else {
            return Ok(Recovered::default());
        };
        let len = self.repair(newest)?;
        let opened = newest
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name)
            .unwrap_or_else(Utc::now);
        let mut tip = None;
        for path in files.iter().rev() {
            let mut f = File::open(path)?;
            if let (_, Some(line)) = last_line(&mut f)? {
                tip = Some(tip_of(&line).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: the last record cannot be read ({e}); the chain cannot continue from it",
                            path.display()
                        ),
                    )
                })?);
                break;
            }
        }
        self.file = Some(OpenOptions::new().append(true).open(newest)?);
        self.path = Some(newest.clone());
        Ok(Recovered {
            tip,
            current: Some(CurrentFile { opened, len }),
        })
    }

    fn replay(&mut self, each: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        for path in trail_files(&self.dir)? {
            let mut reader = io::BufReader::new(File::open(&path)?);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                if io::BufRead::read_until(&mut reader, b'\n', &mut buf)? == 0 {
                    break;
                }
                if buf.last() != Some(&b'\n') {
                    break; // a partial last line (cut off by recover)
                }
                each(&buf[..buf.len() - 1]);
            }
        }
        Ok(true)
    }

    fn start_file(&mut self, opened: DateTime<Utc>, first_seq: u64) -> io::Result<()> {
        self.file = None;
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(file_name(opened, first_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.sync_dir()?;
        self.file = Some(file);
        self.path = Some(path);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(io::Error::other("no audit file is open")),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// The directory is still a directory that is not read-only (no write permission bits:
    /// an operator's "stop writing here", honoured even by a root process), and the open
    /// file is still the one at its path (not moved, removed or replaced). Creates nothing.
    fn check(&mut self) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = fs::metadata(&self.dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dir.display())))?;
        if !dir.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory",
                self.dir.display()
            )));
        }
        if dir.permissions().readonly() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is read-only", self.dir.display()),
            ));
        }
        if let (Some(file), Some(path)) = (&self.file, &self.path) {
            let open = file.metadata()?;
            let named = fs::metadata(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if (open.dev(), open.ino()) != (named.dev(), named.ino()) {
                return Err(io::Error::other(format!(
                    "{} is no longer the file being written",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}
