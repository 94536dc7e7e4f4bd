//! The real effects the restore engine is generic over: processes, mount table.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proxsave_archive::progress::CancelToken;
use proxsave_restore::host::{CommandOutput, CommandRunner, HostCommand, MountProbe};

/// Runs host commands as child processes, killing them at their deadline or when the token
/// passed to [`CommandRunner::run`] is cancelled.
///
/// Each child leads its own process group: a Ctrl+C typed in the terminal reaches proxsave
/// only (which decides what to stop), never a `systemctl` half-way; a deadline or cancellation
/// kills the whole group (the command and anything it started).
pub struct ProcessRunner {
    /// Extra environment for children (none by default).
    pub path: Option<std::ffi::OsString>,
}

impl CommandRunner for ProcessRunner {
    fn run(&self, cmd: &HostCommand, cancel: &CancelToken) -> std::io::Result<CommandOutput> {
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = &self.path {
            command.env("PATH", p);
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        command.process_group(0);
        let mut child = command.spawn()?;
        if let (Some(bytes), Some(mut input)) = (cmd.stdin.clone(), child.stdin.take()) {
            // A thread, so a command that reads slowly (or not at all) cannot block us.
            std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut input, &bytes);
            });
        }
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stdout.read_to_end(&mut b);
            b
        });
        let err_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stderr.read_to_end(&mut b);
            b
        });
        let deadline = Instant::now() + cmd.timeout;
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if Instant::now() >= deadline || cancel.is_cancelled() {
                timed_out = true;
                kill_group(child.id());
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        Ok(CommandOutput {
            code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            stdout,
            stderr,
            timed_out,
        })
    }

    fn spawn_detached(&self, cmd: &HostCommand) -> std::io::Result<u32> {
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.path {
            command.env("PATH", p);
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        // A session (and so a process group) of its own from its first instruction: not in
        // ours, so a Ctrl+C at our terminal or a kill of our group never reaches it, and no
        // terminal hang-up either.
        #[allow(unsafe_code)]
        // SAFETY: the closure runs between fork and exec and only makes the `setsid` system
        // call, which is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(|| {
                rustix::process::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        // Reaped when it ends, should this process still be running then.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }

    fn stop_detached(&self, pid: u32) -> std::io::Result<()> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| std::io::Error::other(format!("bad pid {pid}")))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        Ok(())
    }

    fn init_is_systemd(&self) -> bool {
        match crate::testhook::commit_timer() {
            Some(kind) => kind == "systemd",
            // sd_booted(3): systemd is PID 1 when this folder exists.
            None => Path::new("/run/systemd/system").is_dir(),
        }
    }
}

/// SIGKILL to the process group led by `pid` (our child, not yet reaped).
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The host's clock, or with `PROXSAVE_TEST_CLOCK=virtual` a clock whose waits only move it
/// forward (see [`crate::testhook::virtual_clock`]).
pub fn clock() -> std::sync::Arc<dyn proxsave_restore::host::Clock> {
    if crate::testhook::virtual_clock() {
        std::sync::Arc::new(VirtualClock::default())
    } else {
        std::sync::Arc::new(proxsave_restore::host::SystemClock)
    }
}

/// The real time plus every wait so far; waiting returns at once.
#[derive(Default)]
struct VirtualClock(std::sync::Mutex<std::time::Duration>);

impl proxsave_restore::host::Clock for VirtualClock {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        let ahead = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        chrono::Local::now() + chrono::Duration::from_std(ahead).unwrap_or_default()
    }

    fn sleep(&self, d: std::time::Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }
}

/// Reads `/proc/self/mountinfo`.
pub struct ProcMounts;

impl MountProbe for ProcMounts {
    fn is_mount_point(&self, path: &Path) -> bool {
        let table = crate::testhook::mountinfo()
            .unwrap_or_else(|| std::path::PathBuf::from("/proc/self/mountinfo"));
        let Ok(text) = std::fs::read_to_string(table) else {
            return false;
        };
        text.lines().any(|l| {
            l.split_whitespace()
                .nth(4)
                .map(|m| Path::new(&m.replace("\\040", " ")) == path)
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_get_their_stdin_and_environment_and_secrets_stay_hidden() {
        let runner = ProcessRunner { path: None };
        let cmd = HostCommand::new("sh", ["-c", "cat; printf ' %s' \"$PROXSAVE_X\"", "s3cret"])
            .stdin("from stdin")
            .env("PROXSAVE_X", "from env")
            .secret(2);
        let out = runner.run(&cmd, &CancelToken::new()).expect("run sh");
        assert!(out.success(), "{}", out.failure());
        assert_eq!(out.stdout_text(), "from stdin from env");
        let shown = cmd.display();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(
            shown.starts_with("PROXSAVE_X='from env' sh")
                || shown.starts_with("PROXSAVE_X=from env sh"),
            "{shown}"
        );
    }

    #[test]
    fn a_deadline_kills_the_whole_process_group() {
        let runner = ProcessRunner { path: None };
        // The child starts a grandchild that would outlive it; both must be gone.
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("grandchild-ran");
        let script = format!("(sleep 2; touch '{}') & wait", marker.display());
        let cmd = HostCommand::new("sh", ["-c", script.as_str()])
            .timeout(std::time::Duration::from_millis(300));
        let out = runner.run(&cmd, &CancelToken::new()).expect("run sh");
        assert!(out.timed_out);
        // `run` returns only once standard output reached its end, i.e. once every process
        // holding it (the grandchild too) is gone: had the grandchild survived, it would have
        // touched the marker first.
        assert!(!marker.exists(), "the grandchild survived the deadline");
    }
}
