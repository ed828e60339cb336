//! Structured logs via tracing: pretty or JSON lines, filter from configuration
//! (`RUST_LOG` overrides). Request ids are recorded on each request's span. Pretty lines
//! are coloured only when standard error is a terminal (and `NO_COLOR` is unset), so a
//! redirected log holds no ANSI escapes.
//!
//! Lines are formatted on the thread that logs them and written to standard error by one
//! writer thread ([`batch`]), which gathers them for a few milliseconds and writes them
//! in one system call: a request never waits for a `write` on the log, nor wakes a thread
//! per line. When the buffer ([`batch::LIMIT`]) is full — standard error slower than the
//! gateway for that long — further lines are dropped and counted in
//! `hcgw_log_lines_dropped_total` rather than stalling answers; the audit trail, not the
//! log, is the record of every answer.

pub mod batch;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The writer thread of the log; dropping it writes what is buffered and stops the
/// thread. Hold it until the process exits.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] Option<batch::Guard>);

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored and return an empty guard).
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let filter = with_access_log(filter);
    let ansi = colour();
    let Ok((writer, guard)) = batch::BatchWriter::spawn(std::io::stderr()) else {
        eprintln!("hcgw: cannot start the log writer thread; logging to standard error directly");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        return LogGuard(None);
    };
    let dropped = writer.dropped();
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
            crate::metrics::count_dropped_log_lines(move || dropped.lines());
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
