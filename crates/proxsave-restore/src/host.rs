//! The host being restored, seen through injected effects.
//!
//! The engine never spawns processes, reads the clock or probes mounts itself: it asks a
//! [`CommandRunner`], a [`Clock`] and a [`MountProbe`]. The CLI provides real ones; tests
//! provide recording fakes (or run the real runner against fake commands on `PATH`).
//!
//! [`HostActions::Defer`] makes [`Host::run`] record the command instead of running it, so a
//! restore into an alternate root never touches the running system.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use serde::Serialize;

/// What a secret argument shows as in logs, reports, errors and `tracing` events.
pub const REDACTED: &str = "<redacted>";

/// A command to run on the host.
#[derive(Clone, Debug, Serialize)]
pub struct HostCommand {
    /// Program name (looked up on `PATH`).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Deadline; the command is killed after it.
    #[serde(skip)]
    pub timeout: Duration,
    /// Indexes of arguments to show as [`REDACTED`] in logs, reports, errors and events.
    #[serde(skip)]
    pub secret_args: Vec<usize>,
    /// Bytes written to the command's standard input (never shown: it may hold secrets).
    #[serde(skip)]
    pub stdin: Option<Vec<u8>>,
    /// Environment variables set for the command (on top of the runner's).
    pub env: Vec<(String, String)>,
}

impl HostCommand {
    /// `program args…` with a 30-second deadline.
    pub fn new<I, S>(program: &str, args: I) -> HostCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HostCommand {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(30),
            secret_args: Vec::new(),
            stdin: None,
            env: Vec::new(),
        }
    }

    /// Feeds `bytes` to the command's standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> HostCommand {
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: &str, value: &str) -> HostCommand {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Marks argument `index` as secret: shown as [`REDACTED`] everywhere.
    pub fn secret(mut self, index: usize) -> HostCommand {
        self.secret_args.push(index);
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> HostCommand {
        self.timeout = timeout;
        self
    }

    /// The command line as shown to users, secrets redacted.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(self.program.clone());
        for (i, a) in self.args.iter().enumerate() {
            if self.secret_args.contains(&i) {
                parts.push(REDACTED.into());
            } else if a.is_empty() || a.contains(char::is_whitespace) {
                parts.push(format!("'{a}'"));
            } else {
                parts.push(a.clone());
            }
        }
        parts.join(" ")
    }
}

/// What a command did.
#[derive(Clone, Debug, Default)]
pub struct CommandOutput {
    /// Exit code (`None` if killed by a signal or on timeout).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// True when the deadline killed it.
    pub timed_out: bool,
}

impl CommandOutput {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output as trimmed text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// A one-line description of a failure.
    pub fn failure(&self) -> String {
        if self.timed_out {
            return "timed out".into();
        }
        let err = String::from_utf8_lossy(&self.stderr);
        let err = err.trim();
        match self.code {
            Some(c) if err.is_empty() => format!("exit code {c}"),
            Some(c) => format!("exit code {c}: {err}"),
            None => "killed by a signal".into(),
        }
    }
}

/// Runs host commands with deadlines and cancellation.
pub trait CommandRunner: Send + Sync {
    /// Runs `cmd`; a deadline or cancellation kills it (`timed_out` set).
    ///
    /// # Errors
    /// The program could not be started.
    fn run(&self, cmd: &HostCommand, cancel: &CancelToken) -> std::io::Result<CommandOutput>;

    /// Starts `cmd` detached: in a session and process group of its own (not ours, so a
    /// Ctrl+C or a kill of our group never reaches it), standard streams on `/dev/null`,
    /// not waited for; it outlives this process. Returns its pid. Used for the COMMIT
    /// window's timer when the init system is not systemd ([`crate::commit`]).
    ///
    /// # Errors
    /// The program could not be started; the default runner cannot detach.
    fn spawn_detached(&self, cmd: &HostCommand) -> std::io::Result<u32> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "{}: this command runner cannot start detached processes",
                cmd.program
            ),
        ))
    }

    /// Stops a process started by [`CommandRunner::spawn_detached`] (`SIGTERM`).
    ///
    /// # Errors
    /// It cannot be signalled (e.g. it is gone).
    fn stop_detached(&self, pid: u32) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("pid {pid}: this command runner cannot stop detached processes"),
        ))
    }

    /// True when the host's init (PID 1) is systemd, so `systemd-run` timers are available.
    fn init_is_systemd(&self) -> bool {
        false
    }
}

/// The clock (injected so tests run without waiting).
pub trait Clock: Send + Sync {
    /// Local time now.
    fn now(&self) -> chrono::DateTime<chrono::Local>;
    /// Waits.
    fn sleep(&self, d: Duration);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        chrono::Local::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Tells whether a path is a mount point (e.g. a cluster filesystem).
pub trait MountProbe: Send + Sync {
    /// True if `path` (absolute, on the running host) is a mount point.
    fn is_mount_point(&self, path: &Path) -> bool;
}

/// Whether host commands run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostActions {
    /// Run them.
    Run,
    /// Record them as to-dos; touch nothing on the running host.
    Defer,
}

/// The result of [`Host::run`].
#[derive(Debug)]
pub enum Ran {
    /// The command ran.
    Done(CommandOutput),
    /// Host actions are deferred; the command was recorded.
    Deferred,
}

/// The target of a restore.
#[derive(Clone)]
pub struct Host {
    /// The root directory restored into (`/` on a live system).
    pub root: PathBuf,
    /// Whether host commands run or are deferred.
    pub actions: HostActions,
    /// Runs commands.
    pub runner: Arc<dyn CommandRunner>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Mount points.
    pub mounts: Arc<dyn MountProbe>,
    /// Where and how COMMIT windows are armed ([`crate::commit`]); `None`: appliers that
    /// need one apply without it and say so.
    pub commit: Option<Arc<crate::commit::CommitSettings>>,
    deferred: Arc<Mutex<Vec<String>>>,
    ran: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// A host with the given effects.
    pub fn new(
        root: PathBuf,
        actions: HostActions,
        runner: Arc<dyn CommandRunner>,
        clock: Arc<dyn Clock>,
        mounts: Arc<dyn MountProbe>,
    ) -> Host {
        Host {
            root,
            actions,
            runner,
            clock,
            mounts,
            commit: None,
            deferred: Arc::default(),
            ran: Arc::default(),
        }
    }

    /// Runs `cmd` (or records it when actions are deferred).
    ///
    /// # Errors
    /// The program could not be started.
    pub fn run(&self, cmd: &HostCommand, cancel: &CancelToken) -> std::io::Result<Ran> {
        match self.actions {
            HostActions::Defer => {
                crate::events::command_deferred(cmd);
                self.deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(cmd.display());
                Ok(Ran::Deferred)
            }
            HostActions::Run => {
                self.ran
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(cmd.display());
                let started = std::time::Instant::now();
                let result = self.runner.run(cmd, cancel);
                crate::events::command_ran(cmd, &result, started.elapsed());
                result.map(Ran::Done)
            }
        }
    }

    /// The same host with COMMIT windows armed as `settings` say.
    pub fn with_commit(mut self, settings: crate::commit::CommitSettings) -> Host {
        self.commit = Some(Arc::new(settings));
        self
    }

    /// Records a to-do that is not a command (e.g. "umount /srv/x") when deferring.
    pub fn defer_note(&self, note: String) {
        crate::events::note_deferred(&note);
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(note);
    }

    /// Commands recorded instead of run.
    pub fn deferred(&self) -> Vec<String> {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Commands that ran.
    pub fn commands_run(&self) -> Vec<String> {
        self.ran.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_arguments_are_redacted_and_odd_ones_quoted() {
        let mut cmd = HostCommand::new("chpasswd", ["--user", "alice", "s3cr3t pass", ""]);
        cmd.secret_args = vec![2];
        assert_eq!(cmd.display(), "chpasswd --user alice <redacted> ''");
        assert!(!cmd.display().contains("s3cr3t"));
    }
}
