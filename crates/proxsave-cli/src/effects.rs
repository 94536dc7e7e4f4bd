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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = &self.path {
            command.env("PATH", p);
        }
        command.process_group(0);
        let mut child = command.spawn()?;
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

/// Reads `/proc/self/mountinfo`.
pub struct ProcMounts;

impl MountProbe for ProcMounts {
    fn is_mount_point(&self, path: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
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
