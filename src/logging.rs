//! Structured logs via tracing: pretty or JSON lines, filter from configuration
//! (`RUST_LOG` overrides). Request ids are recorded on each request's span. Pretty lines
//! are coloured only when standard error is a terminal (and `NO_COLOR` is unset), so a
//! redirected log holds no ANSI escapes.
//!
//! Lines are formatted on the thread that logs them and written to standard error by one
//! writer thread (`hcgw-log`), through a buffer flushed whenever its queue is empty: a
//! request never waits for a `write` on the log, and a busy gateway writes many lines per
//! system call. When the queue ([`QUEUE_LINES`]) is full — standard error slower than the
//! gateway for that long — further lines are dropped and counted in
//! `hcgw_log_lines_dropped_total` rather than stalling answers; the audit trail, not the
//! log, is the record of every answer.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines queued for the writer thread at most.
pub const QUEUE_LINES: usize = 128_000;

/// The writer thread of the log; dropping it writes what is queued and stops the thread.
/// Hold it until the process exits.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored and return an empty guard).
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let filter = with_access_log(filter);
    let ansi = colour();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("hcgw-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().with_ansi(ansi).try_init(),
    };
    match installed {
        Ok(()) => {
            crate::metrics::count_dropped_log_lines(dropped);
            LogGuard(Some(guard))
        }
        Err(_) => LogGuard(None),
    }
}

/// Whether pretty lines are coloured: standard error (where they go) is a terminal and
/// `NO_COLOR` is not set.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `filter` with the access log's lines ([`crate::api::access_log::TARGET`]) at `info`, whatever
/// the general level, unless the filter names that target itself (`hcgw::access=off`).
/// `[access_log] enabled` decides whether they are written.
fn with_access_log(filter: EnvFilter) -> EnvFilter {
    if filter.to_string().contains(crate::api::access_log::TARGET) {
        return filter;
    }
    match format!("{}=info", crate::api::access_log::TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_pass_a_warn_filter_unless_it_names_them() {
        assert!(
            with_access_log(EnvFilter::new("warn"))
                .to_string()
                .contains("hcgw::access=info")
        );
        let off = with_access_log(EnvFilter::new("warn,hcgw::access=off")).to_string();
        assert!(off.contains("hcgw::access=off") && !off.contains("hcgw::access=info"));
    }
}
