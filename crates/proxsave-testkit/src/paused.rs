//! Delivering real signals at exact points of a `proxsave` run.
//!
//! `proxsave` counts its checkpoints when `PROXSAVE_TEST_CHECKPOINTS` or
//! `PROXSAVE_TEST_STOP_AT` is set (see the binary's `testhook` module): with
//! `PROXSAVE_TEST_STOP_AT=N` it stops itself (`SIGSTOP`) at its N-th checkpoint. [`Paused`]
//! spawns the command with that variable, waits (`waitpid(WUNTRACED)`, no polling) until the
//! process is stopped there, and lets the test send `SIGKILL`, `SIGINT` or `SIGTERM` before it
//! resumes with `SIGCONT`. Standard output and error go to files, so a stopped process never
//! blocks on a full pipe.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use rustix::process::{Pid, Signal, WaitOptions};

/// One checkpoint of a recorded run: `(index, phase, detail)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1-based index (what `PROXSAVE_TEST_STOP_AT` takes).
    pub n: u64,
    /// The phase word (`extract`, `commit`, `phase`, `safety`, …).
    pub phase: String,
    /// The detail (an entry, a unit, a phase name).
    pub detail: String,
}

/// Reads a `PROXSAVE_TEST_CHECKPOINTS` file.
pub fn read_checkpoints(file: &Path) -> Vec<Checkpoint> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, '\t');
            Some(Checkpoint {
                n: it.next()?.parse().ok()?,
                phase: it.next()?.to_string(),
                detail: it.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// How a paused run ended up.
#[derive(Debug)]
pub enum Reached {
    /// Stopped at the checkpoint.
    Stopped,
    /// Exited (or died) before reaching it.
    Ended(ExitStatus),
}

/// A child process run with stop points.
pub struct Paused {
    child: Child,
    /// Where its standard output goes.
    pub stdout: PathBuf,
    /// Where its standard error goes.
    pub stderr: PathBuf,
    reaped: Option<ExitStatus>,
}

fn raw_status(st: rustix::process::WaitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = st.exit_status() {
        ExitStatus::from_raw((code & 0xff) << 8)
    } else {
        ExitStatus::from_raw(st.terminating_signal().unwrap_or(0) & 0x7f)
    }
}

impl Paused {
    /// Spawns `cmd` with `PROXSAVE_TEST_STOP_AT=stops`: a comma list of checkpoint numbers
    /// (`6325`) or per-phase numbers (`extract:1`, the first checkpoint of that phase);
    /// output into files in `out_dir` named `<name>.stdout` / `<name>.stderr`.
    pub fn spawn(cmd: &mut Command, stops: &str, out_dir: &Path, name: &str) -> Paused {
        let stdout = out_dir.join(format!("{name}.stdout"));
        let stderr = out_dir.join(format!("{name}.stderr"));
        let child = cmd
            .env("PROXSAVE_TEST_STOP_AT", stops)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn");
        Paused {
            child,
            stdout,
            stderr,
            reaped: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn pid_t(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("pid")
    }

    /// Waits until the process stops at its next stop point, or ends.
    pub fn wait_stopped(&mut self) -> Reached {
        if let Some(st) = self.reaped {
            return Reached::Ended(st);
        }
        loop {
            match rustix::process::waitpid(Some(self.pid_t()), WaitOptions::UNTRACED) {
                Ok(Some((_, st))) if st.stopped() => return Reached::Stopped,
                Ok(Some((_, st))) => {
                    let st = raw_status(st);
                    self.reaped = Some(st);
                    return Reached::Ended(st);
                }
                Ok(None) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("waitpid: {e}"),
            }
        }
    }

    /// Sends `sig` (e.g. [`Signal::KILL`], [`Signal::INT`], [`Signal::TERM`]).
    pub fn signal(&self, sig: Signal) {
        if self.reaped.is_none() {
            rustix::process::kill_process(self.pid_t(), sig).expect("kill");
        }
    }

    /// Resumes a stopped process.
    pub fn resume(&self) {
        self.signal(Signal::CONT);
    }

    /// Waits for the end (resuming it first) and returns its status.
    pub fn finish(&mut self) -> ExitStatus {
        if let Some(st) = self.reaped {
            return st;
        }
        self.resume();
        loop {
            match rustix::process::waitpid(Some(self.pid_t()), WaitOptions::empty()) {
                Ok(Some((_, st))) if !st.stopped() => {
                    // Reaped here; dropping `Child` does not wait again.
                    let st = raw_status(st);
                    self.reaped = Some(st);
                    return st;
                }
                Ok(_) => self.resume(),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("waitpid: {e}"),
            }
        }
    }

    /// Standard error so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Standard output so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

/// Waits until the process `pid` (any process, not only a child) has ended, for at most
/// `limit`: a pidfd polled for readability, no sleeping loop. True when it ended (or was
/// already gone), false at the limit.
pub fn wait_pid_exit(pid: u32, limit: std::time::Duration) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return true,
        Err(e) => panic!("pidfd_open({pid}): {e}"),
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll(pidfd {pid}): {e}"),
        }
    }
}
