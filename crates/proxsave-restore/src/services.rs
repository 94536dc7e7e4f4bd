//! Stopping services before writing, and restarting them on every exit path.
//!
//! [`ServiceGuard`] records every unit it stopped and every mount it unmounted; it restarts
//! them when [`ServiceGuard::restore`] is called or, failing that, when it is dropped (error
//! return, Ctrl+C, a panicking applier).
//!
//! Stop and start requests are never cut short by the user's cancellation, only by their own
//! deadline: a Ctrl+C while `systemctl stop` runs lets that request finish, then the guard
//! sees the cancellation and the restore winds down. A unit whose stop request went through is
//! always started again; a unit whose stop request failed or timed out is started if
//! `systemctl is-active` says it is not running. The guard tells the caller, through the
//! user's [`CancelToken`], when services are down and when they are being restarted
//! ([`Stage`]), so a second Ctrl+C can be explained instead of obeyed blindly.
//!
//! With a [`Journal`] the guard writes down each unit before stopping it, so a run killed
//! outright leaves a record; [`recover`] starts what such a run left stopped.

use std::path::PathBuf;
use std::time::Duration;

use proxsave_archive::progress::{CancelToken, Stage};
use serde::Serialize;

use crate::host::{Host, HostActions, HostCommand, Ran};
use crate::journal::{Journal, Leftover};

/// One service action and its outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceAction {
    /// `stop`, `start`, `unmount`.
    pub action: &'static str,
    /// The unit or mount point.
    pub target: String,
    /// `ok`, `deferred`, [`ALREADY_ACTIVE`], `interrupted`, or the failure.
    pub result: String,
}

/// Result of a start that was not needed: the unit's stop never took effect.
pub const ALREADY_ACTIVE: &str = "already active";
/// Result of a stop cut short by the user (the unit is started again).
pub const INTERRUPTED: &str = "interrupted";

impl ServiceAction {
    /// True for results that need no attention (`ok`, `deferred`, `not mounted`,
    /// [`ALREADY_ACTIVE`]).
    pub fn is_fine(&self) -> bool {
        matches!(
            self.result.as_str(),
            "ok" | "deferred" | "not mounted" | ALREADY_ACTIVE
        )
    }
}

/// Deadline of `systemctl stop --no-block` (the first step of [`STOP_STEPS`]).
pub const STOP_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a unit may take to become inactive after each step of [`STOP_STEPS`].
pub const STOP_WAIT: Duration = Duration::from_secs(30);
/// Pause between two steps of [`STOP_STEPS`], and between two `is-active` probes.
pub const STOP_POLL: Duration = Duration::from_millis(500);
/// Deadline of each start attempt.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a started unit is checked (1 s apart) before the check is reported failed
/// (`systemctl start` returns once a notify-type unit says it is ready; the retries cover a
/// unit that takes a moment more to answer).
pub const STARTED_CHECK_ATTEMPTS: u32 = 3;

/// Deadline of each `systemctl is-active`.
pub const IS_ACTIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The stop escalation, in order: each step's `systemctl` arguments (the unit follows) and
/// its deadline. A step that succeeds is followed by up to [`STOP_WAIT`] of `is-active`
/// probes; a step that fails, or after which the unit is still running, leads to the next.
pub const STOP_STEPS: [(&[&str], Duration); 4] = [
    (&["stop", "--no-block"], STOP_REQUEST_TIMEOUT),
    (&["stop"], Duration::from_secs(45)),
    (
        &["kill", "--signal=SIGTERM", "--kill-who=all"],
        Duration::from_secs(45),
    ),
    (
        &["kill", "--signal=SIGKILL", "--kill-who=all"],
        Duration::from_secs(45),
    ),
];

/// What `systemctl is-active` says about a unit.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Running, starting or stopping.
    Running,
    /// Down (`inactive`, `failed`, `dead`, `unknown`).
    Down,
    /// The probe itself failed (its message).
    Error(String),
}

/// Probes `unit`: exit 0 is running; otherwise the output says (`deactivating` /
/// `activating` still run; `inactive`, `failed`, `dead`, `unknown` are down); anything else
/// is an error.
fn probe(host: &Host, unit: &str, token: &CancelToken) -> Probe {
    match host.run(&systemctl(&["is-active", unit], IS_ACTIVE_TIMEOUT), token) {
        Ok(Ran::Done(out)) if out.success() => Probe::Running,
        Ok(Ran::Done(out)) if out.timed_out => Probe::Error("is-active timed out".into()),
        Ok(Ran::Done(out)) => {
            let text = format!(
                "{} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .to_ascii_lowercase();
            if text.contains("deactivating") || text.contains("activating") {
                Probe::Running
            } else if ["inactive", "failed", "dead", "unknown"]
                .iter()
                .any(|w| text.contains(w))
            {
                Probe::Down
            } else {
                Probe::Error(format!("is-active: {}", out.failure()))
            }
        }
        Ok(Ran::Deferred) => Probe::Down,
        Err(e) => Probe::Error(format!("is-active: {e}")),
    }
}

fn systemctl(args: &[&str], timeout: Duration) -> HostCommand {
    HostCommand::new("systemctl", args.iter().copied()).timeout(timeout)
}

/// What `systemctl is-active` prints for `unit` (`None` when it could not run).
fn unit_state(host: &Host, unit: &str, token: &CancelToken) -> Option<String> {
    match host.run(&systemctl(&["is-active", unit], IS_ACTIVE_TIMEOUT), token) {
        Ok(Ran::Done(out)) => Some(out.stdout_text()),
        _ => None,
    }
}

/// `umount` said the path is not a mount point (util-linux: "…: not mounted." or "…: no
/// mount point specified.", exit 32).
fn not_mounted(out: &crate::host::CommandOutput) -> bool {
    let text = format!(
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.to_ascii_lowercase();
    text.contains("not mounted") || text.contains("no mount point specified")
}

/// The unit runs (or is getting there): no start needed.
fn is_running(state: &str) -> bool {
    matches!(state, "active" | "reloading" | "activating")
}

/// Starts `unit`: `start`, `start`, `restart`, each with its deadline, 2 s apart. Returns
/// `ok`, `deferred` or the last failure.
fn start_unit(host: &Host, unit: &str, token: &CancelToken) -> String {
    let mut result = String::new();
    for (i, verb) in ["start", "start", "restart"].iter().enumerate() {
        if i > 0 {
            host.clock.sleep(Duration::from_secs(2));
        }
        match host.run(&systemctl(&[verb, unit], START_TIMEOUT), token) {
            Ok(Ran::Done(out)) if out.success() => return "ok".into(),
            Ok(Ran::Done(out)) => result = out.failure(),
            Ok(Ran::Deferred) => return "deferred".into(),
            Err(e) => result = e.to_string(),
        }
    }
    result
}

/// Restart order: the registered domains' ranks (e.g. a unit that mounts what the others
/// need comes back first), stop order otherwise.
fn restart_order<T>(units: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    crate::domain::restart_order(units, name)
}

/// A unit the guard asked to stop.
struct Stopped {
    unit: String,
    /// The stop request succeeded: systemd has (or will have) stopped it.
    accepted: bool,
}

/// Stops and restarts units through `systemctl` on the [`Host`].
pub struct ServiceGuard<'h> {
    host: &'h Host,
    progress: CancelToken,
    stopped: Vec<Stopped>,
    unmounted: Vec<PathBuf>,
    actions: Vec<ServiceAction>,
    journal: Option<Journal>,
    finished: bool,
}

impl<'h> ServiceGuard<'h> {
    /// A guard with nothing stopped yet. `cancel` is the user's token: the guard reports its
    /// [`Stage`] and activity on it (restarts themselves ignore its cancellation).
    pub fn new(host: &'h Host, cancel: &CancelToken) -> ServiceGuard<'h> {
        ServiceGuard {
            host,
            progress: cancel.clone(),
            stopped: Vec::new(),
            unmounted: Vec::new(),
            actions: Vec::new(),
            journal: None,
            finished: false,
        }
    }

    /// Records every stop in `journal` before requesting it (only when host actions run).
    pub fn with_journal(mut self, journal: Journal) -> ServiceGuard<'h> {
        if self.host.actions == HostActions::Run {
            self.journal = Some(journal);
        }
        self
    }

    fn record(&mut self, action: &'static str, target: &str, result: String) {
        let a = ServiceAction {
            action,
            target: target.to_string(),
            result,
        };
        crate::events::service(&a);
        self.actions.push(a);
    }

    /// Stops `unit`: `systemctl stop --no-block`, then waits for it to become inactive, then
    /// kills it. A unit that is still active afterwards is an error; nothing has been written
    /// yet, and the caller aborts (the guard restarts what it stopped).
    ///
    /// Nothing is requested once `cancel` is set. The request itself is not cut short by
    /// `cancel` (only by its deadline); `cancel` is checked when it returns and while waiting,
    /// and ends the wait with the error [`INTERRUPTED`] (the unit is started again later).
    ///
    /// # Errors
    /// A message describing why the unit did not stop.
    pub fn stop(&mut self, unit: &str, cancel: &CancelToken) -> Result<(), String> {
        if cancel.is_cancelled() {
            return Err(INTERRUPTED.into());
        }
        if let Some(j) = &mut self.journal
            && let Err(e) = j.stopping(unit)
        {
            let why = format!(
                "cannot record it in the services journal {}: {e}",
                j.path().display()
            );
            self.record("stop", unit, why.clone());
            return Err(why);
        }
        if self.host.actions == HostActions::Run {
            self.progress.set_stage(Stage::ServicesDown);
        }
        proxsave_archive::checkpoint::checkpoint("stop", &unit);
        // Requests run to completion (or their deadline) whatever the user does.
        let quiet = CancelToken::new();
        // Until a step is seen to take effect, a failed stop is checked at restart.
        self.stopped.push(Stopped {
            unit: unit.to_string(),
            accepted: false,
        });
        let idx = self.stopped.len() - 1;
        let mut last = String::new();
        for (i, (args, deadline)) in STOP_STEPS.iter().enumerate() {
            if i > 0 {
                if cancel.is_cancelled() {
                    self.record("stop", unit, INTERRUPTED.into());
                    return Err(INTERRUPTED.into());
                }
                self.host.clock.sleep(STOP_POLL);
            }
            let mut argv: Vec<&str> = args.to_vec();
            argv.push(unit);
            let request = systemctl(&argv, *deadline);
            match self.host.run(&request, &quiet) {
                Ok(Ran::Deferred) => {
                    self.stopped.pop();
                    self.record("stop", unit, "deferred".into());
                    return Ok(());
                }
                Ok(Ran::Done(out)) if !out.success() => {
                    last = format!("systemctl {} failed: {}", argv.join(" "), out.failure());
                    continue;
                }
                Ok(Ran::Done(_)) => {}
                Err(e) => {
                    last = format!("systemctl {}: {e}", argv.join(" "));
                    continue;
                }
            }
            if cancel.is_cancelled() {
                // Interrupted while the request ran: it went through, the unit is started again.
                self.stopped[idx].accepted = true;
                self.record("stop", unit, INTERRUPTED.into());
                return Err(INTERRUPTED.into());
            }
            match self.wait_down(unit, cancel) {
                Ok(true) => {
                    self.stopped[idx].accepted = true;
                    let reset = systemctl(&["reset-failed", unit], Duration::from_secs(5));
                    let _ = self.host.run(&reset, &quiet);
                    self.record("stop", unit, "ok".into());
                    return Ok(());
                }
                Ok(false) => {
                    last = format!(
                        "still active {}s after `systemctl {}`",
                        STOP_WAIT.as_secs(),
                        argv.join(" ")
                    );
                }
                Err(why) if why == INTERRUPTED => {
                    self.stopped[idx].accepted = true;
                    self.record("stop", unit, INTERRUPTED.into());
                    return Err(INTERRUPTED.into());
                }
                Err(why) => last = why,
            }
        }
        let why = format!(
            "did not stop after {} attempts (stop --no-block, stop, SIGTERM, SIGKILL): {last}",
            STOP_STEPS.len()
        );
        self.record("stop", unit, why.clone());
        Err(why)
    }

    /// Probes `unit` every [`STOP_POLL`] for up to [`STOP_WAIT`] (on the host's clock):
    /// `Ok(true)` once it is down, `Ok(false)` when it still runs at the deadline, the
    /// probe's error, or [`INTERRUPTED`].
    fn wait_down(&mut self, unit: &str, cancel: &CancelToken) -> Result<bool, String> {
        let quiet = CancelToken::new();
        let mut waited = Duration::ZERO;
        loop {
            match probe(self.host, unit, &quiet) {
                Probe::Down => return Ok(true),
                Probe::Running => {}
                Probe::Error(e) => return Err(e),
            }
            if cancel.is_cancelled() {
                return Err(INTERRUPTED.into());
            }
            if waited >= STOP_WAIT {
                return Ok(false);
            }
            self.host.clock.sleep(STOP_POLL);
            waited += STOP_POLL;
        }
    }

    /// Unmounts `path` (`umount`, not lazy, not forced). An `umount` that answers "not
    /// mounted" is success (the unit that mounted it usually unmounts it when it stops).
    ///
    /// # Errors
    /// A message when `umount` fails otherwise.
    pub fn unmount(&mut self, path: PathBuf, cancel: &CancelToken) -> Result<(), String> {
        let shown = path.display().to_string();
        if self.host.actions == HostActions::Defer {
            self.host.defer_note(format!("umount {shown}"));
            self.record("unmount", &shown, "deferred".into());
            return Ok(());
        }
        if cancel.is_cancelled() {
            return Err(INTERRUPTED.into());
        }
        if let Some(j) = &mut self.journal
            && let Err(e) = j.unmounting(&shown)
        {
            let why = format!(
                "cannot record it in the services journal {}: {e}",
                j.path().display()
            );
            self.record("unmount", &shown, why.clone());
            return Err(why);
        }
        let cmd = HostCommand::new("umount", [shown.clone()]).timeout(Duration::from_secs(30));
        match self.host.run(&cmd, &CancelToken::new()) {
            Ok(Ran::Done(out)) if out.success() => {
                self.unmounted.push(path);
                self.record("unmount", &shown, "ok".into());
                Ok(())
            }
            Ok(Ran::Done(out)) if not_mounted(&out) => {
                // Usual once the unit that mounted it stopped: nothing to lift.
                self.record("unmount", &shown, "not mounted".into());
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

    /// Restarts everything stopped, in restart order (see [`crate::domain::restart_order`]).
    /// Returns all actions
    /// taken by the guard.
    pub fn restore(mut self) -> Vec<ServiceAction> {
        self.restart_all();
        std::mem::take(&mut self.actions)
    }

    /// Starts the units of `units` this guard stopped, now, in restart order, each checked
    /// like at the end ([`STARTED_CHECK_ATTEMPTS`]); they are not started again at the end.
    /// For an applier that needs them running (an API it calls) while the restore goes on.
    /// Returns the units started (or found running).
    pub fn start_now(&mut self, units: &[&str]) -> Vec<String> {
        let (now, rest): (Vec<Stopped>, Vec<Stopped>) = std::mem::take(&mut self.stopped)
            .into_iter()
            .partition(|s| units.contains(&s.unit.as_str()));
        self.stopped = rest;
        let names: Vec<String> = now.iter().map(|s| s.unit.clone()).collect();
        if names.is_empty() {
            return names;
        }
        // A Ctrl+C now is about restarting services (announced, not obeyed at once), as at
        // the end; then the run is back where it was.
        let (stage, activity) = (self.progress.stage(), self.progress.activity());
        self.progress.set_stage(Stage::Restarting);
        self.progress.set_activity("restarting services");
        self.start_list(restart_order(now, |s| s.unit.as_str()));
        self.progress.set_activity(activity);
        self.progress.set_stage(stage);
        names
    }

    fn start_list(&mut self, order: Vec<Stopped>) {
        let quiet = CancelToken::new();
        for s in order {
            if !s.accepted
                && unit_state(self.host, &s.unit, &quiet)
                    .as_deref()
                    .is_some_and(is_running)
            {
                if let Some(j) = &mut self.journal {
                    let _ = j.started(&s.unit);
                }
                self.record("start", &s.unit, ALREADY_ACTIVE.into());
                continue;
            }
            proxsave_archive::checkpoint::checkpoint("start", &s.unit);
            let result = start_unit(self.host, &s.unit, &quiet);
            let ok = result == "ok";
            if ok && let Some(j) = &mut self.journal {
                let _ = j.started(&s.unit);
            }
            self.record("start", &s.unit, result);
            if ok && let Some(check) = crate::domain::started_check(&s.unit) {
                let checked = self.check_started(&s.unit, &check, &quiet);
                self.record("check", &s.unit, checked);
            }
        }
    }

    /// After a start, for a unit a domain wants checked ([`crate::domain::started_check`]):
    /// `systemctl is-active`, then the domain's command (e.g. the API answering), retried
    /// [`STARTED_CHECK_ATTEMPTS`] times 1 s apart. `ok` or what failed.
    fn check_started(
        &mut self,
        unit: &str,
        check: &crate::domain::StartedCheck,
        quiet: &CancelToken,
    ) -> String {
        let mut last = String::new();
        for i in 0..STARTED_CHECK_ATTEMPTS {
            if i > 0 {
                self.host.clock.sleep(Duration::from_secs(1));
            }
            match probe(self.host, unit, quiet) {
                Probe::Running => {}
                Probe::Down => {
                    last = "not active after its start".into();
                    continue;
                }
                Probe::Error(e) => {
                    last = e;
                    continue;
                }
            }
            let Some(cmd) = &check.command else {
                return "ok".into();
            };
            let what = check.what;
            match self.host.run(cmd, quiet) {
                Ok(Ran::Done(out)) if out.success() => return "ok".into(),
                Ok(Ran::Deferred) => return "deferred".into(),
                Ok(Ran::Done(out)) => last = format!("{what}: {}", out.failure()),
                // The check cannot run at all (the tool is missing): retrying changes nothing.
                Err(e) => return format!("{what}: {e}"),
            }
        }
        format!("{last} (checked {STARTED_CHECK_ATTEMPTS} times)")
    }

    fn restart_all(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let order = restart_order(std::mem::take(&mut self.stopped), |s| s.unit.as_str());
        self.unmounted.clear();
        if !order.is_empty() {
            self.progress.set_stage(Stage::Restarting);
            self.progress.set_activity("restarting services");
        }
        // Restarts run to completion whatever the user does (a third Ctrl+C ends the program).
        self.start_list(order);
        if let Some(j) = &mut self.journal {
            match j.finish() {
                Ok(true) => {}
                Ok(false) => {
                    let shown = j.path().display().to_string();
                    self.record(
                        "journal",
                        &shown,
                        "kept: some units are still stopped; `proxsave restore --recover` retries them".into(),
                    );
                }
                Err(e) => {
                    let shown = j.path().display().to_string();
                    self.record("journal", &shown, format!("cannot remove it: {e}"));
                }
            }
        }
        if self.progress.stage() != Stage::Working {
            self.progress.set_activity("finishing");
            self.progress.set_stage(Stage::Working);
        }
    }
}

impl Drop for ServiceGuard<'_> {
    fn drop(&mut self) {
        self.restart_all();
    }
}

/// The units a run's actions restarted, and those it left stopped (`unit (why)`).
pub fn restart_summary(actions: &[ServiceAction]) -> (Vec<String>, Vec<String>) {
    let mut restarted = Vec::new();
    let mut left = Vec::new();
    for a in actions.iter().filter(|a| a.action == "start") {
        match a.result.as_str() {
            "ok" => restarted.push(a.target.clone()),
            "deferred" | ALREADY_ACTIVE => {}
            why => left.push(format!("{} ({why})", a.target)),
        }
    }
    for a in actions.iter().filter(|a| a.action == "stop") {
        let handled = actions
            .iter()
            .any(|b| b.action == "start" && b.target == a.target);
        let listed = left
            .iter()
            .any(|l| l.split(' ').next() == Some(a.target.as_str()));
        if !handled && a.result != "deferred" && !listed {
            left.push(format!(
                "{} (stop {}, no start attempted)",
                a.target, a.result
            ));
        }
    }
    (restarted, left)
}

/// What happened to one leftover journal in [`recover`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveredHow {
    /// Every unit runs again; the journal was removed.
    Cleared,
    /// Some unit could not be started; the journal is kept for another attempt.
    Kept,
    /// The journal is about another root: nothing was done.
    OtherRoot,
}

/// One leftover journal handled by [`recover`].
#[derive(Clone, Debug, Serialize)]
pub struct RecoveredJournal {
    /// The journal file.
    pub path: PathBuf,
    /// Process id of the run that wrote it.
    pub pid: u32,
    /// When that run started.
    pub started: String,
    /// The root it restored into.
    pub root: PathBuf,
    /// Units it left recorded as stopped, in restart order.
    pub units: Vec<String>,
    /// Mount points it unmounted (a restarted unit may mount them again).
    pub unmounted: Vec<String>,
    /// What [`recover`] did with it.
    pub outcome: RecoveredHow,
    /// The starts it needed, in the order they ran.
    pub actions: Vec<ServiceAction>,
}

/// What [`recover`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// The leftover journals, oldest first.
    pub journals: Vec<RecoveredJournal>,
}

impl Recovery {
    /// Every start action, in the order they ran.
    pub fn actions(&self) -> impl Iterator<Item = &ServiceAction> {
        self.journals.iter().flat_map(|j| j.actions.iter())
    }

    /// True when nothing was left to recover for this root.
    pub fn is_empty(&self) -> bool {
        self.journals
            .iter()
            .all(|j| j.outcome == RecoveredHow::OtherRoot)
    }
}

/// Starts what runs that no longer exist left stopped: for each leftover journal of
/// `host.root` (others are reported, not applied), every unit recorded as stopping that
/// `systemctl is-active` does not show running is started, in restart order. A journal whose
/// units all run again is
/// removed; one with a unit that would not start is kept.
pub fn recover(host: &Host, leftovers: &[Leftover]) -> Recovery {
    let mut out = Recovery::default();
    let quiet = CancelToken::new();
    for lo in leftovers {
        let units = restart_order(lo.doc.units_left(), |u| u.as_str());
        let mut entry = RecoveredJournal {
            path: lo.path.clone(),
            pid: lo.doc.pid,
            started: lo.doc.started.clone(),
            root: lo.doc.root.clone(),
            units: units.clone(),
            unmounted: lo.doc.unmounted(),
            outcome: RecoveredHow::Cleared,
            actions: Vec::new(),
        };
        if lo.doc.root != host.root {
            entry.outcome = RecoveredHow::OtherRoot;
            out.journals.push(entry);
            continue;
        }
        let mut journal = Journal::reopen(lo);
        for unit in &units {
            let result = if unit_state(host, unit, &quiet)
                .as_deref()
                .is_some_and(is_running)
            {
                ALREADY_ACTIVE.to_string()
            } else {
                start_unit(host, unit, &quiet)
            };
            if result == "ok" || result == ALREADY_ACTIVE {
                let _ = journal.started(unit);
            }
            let a = ServiceAction {
                action: "start",
                target: unit.clone(),
                result,
            };
            crate::events::service(&a);
            entry.actions.push(a);
        }
        entry.outcome = match journal.finish() {
            Ok(true) => RecoveredHow::Cleared,
            _ => RecoveredHow::Kept,
        };
        out.journals.push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    /// The restart ranks a real domain crate would give (the lib's own tests link none).
    struct TestDomain;
    impl crate::domain::Domain for TestDomain {
        fn name(&self) -> &'static str {
            "test"
        }
        fn kind(&self) -> proxsave_categories::Kind {
            proxsave_categories::Kind::Common
        }
        fn restart_rank(&self, unit: &str) -> Option<u8> {
            match unit {
                "cluster-db" => Some(0),
                "node-daemon" => Some(1),
                "web-proxy" => Some(2),
                "stats-daemon" => Some(3),
                "api-daemon" => Some(10),
                "api-proxy" => Some(11),
                _ => None,
            }
        }
        fn started_check(&self, unit: &str) -> Option<crate::domain::StartedCheck> {
            (unit == "checked-daemon").then(|| crate::domain::StartedCheck {
                what: "the API answering",
                command: Some(HostCommand::new("probe-api", ["ping"])),
            })
        }
    }
    inventory::submit! { crate::domain::DomainRegistration(&TestDomain) }

    use super::*;
    use crate::host::{Clock, CommandOutput, CommandRunner, MountProbe};
    use crate::journal;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    type Answer = Box<dyn FnMut(&str, &CancelToken) -> CommandOutput + Send>;

    /// Records `program args` lines and answers through a closure.
    struct Script {
        calls: Mutex<Vec<String>>,
        answer: Mutex<Answer>,
    }

    impl CommandRunner for Script {
        fn run(&self, cmd: &HostCommand, cancel: &CancelToken) -> std::io::Result<CommandOutput> {
            let line = cmd.display();
            self.calls.lock().unwrap().push(line.clone());
            Ok((self.answer.lock().unwrap())(&line, cancel))
        }
    }

    struct NoWait;
    impl Clock for NoWait {
        fn now(&self) -> chrono::DateTime<chrono::Local> {
            chrono::Local::now()
        }
        fn sleep(&self, _d: Duration) {}
    }

    struct NoMounts;
    impl MountProbe for NoMounts {
        fn is_mount_point(&self, _p: &Path) -> bool {
            false
        }
    }

    fn out(code: i32, stdout: &str) -> CommandOutput {
        CommandOutput {
            code: Some(code),
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
            timed_out: false,
        }
    }

    fn host(root: &str, answer: Answer) -> (Host, Arc<Script>) {
        let script = Arc::new(Script {
            calls: Mutex::default(),
            answer: Mutex::new(answer),
        });
        let host = Host::new(
            PathBuf::from(root),
            HostActions::Run,
            script.clone(),
            Arc::new(NoWait),
            Arc::new(NoMounts),
        );
        (host, script)
    }

    fn calls(s: &Script) -> Vec<String> {
        s.calls.lock().unwrap().clone()
    }

    #[test]
    fn a_signal_during_a_stop_request_lets_it_finish_then_the_unit_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let user = CancelToken::new();
        let (u, d) = (user.clone(), dir.path().to_path_buf());
        let (host, script) = host(
            "/",
            Box::new(move |line, token| {
                if line == "systemctl stop --no-block node-daemon" {
                    // Written down before the request.
                    let j = journal::scan(&d);
                    assert_eq!(j.running[0].doc.units_left(), ["cluster-db", "node-daemon"]);
                    assert_eq!(u.stage(), Stage::ServicesDown);
                    // The signal arrives while the request runs: the request is not cut short.
                    u.cancel_by("SIGINT");
                    assert!(!token.is_cancelled());
                }
                if line.starts_with("systemctl start") {
                    assert_eq!(u.stage(), Stage::Restarting);
                    assert!(!token.is_cancelled());
                }
                if line.contains("is-active") {
                    out(3, "inactive")
                } else {
                    out(0, "")
                }
            }),
        );
        let mut g = ServiceGuard::new(&host, &user).with_journal(Journal::new(
            dir.path(),
            Path::new("/"),
            "t".into(),
        ));
        user.set_activity("stopping services");
        assert_eq!(g.stop("cluster-db", &user), Ok(()));
        assert_eq!(g.stop("node-daemon", &user), Err(INTERRUPTED.into()));
        assert_eq!(g.stop("web-proxy", &user), Err(INTERRUPTED.into()));
        let actions = g.restore();
        assert_eq!(
            calls(&script),
            [
                "systemctl stop --no-block cluster-db",
                "systemctl is-active cluster-db",
                "systemctl reset-failed cluster-db",
                "systemctl stop --no-block node-daemon",
                "systemctl start cluster-db",
                "systemctl start node-daemon",
            ]
        );
        let (restarted, left) = restart_summary(&actions);
        assert_eq!(restarted, ["cluster-db", "node-daemon"]);
        assert!(left.is_empty());
        assert_eq!(user.interrupted_during(), Some("stopping services"));
        assert_eq!(user.stage(), Stage::Working);
        // Everything started: the journal is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn interrupted_while_deactivating_is_started_a_failed_request_only_if_not_running() {
        let user = CancelToken::new();
        let u = user.clone();
        let (host, script) = host(
            "/",
            Box::new(move |line, _| match line {
                "systemctl stop --no-block api-proxy" => out(0, ""),
                "systemctl is-active api-proxy" => {
                    u.cancel();
                    out(0, "deactivating")
                }
                // Refused: still running.
                "systemctl stop --no-block node-daemon" => out(1, ""),
                "systemctl is-active node-daemon" => out(0, "active"),
                // Timed out: went down anyway.
                "systemctl stop --no-block web-proxy" => CommandOutput {
                    timed_out: true,
                    ..CommandOutput::default()
                },
                "systemctl is-active web-proxy" => out(3, "inactive"),
                _ => out(0, ""),
            }),
        );
        let mut g = ServiceGuard::new(&host, &user);
        assert!(g.stop("node-daemon", &user).is_err());
        // The request timed out; the next step (`systemctl stop`) stopped it.
        assert_eq!(g.stop("web-proxy", &user), Ok(()));
        assert_eq!(g.stop("api-proxy", &user), Err(INTERRUPTED.into()));
        let actions = g.restore();
        let starts: Vec<String> = calls(&script)
            .into_iter()
            .filter(|c| c.starts_with("systemctl start"))
            .collect();
        assert_eq!(
            starts,
            ["systemctl start web-proxy", "systemctl start api-proxy"]
        );
        let node_daemon = actions
            .iter()
            .find(|a| a.action == "start" && a.target == "node-daemon")
            .unwrap();
        assert_eq!(node_daemon.result, ALREADY_ACTIVE);
        assert!(node_daemon.is_fine());
    }

    #[test]
    fn recover_starts_what_a_dead_run_left_stopped_for_its_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::new(dir.path(), Path::new("/r"), "t".into());
        j.stopping("api-proxy").unwrap();
        j.stopping("api-daemon").unwrap();
        j.stopping("cluster-db").unwrap();
        j.started("cluster-db").unwrap();
        // As if written by a process that is gone.
        let mut doc = j.document().clone();
        doc.pid = 4_194_304 + 11;
        std::fs::remove_file(j.path()).unwrap();
        let path = dir.path().join("services-9.journal");
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let found = journal::scan(dir.path());
        assert_eq!(found.dead.len(), 1);

        let (other, script) = host("/other", Box::new(|_, _| out(0, "")));
        let rec = recover(&other, &found.dead);
        assert!(rec.is_empty());
        assert_eq!(rec.journals[0].outcome, RecoveredHow::OtherRoot);
        assert!(calls(&script).is_empty());
        assert!(path.exists());

        let (host, script) = host(
            "/r",
            Box::new(|line, _| {
                out(
                    0,
                    if line.contains("is-active") {
                        "inactive"
                    } else {
                        ""
                    },
                )
            }),
        );
        let rec = recover(&host, &found.dead);
        assert!(!rec.is_empty());
        assert_eq!(rec.journals[0].outcome, RecoveredHow::Cleared);
        assert_eq!(
            calls(&script),
            [
                "systemctl is-active api-daemon",
                "systemctl start api-daemon",
                "systemctl is-active api-proxy",
                "systemctl start api-proxy",
            ]
        );
        assert!(!path.exists());
        assert!(journal::scan(dir.path()).dead.is_empty());
    }

    #[test]
    fn a_unit_that_will_not_start_keeps_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let user = CancelToken::new();
        let (host, _script) = host(
            "/",
            Box::new(|line, _| match line {
                l if l.contains("is-active") => out(3, "inactive"),
                l if l.ends_with(" stats-daemon") && !l.contains("stop") => out(1, ""),
                _ => out(0, ""),
            }),
        );
        let mut g = ServiceGuard::new(&host, &user).with_journal(Journal::new(
            dir.path(),
            Path::new("/"),
            "t".into(),
        ));
        g.stop("stats-daemon", &user).unwrap();
        let actions = g.restore();
        let (restarted, left) = restart_summary(&actions);
        assert!(restarted.is_empty());
        assert_eq!(left, ["stats-daemon (exit code 1)"]);
        let kept = journal::scan(dir.path());
        assert_eq!(kept.running[0].doc.units_left(), ["stats-daemon"]);
    }

    /// A fake clock: `sleep` only adds to the time it says.
    #[derive(Default)]
    struct FakeClock(Mutex<Duration>);
    impl Clock for FakeClock {
        fn now(&self) -> chrono::DateTime<chrono::Local> {
            let base = chrono::DateTime::parse_from_rfc3339("2026-07-24T02:30:00+00:00")
                .unwrap()
                .with_timezone(&chrono::Local);
            base + chrono::Duration::from_std(*self.0.lock().unwrap()).unwrap()
        }
        fn sleep(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn host_with_clock(answer: Answer) -> (Host, Arc<Script>, Arc<FakeClock>) {
        let script = Arc::new(Script {
            calls: Mutex::default(),
            answer: Mutex::new(answer),
        });
        let clock = Arc::new(FakeClock::default());
        let host = Host::new(
            PathBuf::from("/"),
            HostActions::Run,
            script.clone(),
            clock.clone(),
            Arc::new(NoMounts),
        );
        (host, script, clock)
    }

    #[test]
    fn clean_stops_probe_reset_failed_and_an_unmount_that_is_not_mounted_is_fine() {
        let user = CancelToken::new();
        let (host, script, clock) = host_with_clock(Box::new(|line, _| match line {
            l if l.starts_with("systemctl is-active") => out(3, "inactive\n"),
            l if l.starts_with("umount") => CommandOutput {
                code: Some(32),
                stdout: Vec::new(),
                stderr: b"umount: /etc/cluster: not mounted.\n".to_vec(),
                timed_out: false,
            },
            _ => out(0, ""),
        }));
        let mut g = ServiceGuard::new(&host, &user);
        for u in ["cluster-db", "node-daemon"] {
            assert_eq!(g.stop(u, &user), Ok(()));
        }
        assert_eq!(g.unmount(PathBuf::from("/etc/cluster"), &user), Ok(()));
        let actions = g.restore();
        assert_eq!(
            calls(&script),
            [
                "systemctl stop --no-block cluster-db",
                "systemctl is-active cluster-db",
                "systemctl reset-failed cluster-db",
                "systemctl stop --no-block node-daemon",
                "systemctl is-active node-daemon",
                "systemctl reset-failed node-daemon",
                "umount /etc/cluster",
                "systemctl start cluster-db",
                "systemctl start node-daemon",
            ]
        );
        let unmount = actions.iter().find(|a| a.action == "unmount").unwrap();
        assert_eq!(unmount.result, "not mounted");
        assert!(unmount.is_fine());
        assert_eq!(*clock.0.lock().unwrap(), Duration::ZERO, "no waiting");
    }

    #[test]
    fn another_umount_failure_is_an_error() {
        let user = CancelToken::new();
        let (host, _script, _clock) = host_with_clock(Box::new(|line, _| {
            if line.starts_with("umount") {
                CommandOutput {
                    code: Some(32),
                    stdout: Vec::new(),
                    stderr: b"umount: /etc/cluster: target is busy.\n".to_vec(),
                    timed_out: false,
                }
            } else {
                out(0, "")
            }
        }));
        let mut g = ServiceGuard::new(&host, &user);
        let err = g.unmount(PathBuf::from("/etc/cluster"), &user).unwrap_err();
        assert!(err.contains("target is busy"), "{err}");
    }

    #[test]
    fn deactivating_is_still_running_then_failed_is_down() {
        let user = CancelToken::new();
        let mut probes = 0;
        let (host, script, clock) = host_with_clock(Box::new(move |line, _| {
            if line.starts_with("systemctl is-active") {
                probes += 1;
                if probes == 1 {
                    out(3, "deactivating\n")
                } else {
                    out(3, "failed\n")
                }
            } else {
                out(0, "")
            }
        }));
        let mut g = ServiceGuard::new(&host, &user);
        assert_eq!(g.stop("node-daemon", &user), Ok(()));
        assert_eq!(
            calls(&script),
            [
                "systemctl stop --no-block node-daemon",
                "systemctl is-active node-daemon",
                "systemctl is-active node-daemon",
                "systemctl reset-failed node-daemon",
            ]
        );
        assert_eq!(*clock.0.lock().unwrap(), STOP_POLL);
        drop(g);
    }

    #[test]
    fn a_unit_that_never_stops_is_escalated_then_the_others_are_started_again() {
        let user = CancelToken::new();
        let (host, script, clock) = host_with_clock(Box::new(|line, _| match line {
            "systemctl is-active node-daemon" => out(0, "active\n"),
            l if l.starts_with("systemctl is-active") => out(3, "inactive\n"),
            _ => out(0, ""),
        }));
        let mut g = ServiceGuard::new(&host, &user);
        assert_eq!(g.stop("cluster-db", &user), Ok(()));
        let err = g.stop("node-daemon", &user).unwrap_err();
        assert!(err.contains("did not stop after 4 attempts"), "{err}");
        assert!(err.contains("still active 30s after `systemctl kill --signal=SIGKILL --kill-who=all node-daemon`"), "{err}");
        let actions = g.restore();
        let requests: Vec<String> = calls(&script)
            .into_iter()
            .filter(|c| !c.starts_with("systemctl is-active"))
            .collect();
        assert_eq!(
            requests,
            [
                "systemctl stop --no-block cluster-db",
                "systemctl reset-failed cluster-db",
                "systemctl stop --no-block node-daemon",
                "systemctl stop node-daemon",
                "systemctl kill --signal=SIGTERM --kill-who=all node-daemon",
                "systemctl kill --signal=SIGKILL --kill-who=all node-daemon",
                // The unit that stopped comes back; the one still running is left alone.
                "systemctl start cluster-db",
            ]
        );
        // Four steps, each followed by 30 s of probes every 500 ms, 500 ms between steps.
        assert_eq!(*clock.0.lock().unwrap(), STOP_WAIT * 4 + STOP_POLL * 3);
        let probes = calls(&script)
            .iter()
            .filter(|c| *c == "systemctl is-active node-daemon")
            .count();
        // 61 probes per step (at 0, 0.5, …, 30 s), one more before the restart.
        assert_eq!(probes, 61 * 4 + 1);
        let nd = actions
            .iter()
            .find(|a| a.action == "start" && a.target == "node-daemon")
            .unwrap();
        assert_eq!(nd.result, ALREADY_ACTIVE);
        let (restarted, left) = restart_summary(&actions);
        assert_eq!(restarted, ["cluster-db"]);
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn start_now_starts_and_checks_only_those_units_and_restore_the_rest() {
        let user = CancelToken::new();
        let pings = Arc::new(Mutex::new(0));
        let p = pings.clone();
        let up = Arc::new(Mutex::new(false));
        let (host, script) = host(
            "/",
            Box::new(move |line, _| match line {
                "systemctl start checked-daemon" => {
                    *up.lock().unwrap() = true;
                    out(0, "")
                }
                "systemctl is-active checked-daemon" if *up.lock().unwrap() => out(0, "active"),
                l if l.contains("is-active") => out(3, "inactive"),
                "probe-api ping" => {
                    let mut n = p.lock().unwrap();
                    *n += 1;
                    if *n < 3 {
                        CommandOutput {
                            code: Some(1),
                            stderr: b"connection refused".to_vec(),
                            ..CommandOutput::default()
                        }
                    } else {
                        out(0, "")
                    }
                }
                _ => out(0, ""),
            }),
        );
        let mut g = ServiceGuard::new(&host, &user);
        g.stop("web-proxy", &user).unwrap();
        g.stop("checked-daemon", &user).unwrap();
        script.calls.lock().unwrap().clear();
        assert_eq!(
            g.start_now(&["checked-daemon", "not-stopped"]),
            ["checked-daemon"]
        );
        assert_eq!(
            calls(&script),
            [
                "systemctl start checked-daemon",
                "systemctl is-active checked-daemon",
                "probe-api ping",
                "systemctl is-active checked-daemon",
                "probe-api ping",
                "systemctl is-active checked-daemon",
                "probe-api ping",
            ]
        );
        script.calls.lock().unwrap().clear();
        let actions = g.restore();
        assert_eq!(calls(&script), ["systemctl start web-proxy"]);
        let check = actions.iter().find(|a| a.action == "check").unwrap();
        assert_eq!(
            (check.target.as_str(), check.result.as_str()),
            ("checked-daemon", "ok")
        );
        let (restarted, left) = restart_summary(&actions);
        assert_eq!(restarted, ["checked-daemon", "web-proxy"]);
        assert!(left.is_empty());
    }

    #[test]
    fn a_start_check_that_keeps_failing_is_reported_not_fine() {
        let user = CancelToken::new();
        let up = Arc::new(Mutex::new(false));
        let (host, _script) = host(
            "/",
            Box::new(move |line, _| match line {
                "systemctl start checked-daemon" => {
                    *up.lock().unwrap() = true;
                    out(0, "")
                }
                "systemctl is-active checked-daemon" if *up.lock().unwrap() => out(0, "active"),
                l if l.contains("is-active") => out(3, "inactive"),
                "probe-api ping" => CommandOutput {
                    code: Some(255),
                    stderr: b"Error: connection refused".to_vec(),
                    ..CommandOutput::default()
                },
                _ => out(0, ""),
            }),
        );
        let mut g = ServiceGuard::new(&host, &user);
        g.stop("checked-daemon", &user).unwrap();
        let actions = g.restore();
        let check = actions.iter().find(|a| a.action == "check").unwrap();
        assert!(!check.is_fine());
        assert!(
            check.result.starts_with("the API answering: ")
                && check.result.ends_with("(checked 3 times)"),
            "{}",
            check.result
        );
    }
}
