//! The restore log as a `tracing` layer.
//!
//! [`RestoreLog`] writes the log of every [`crate::engine::execute`] that runs under it, as
//! the events arrive: when the run's span (target [`events::RESTORE`]) opens with a `log`
//! path, the layer creates that file (mode 0600, never over an existing file); the events of
//! the run (see [`crate::events`]) are appended to it one by one, so a run that is killed
//! leaves a log up to its last step; the run's closing event ([`events::SUMMARY`], section
//! `end`) appends the services, the interruption and the summary; the file is closed with
//! the span.
//!
//! The file reads:
//!
//! ```text
//! === RESTORE LOG ===
//! Started: 2026-01-01 10:00:00
//! Mode: …
//! Root: /
//! Selected categories: 2 categories
//!   - …
//!
//! EVENTS:
//!   phase: extracting
//!   phase: safety-backup
//!   ran: systemctl stop --no-block cluster-db: exit 0 (3 ms)
//!   service stop cluster-db: ok
//!   …
//!
//! EXTRACTED FILES:
//!   /etc/hosts (ownership: 0:0, mode: 0644, changed)
//!
//! SKIPPED FILES:
//!   /opt/x (does not match any selected category)
//!
//! EVENTS:
//!   phase: applying
//!   applier example-motd apply: example_motd applied (installed /etc/motd)
//!   …
//!
//! SERVICES:
//!   stop cluster-db: ok
//!   start cluster-db: ok
//!
//! SUMMARY:
//!   Files extracted: 1
//!   …
//!   Outcome: success
//! ```
//!
//! A section opens whenever the kind of line changes. The engine writes the log from its
//! report instead ([`crate::report::Report::write_log`]) when no `RestoreLog` created it.
//!
//! The layer needs the DEBUG events of [`events::FILE`]: a subscriber-wide filter above
//! DEBUG leaves the file sections out.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let subscriber = tracing_subscriber::registry().with(proxsave_restore::log::RestoreLog::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     // engine::execute(…) here: its log is written as it goes.
//! });
//! ```

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::events;
use crate::report::{FileStatus, file_log_line};

/// The restore log layer; see the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreLog {
    _private: (),
}

impl RestoreLog {
    /// A layer that writes the log of every restore run under it.
    pub fn new() -> RestoreLog {
        RestoreLog::default()
    }
}

/// The open log of one run (kept in its span's extensions).
struct LogFile {
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// The section the last line went into.
    section: Option<&'static str>,
}

impl LogFile {
    fn create(path: &Path) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        Ok(LogFile {
            inner: Mutex::new(Inner {
                file,
                section: None,
            }),
        })
    }

    /// Appends `line` to `section`, opening the section if the last line went elsewhere.
    fn line(&self, section: &'static str, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if inner.section != Some(section) {
            if inner.section.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{section}:");
            inner.section = Some(section);
        }
        let _ = writeln!(out, "{line}");
        let _ = inner.file.write_all(out.as_bytes());
    }

    /// Appends a block of whole sections (it ends with its own blank line, or is the end).
    fn block(&self, text: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if inner.section.take().is_some() {
            out.push('\n');
        }
        out.push_str(text);
        let _ = inner.file.write_all(out.as_bytes());
    }
}

/// An event's fields as text, in order.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }
}

fn file_status(name: &str) -> Option<FileStatus> {
    Some(match name {
        "restored" => FileStatus::Restored,
        "would_restore" => FileStatus::WouldRestore,
        "exported" => FileStatus::Exported,
        "staged" => FileStatus::Staged,
        "skipped" => FileStatus::Skipped,
        "refused" => FileStatus::Refused,
        "failed" => FileStatus::Failed,
        _ => return None,
    })
}

const EVENTS: &str = "EVENTS";

/// The line an event of `target` writes in the `EVENTS` section.
fn event_line(target: &str, f: &Fields) -> Option<String> {
    Some(match target {
        events::PHASE => format!("  phase: {}", f.or_empty("phase")),
        events::WARNING => format!("  WARNING: {}", f.or_empty("message")),
        events::SERVICE => format!(
            "  service {} {}: {}",
            f.or_empty("action"),
            f.or_empty("unit"),
            f.or_empty("result")
        ),
        events::COMMAND => {
            let command = f.or_empty("command");
            match f.get("status") {
                Some("deferred") => format!("  deferred: {command}"),
                Some("error") => format!("  could not run: {command}: {}", f.or_empty("error")),
                _ => {
                    let how = match (f.get("exit_code"), f.get("timed_out")) {
                        (_, Some("true")) => "timed out".to_string(),
                        (Some(code), _) => format!("exit {code}"),
                        (None, _) => "killed by a signal".to_string(),
                    };
                    format!("  ran: {command}: {how} ({} ms)", f.or_empty("duration_ms"))
                }
            }
        }
        events::APPLIER => {
            let head = format!(
                "  applier {} {}:",
                f.or_empty("applier"),
                f.or_empty("phase")
            );
            match f.get("status") {
                Some("planned") => format!(
                    "{head} {} planned: {} actions, {} files, {} services, {} questions",
                    f.or_empty("category"),
                    f.or_empty("actions"),
                    f.or_empty("files"),
                    f.or_empty("services"),
                    f.or_empty("questions")
                ),
                Some("vetoed") => format!("{head} vetoed: {}", f.or_empty("reason")),
                status => {
                    let mut s =
                        format!("{head} {} {}", f.or_empty("category"), status.unwrap_or(""));
                    if let Some(r) = f.get("reason").filter(|r| !r.is_empty()) {
                        let _ = write!(s, ": {r}");
                    }
                    if let Some(d) = f.get("detail").filter(|d| !d.is_empty()) {
                        let _ = write!(s, " ({d})");
                    }
                    s
                }
            }
        }
        _ => return None,
    })
}

impl RestoreLog {
    /// The log of the run `event` belongs to, if this layer opened one.
    fn log_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Arc<LogFile>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.event_scope(event)?
            .find_map(|span| span.extensions().get::<Arc<LogFile>>().cloned())
    }
}

impl<S> Layer<S> for RestoreLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != events::RESTORE {
            return;
        }
        let mut f = Fields::default();
        attrs.record(&mut f);
        let Some(path) = f.get("log") else { return };
        // Nothing to report a failure to: without the file, the engine writes the log from
        // its report at the end (and warns if that fails too).
        if let Ok(log) = LogFile::create(Path::new(path))
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(Arc::new(log));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !events::TARGETS.contains(&target) {
            return;
        }
        let Some(log) = RestoreLog::log_of(event, &ctx) else {
            return;
        };
        let mut f = Fields::default();
        event.record(&mut f);
        match target {
            events::SUMMARY => log.block(f.or_empty("text")),
            events::FILE => {
                let Some(status) = f.get("status").and_then(file_status) else {
                    return;
                };
                let num = |n: &str| f.get(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let line = file_log_line(
                    f.or_empty("path"),
                    status,
                    f.get("change"),
                    (num("uid"), num("gid"), num("mode") as u32),
                    f.get("reason"),
                );
                log.line(status.log_section(), &line);
            }
            _ => {
                if let Some(line) = event_line(target, &f) {
                    log.line(EVENTS, &line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn writes_events_into_sections_as_they_arrive_and_only_inside_a_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("restore_x.log");
        let subscriber = tracing_subscriber::registry().with(RestoreLog::new());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: events::WARNING, message = "outside any run");
            let span = tracing::info_span!(
                target: events::RESTORE,
                "restore",
                log = Some(tracing::field::display(path.display())),
            );
            let _g = span.enter();
            tracing::info!(target: events::SUMMARY, section = "header", text = "=== RESTORE LOG ===\n\n");
            tracing::info!(target: events::PHASE, phase = "extracting");
            tracing::info!(
                target: events::COMMAND,
                status = "ran",
                command = "systemctl stop x",
                exit_code = 0_i64,
                timed_out = false,
                duration_ms = 3_u64,
            );
            tracing::info!(target: events::COMMAND, status = "deferred", command = "systemctl daemon-reload");
            let first = std::fs::read_to_string(&path).expect("log");
            assert!(
                first.ends_with("  deferred: systemctl daemon-reload\n"),
                "{first}"
            );
            tracing::debug!(
                target: events::FILE,
                path = "/etc/hosts",
                status = "restored",
                change = "new",
                uid = 0_u64,
                gid = 0_u64,
                mode = 0o644_u64,
            );
            tracing::debug!(target: events::FILE, path = "/opt/x", status = "skipped", reason = "nope");
            tracing::warn!(target: events::WARNING, message = "careful");
            tracing::info!(target: events::SUMMARY, section = "end", text = "SUMMARY:\n  Outcome: success\n");
        });
        let text = std::fs::read_to_string(&path).expect("log");
        assert_eq!(
            text,
            "=== RESTORE LOG ===\n\n\
             EVENTS:\n  phase: extracting\n  ran: systemctl stop x: exit 0 (3 ms)\n  deferred: systemctl daemon-reload\n\n\
             EXTRACTED FILES:\n  /etc/hosts (ownership: 0:0, mode: 0644, new)\n\n\
             SKIPPED FILES:\n  /opt/x (nope)\n\n\
             EVENTS:\n  WARNING: careful\n\n\
             SUMMARY:\n  Outcome: success\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn never_writes_over_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("restore_x.log");
        std::fs::write(&path, "mine").expect("write");
        let subscriber = tracing_subscriber::registry().with(RestoreLog::new());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                target: events::RESTORE,
                "restore",
                log = Some(tracing::field::display(path.display())),
            );
            let _g = span.enter();
            tracing::info!(target: events::PHASE, phase = "extracting");
        });
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "mine");
    }
}
