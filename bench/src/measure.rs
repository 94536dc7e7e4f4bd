//! One timed run of one command in a fresh child process: wall time, and from `wait4` the
//! child's rusage (peak RSS over the child and every descendant it reaped, CPU times).

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Wall-clock seconds from spawn to reaping.
    pub wall_s: f64,
    /// `ru_maxrss` of the child as returned by `wait4`, in KiB. For `sh -c 'a | b | c'` this is
    /// the largest peak RSS of the shell and of every process of the pipeline (the kernel
    /// folds a reaped child's maxima into its parent's), and since every run is a new process
    /// nothing carries over from an earlier run.
    pub max_rss_kib: u64,
    /// User CPU seconds (child and its reaped descendants).
    pub user_s: f64,
    /// System CPU seconds (child and its reaped descendants).
    pub sys_s: f64,
    /// CPU seconds the whole machine was busy during the run beyond the child's own: other
    /// processes, other users of a shared machine, kernel threads. A large value means the
    /// run competed for the CPUs and its time says little.
    pub foreign_cpu_s: f64,
}

impl Sample {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Flushes dirty pages (of earlier extractions, of removed trees) so that writeback does not
/// land inside the next timed run.
pub fn settle() {
    // SAFETY: sync(2) has no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Runs `cmd` (stdin and stdout at /dev/null, stderr into `stderr_log`), waits for it with
/// `wait4` and fails unless it exited 0.
pub fn run(cmd: &mut Command, stderr_log: &Path) -> Result<Sample> {
    let err =
        File::create(stderr_log).with_context(|| format!("creating {}", stderr_log.display()))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    let busy0 = busy_cpu_s();
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to our locals; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let busy = busy_cpu_s() - busy0;
    // The child was reaped by wait4; dropping the handle neither waits nor kills.
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let stderr = std::fs::read_to_string(stderr_log).unwrap_or_default();
        bail!(
            "{cmd:?} failed (wait status {status:#x}):\n{}",
            stderr.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    let (user_s, sys_s) = (tv(ru.ru_utime), tv(ru.ru_stime));
    Ok(Sample {
        wall_s,
        max_rss_kib: ru.ru_maxrss as u64,
        user_s,
        sys_s,
        foreign_cpu_s: (busy - user_s - sys_s).max(0.0),
    })
}

/// CPU seconds all CPUs spent busy since boot (`/proc/stat`: user, nice, system, irq,
/// softirq, steal; not idle or iowait).
pub fn busy_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (get(0) + get(1) + get(2) + get(5) + get(6) + get(7)) as f64 / hz
}

/// Waits (up to `max`) until the machine is quiet: less than 10% of one CPU busy over half
/// a second. Returns false if it never got quiet.
pub fn wait_idle(max: std::time::Duration) -> bool {
    let start = Instant::now();
    let mut said = false;
    loop {
        let b0 = busy_cpu_s();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let busy = busy_cpu_s() - b0;
        if busy < 0.05 {
            return true;
        }
        if start.elapsed() >= max {
            eprintln!(
                "[bench] machine still busy ({:.0}% of a CPU); measuring anyway",
                busy * 200.0
            );
            return false;
        }
        if !said {
            eprintln!(
                "[bench] waiting for the machine to be idle (other load: {:.0}% of a CPU)",
                busy * 200.0
            );
            said = true;
        }
    }
}

/// Median of the values (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
