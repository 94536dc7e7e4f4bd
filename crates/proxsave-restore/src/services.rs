//! Stopping services before writing, and restarting them on every exit path.
//!
//! [`ServiceGuard`] records every unit it stopped and every mount it unmounted; it restarts
//! them when [`ServiceGuard::restore`] is called or, failing that, when it is dropped (error
//! return, Ctrl+C, a panicking applier). Restarts use their own cancellation token, so they
//! run even after the user interrupted the restore, each with a deadline.

use std::path::PathBuf;
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use serde::Serialize;

use crate::host::{Host, HostCommand, Ran};

/// One service action and its outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceAction {
    /// `stop`, `start`, `unmount`.
    pub action: &'static str,
    /// The unit or mount point.
    pub target: String,
    /// `ok`, `deferred`, or the failure.
    pub result: String,
}

/// Deadline of `systemctl stop --no-block`.
pub const STOP_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a unit may take to become inactive before it is killed.
pub const STOP_WAIT: Duration = Duration::from_secs(30);
/// Deadline of each start attempt.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

fn systemctl(args: &[&str], timeout: Duration) -> HostCommand {
    HostCommand::new("systemctl", args.iter().copied()).timeout(timeout)
}

/// Stops and restarts units through `systemctl` on the [`Host`].
pub struct ServiceGuard<'h> {
    host: &'h Host,
    stopped: Vec<String>,
    unmounted: Vec<PathBuf>,
    actions: Vec<ServiceAction>,
    finished: bool,
}

impl<'h> ServiceGuard<'h> {
    /// A guard with nothing stopped yet.
    pub fn new(host: &'h Host) -> ServiceGuard<'h> {
        ServiceGuard {
            host,
            stopped: Vec::new(),
            unmounted: Vec::new(),
            actions: Vec::new(),
            finished: false,
        }
    }

    fn record(&mut self, action: &'static str, target: &str, result: String) {
        self.actions.push(ServiceAction {
            action,
            target: target.to_string(),
            result,
        });
    }

    fn is_active(&self, unit: &str, cancel: &CancelToken) -> bool {
        match self.host.run(
            &systemctl(&["is-active", unit], Duration::from_secs(10)),
            cancel,
        ) {
            Ok(Ran::Done(out)) => {
                let state = out.stdout_text();
                !matches!(
                    state.as_str(),
                    "inactive" | "failed" | "unknown" | "dead" | ""
                )
            }
            _ => true,
        }
    }

    /// Stops `unit`: `systemctl stop --no-block`, then waits for it to become inactive, then
    /// kills it. A unit that is still active afterwards is an error; nothing has been written
    /// yet, and the caller aborts (the guard restarts what it stopped).
    ///
    /// # Errors
    /// A message describing why the unit did not stop.
    pub fn stop(&mut self, unit: &str, cancel: &CancelToken) -> Result<(), String> {
        let request = systemctl(&["stop", "--no-block", unit], STOP_REQUEST_TIMEOUT);
        match self.host.run(&request, cancel) {
            Ok(Ran::Deferred) => {
                self.record("stop", unit, "deferred".into());
                return Ok(());
            }
            Ok(Ran::Done(out)) if !out.success() => {
                let why = out.failure();
                self.record("stop", unit, why.clone());
                return Err(why);
            }
            Ok(Ran::Done(_)) => {}
            Err(e) => {
                self.record("stop", unit, e.to_string());
                return Err(e.to_string());
            }
        }
        // From here on the unit may be stopping: remember it so it is restarted.
        self.stopped.push(unit.to_string());
        let step = Duration::from_millis(500);
        let mut waited = Duration::ZERO;
        while self.is_active(unit, cancel) {
            if waited >= STOP_WAIT {
                let kill = systemctl(&["kill", "--signal=SIGKILL", unit], Duration::from_secs(10));
                let _ = self.host.run(&kill, cancel);
                self.host.clock.sleep(Duration::from_secs(1));
                if self.is_active(unit, cancel) {
                    let why = format!(
                        "still active {}s after the stop request, even after SIGKILL",
                        STOP_WAIT.as_secs()
                    );
                    self.record("stop", unit, why.clone());
                    return Err(why);
                }
                break;
            }
            if cancel.is_cancelled() {
                self.record("stop", unit, "interrupted".into());
                return Err("interrupted".into());
            }
            self.host.clock.sleep(step);
            waited += step;
        }
        self.record("stop", unit, "ok".into());
        Ok(())
    }

    /// Unmounts `path` if it is a mount point.
    ///
    /// # Errors
    /// A message when `umount` fails.
    pub fn unmount(&mut self, path: PathBuf, cancel: &CancelToken) -> Result<(), String> {
        let shown = path.display().to_string();
        if self.host.actions == crate::host::HostActions::Defer {
            self.host.defer_note(format!("umount {shown}"));
            self.record("unmount", &shown, "deferred".into());
            return Ok(());
        }
        if !self.host.mounts.is_mount_point(&path) {
            self.record("unmount", &shown, "not mounted".into());
            return Ok(());
        }
        let cmd = HostCommand::new("umount", [shown.clone()]).timeout(Duration::from_secs(30));
        match self.host.run(&cmd, cancel) {
            Ok(Ran::Done(out)) if out.success() => {
                self.unmounted.push(path);
                self.record("unmount", &shown, "ok".into());
                Ok(())
            }
            Ok(Ran::Done(out)) => {
                let why = out.failure();
                self.record("unmount", &shown, why.clone());
                Err(why)
            }
            Ok(Ran::Deferred) => Ok(()),
            Err(e) => {
                self.record("unmount", &shown, e.to_string());
                Err(e.to_string())
            }
        }
    }

    /// Restarts everything stopped, in stop order (pve-cluster first, which also remounts
    /// `/etc/pve`; PBS: `proxmox-backup` before `proxmox-backup-proxy`). Returns all actions
    /// taken by the guard.
    pub fn restore(mut self) -> Vec<ServiceAction> {
        self.restart_all();
        std::mem::take(&mut self.actions)
    }

    fn restart_all(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let fresh = CancelToken::new();
        let mut order = std::mem::take(&mut self.stopped);
        // PBS: the API daemon before the proxy that talks to it.
        if let (Some(a), Some(b)) = (
            order.iter().position(|u| u == "proxmox-backup-proxy"),
            order.iter().position(|u| u == "proxmox-backup"),
        ) && a < b
        {
            order.swap(a, b);
        }
        for unit in order {
            let mut result = String::new();
            for (i, verb) in ["start", "start", "restart"].iter().enumerate() {
                if i > 0 {
                    self.host.clock.sleep(Duration::from_secs(2));
                }
                match self
                    .host
                    .run(&systemctl(&[verb, &unit], START_TIMEOUT), &fresh)
                {
                    Ok(Ran::Done(out)) if out.success() => {
                        result = "ok".into();
                        break;
                    }
                    Ok(Ran::Done(out)) => result = out.failure(),
                    Ok(Ran::Deferred) => {
                        result = "deferred".into();
                        break;
                    }
                    Err(e) => result = e.to_string(),
                }
            }
            self.record("start", &unit, result);
        }
        self.unmounted.clear();
    }
}

impl Drop for ServiceGuard<'_> {
    fn drop(&mut self) {
        self.restart_all();
    }
}
