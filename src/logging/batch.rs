//! The log's writer thread: formatted lines gather in one shared buffer and a thread
//! (`hcgw-log`) writes the buffer out in one `write` every [`GATHER`] while lines keep
//! coming.
//!
//! A line costs its caller a short critical section (append to the buffer); only the
//! first line into an empty buffer wakes the writer, and only if it is asleep, so a busy
//! gateway pays one wake-up and one system call per [`GATHER`] rather than per line.
//! When the buffer holds [`LIMIT`] bytes — the output slower than the gateway for that
//! long — further lines are dropped and counted ([`Dropped`]) instead of stalling answers.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer lets lines gather after the first one before it writes them.
pub const GATHER: Duration = Duration::from_millis(5);
/// Bytes the buffer holds at most; a line that does not fit is dropped.
pub const LIMIT: usize = 32 * 1024 * 1024;
/// A spare buffer larger than this after a burst is given back to the allocator.
const KEEP_CAPACITY: usize = 1024 * 1024;

struct State {
    lines: Vec<u8>,
    /// The writer thread waits on the condition variable (a line must wake it).
    asleep: bool,
    /// The guard was dropped: write what is left and stop.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while appending leaves whole lines or none: the buffer stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The count of lines dropped because the buffer was full.
#[derive(Clone)]
pub struct Dropped(Arc<Shared>);

impl Dropped {
    /// Lines dropped since the writer started.
    pub fn lines(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// The handle loggers write through (a [`tracing_subscriber::fmt::MakeWriter`]); each
/// `write` is one formatted line.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

impl BatchWriter {
    /// Starts the writer thread over `out` with the default [`LIMIT`].
    pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, Guard)> {
        Self::with_limit(out, LIMIT)
    }

    /// As [`BatchWriter::spawn`], holding at most `limit` bytes.
    pub fn with_limit<W: Write + Send + 'static>(
        out: W,
        limit: usize,
    ) -> std::io::Result<(Self, Guard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: Vec::new(),
                asleep: false,
                closed: false,
            }),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            limit,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hcgw-log".into())
                .spawn(move || run(&shared, out))?
        };
        Ok((
            Self(shared.clone()),
            Guard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// The dropped-lines count of this writer.
    pub fn dropped(&self) -> Dropped {
        Dropped(self.0.clone())
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut state = self.0.lock();
        if state.closed || state.lines.len() + line.len() > self.0.limit {
            drop(state);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let wake = state.lines.is_empty() && state.asleep;
        state.lines.extend_from_slice(line);
        drop(state);
        if wake {
            self.0.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Stops the writer thread when dropped, after it has written every line taken.
#[must_use = "dropping the guard stops the log writer"]
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closed {
            state.asleep = true;
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            state.asleep = false;
        }
        if state.lines.is_empty() {
            return; // closed, nothing left
        }
        if !state.closed {
            drop(state);
            std::thread::sleep(GATHER);
            state = shared.lock();
        }
        std::mem::swap(&mut state.lines, &mut spare);
        drop(state);
        // Standard error failing leaves nowhere to report it; the lines are lost either way.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if spare.capacity() > KEEP_CAPACITY {
            spare = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that records each `write_all` as one flush and can be held shut.
    #[derive(Clone, Default)]
    struct Recorder {
        flushes: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.flushes.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn written(r: &Recorder) -> Vec<u8> {
        r.flushes.lock().unwrap().concat()
    }

    #[test]
    fn every_line_is_written_in_order_and_a_burst_takes_few_writes() {
        let out = Recorder::default();
        let (mut w, guard) = BatchWriter::spawn(out.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..10_000 {
            let line = format!("line {i}\n");
            w.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        drop(guard);
        assert_eq!(written(&out), expected);
        let writes = out.flushes.lock().unwrap().len();
        // One per GATHER while the burst lasts (a line per write would be 10,000).
        assert!(writes < 1_000, "{writes} writes for 10,000 lines");
        assert_eq!(w.dropped().lines(), 0);
    }

    #[test]
    fn lines_from_many_threads_stay_whole() {
        let out = Recorder::default();
        let (w, guard) = BatchWriter::spawn(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        w.write_all(format!("t{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let text = String::from_utf8(written(&out)).unwrap();
        for t in 0..4 {
            let seen: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seen, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_line_arriving_when_idle_is_written_without_waiting_for_more() {
        let out = Recorder::default();
        let (mut w, _guard) = BatchWriter::spawn(out.clone()).unwrap();
        // Let the writer fall asleep, then one line must wake it.
        std::thread::sleep(GATHER * 4);
        w.write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while written(&out).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(written(&out), b"alone\n");
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_instead_of_blocking() {
        let out = Recorder::default();
        let (mut w, guard) = BatchWriter::with_limit(out.clone(), 100).unwrap();
        // Held after the guard is made, so that a failing assertion releases it before the
        // guard waits for the writer.
        let held = out.gate.lock().unwrap();
        // The first line is taken by the writer, which then blocks on the held output.
        w.write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !w.0.lock().lines.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never took the line"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // 100 bytes of room: ten 10-byte lines fit, the rest are dropped, none blocks.
        let (done, finished) = mpsc::channel();
        let mut w2 = w.clone();
        std::thread::spawn(move || {
            for i in 0..50 {
                w2.write_all(format!("line {i:04}\n").as_bytes()).unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("a logging thread blocked on a stalled output");
        assert_eq!(w.dropped().lines(), 40);
        drop(held);
        drop(guard);
        let text = String::from_utf8(written(&out)).unwrap();
        let kept: String = (0..10).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(text, format!("first\n{kept}"));
    }
}
