//! Signals during a restore that stops services: SIGINT, SIGTERM, a double and a triple
//! Ctrl+C, and `kill -9`, delivered at seeded random points while `systemctl` requests are
//! held in flight by the fake's gates (no sleeps: the fake announces a gated call on a FIFO
//! and waits for the test to let it go). After every run each unit the run stopped runs again
//! (for a `kill -9` or a third Ctrl+C: after `proxsave restore --recover` or the next
//! restore), the exit code is 130 and the restore log says what happened.
//!
//! `PROXSAVE_SIGNALS_SEED=N` replays other random points.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use proxsave_testkit::fakes::{Call, FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

/// Longest wait for anything in one run: only reached when the product hangs (a failure).
const DEADLINE: Duration = Duration::from_secs(60);
/// Runs per kind of interruption.
const RUNS: usize = 22;

/// A tiny seeded xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let seed = std::env::var("PROXSAVE_SIGNALS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_2026_u64);
        Rng((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Pve,
    Pbs,
}

impl Role {
    /// Units in stop order.
    fn units(self) -> &'static [&'static str] {
        match self {
            Role::Pve => &["pve-cluster", "pvedaemon", "pveproxy", "pvestatd"],
            Role::Pbs => &["proxmox-backup-proxy", "proxmox-backup"],
        }
    }

    /// The same units in restart order.
    fn restart_order(self, stopped: &[&'static str]) -> Vec<&'static str> {
        let mut v = stopped.to_vec();
        if self == Role::Pbs && v.len() == 2 {
            v.swap(0, 1);
        }
        v
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Role::Pve => &["--mode", "full", "--cluster-mode", "recovery"],
            Role::Pbs => &["--mode", "full", "--pbs-behavior", "merge"],
        }
    }
}

/// Something a run did that the test waits for.
#[derive(Debug)]
enum Ev {
    /// A gated call is held.
    Held(Call),
    /// A gated call has finished.
    Finished(Call),
    Stderr(String),
    Exit(ExitStatus),
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    role: Role,
    gate_events: Arc<Mutex<Option<Sender<Ev>>>>,
}

impl Lab {
    fn new(role: Role) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let source = match role {
            Role::Pve => HostTree::pve_cluster_node(dir.path().join("source")),
            Role::Pbs => HostTree::pbs_node(dir.path().join("source")),
        };
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundle = make_host_backup_in(&source, &spec, dir.path());
        let target = match role {
            Role::Pve => HostRoot::pve(dir.path().join("root")),
            Role::Pbs => HostRoot::pbs(dir.path().join("root")),
        };
        let fake = FakeBin::new(dir.path().join("fake"));
        let gate_events: Arc<Mutex<Option<Sender<Ev>>>> = Arc::default();
        let slot = gate_events.clone();
        fake.watch_gates(move |ev| {
            if let Some(tx) = &*slot.lock().unwrap() {
                let _ = tx.send(if ev.held() {
                    Ev::Held(ev.call())
                } else {
                    Ev::Finished(ev.call())
                });
            }
        });
        Lab {
            dir,
            fake,
            target,
            bundle,
            role,
            gate_events,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn work(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("work-{n}"))
    }

    /// Every unit active, no calls, no rules.
    fn reset(&self) {
        self.fake.reset_units();
        self.fake.clear_calls();
        self.fake.clear_rules();
    }

    fn restore_command(&self, n: usize) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.work(n))
            .arg("--export-dir")
            .arg(self.dir.path().join(format!("export-{n}")))
            .args(["--yes", "--host-actions", "run", "--json"])
            .args(self.role.args());
        cmd
    }

    fn recover(&self, root: &Path, n: usize) -> Output {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .stdin(Stdio::null())
            .args(["restore", "--recover", "--root"])
            .arg(root)
            .arg("--work-dir")
            .arg(self.work(n))
            .output()
            .unwrap()
    }

    fn start(&self, n: usize) -> Run {
        let (tx, rx) = channel();
        *self.gate_events.lock().unwrap() = Some(tx.clone());
        let mut child = self
            .restore_command(n)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let etx = tx.clone();
        let err_t = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = etx.send(Ev::Stderr(line));
            }
            all
        });
        let wait_t = std::thread::spawn(move || {
            let status = child.wait().unwrap();
            let _ = tx.send(Ev::Exit(status));
        });
        Run {
            pid,
            rx,
            seen: Vec::new(),
            status: None,
            threads: Some((out_t, err_t, wait_t)),
        }
    }

    /// The stop requests the fake received, in order.
    fn stopped(&self) -> Vec<String> {
        self.fake
            .calls_of("systemctl")
            .iter()
            .filter(|c| c.starts_with(&["stop", "--no-block"]))
            .map(|c| c.args[2].clone())
            .collect()
    }

    fn starts(&self) -> Vec<String> {
        self.fake
            .calls_of("systemctl")
            .iter()
            .filter(|c| c.starts_with(&["start"]))
            .map(|c| c.args[1].clone())
            .collect()
    }

    fn journals(&self, n: usize) -> Vec<PathBuf> {
        files(&self.work(n), "services-", ".journal")
    }

    fn log(&self, n: usize) -> String {
        let logs = files(&self.work(n), "restore_", ".log");
        assert_eq!(logs.len(), 1, "{logs:?}");
        fs::read_to_string(&logs[0]).unwrap()
    }
}

fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.starts_with(prefix) && n.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One running `proxsave restore`.
struct Run {
    pid: i32,
    rx: Receiver<Ev>,
    seen: Vec<String>,
    status: Option<ExitStatus>,
    threads: Option<(JoinHandle<String>, JoinHandle<String>, JoinHandle<()>)>,
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn next(&mut self, what: &str) -> Ev {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(ev) => {
                self.seen.push(format!("{ev:?}"));
                ev
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "no {what} within {DEADLINE:?}; seen:\n{}",
                    self.seen.join("\n")
                )
            }
            Err(RecvTimeoutError::Disconnected) => panic!("events channel closed"),
        }
    }

    fn fail(&self, why: String) -> ! {
        panic!("{why}; seen:\n{}", self.seen.join("\n"))
    }

    /// Waits until the gated call `line` is held.
    fn gate(&mut self, line: &str) {
        loop {
            match self.next(line) {
                Ev::Held(c) if c.line() == line => return,
                Ev::Held(c) => self.fail(format!("expected {line:?}, held {:?}", c.line())),
                Ev::Exit(s) => {
                    self.status = Some(s);
                    self.fail(format!("exited ({s}) before {line:?}"))
                }
                Ev::Stderr(_) | Ev::Finished(_) => {}
            }
        }
    }

    /// Waits for a line of stderr containing `needle`.
    fn stderr(&mut self, needle: &str) {
        loop {
            match self.next(needle) {
                Ev::Stderr(l) if l.contains(needle) => return,
                Ev::Exit(s) => {
                    self.status = Some(s);
                    self.fail(format!("exited ({s}) before saying {needle:?}"))
                }
                Ev::Held(c) => self.fail(format!("held {:?} before saying {needle:?}", c.line())),
                Ev::Stderr(_) | Ev::Finished(_) => {}
            }
        }
    }

    /// Waits for the program to exit.
    fn exit(&mut self) -> ExitStatus {
        while self.status.is_none() {
            match self.next("exit") {
                Ev::Exit(s) => self.status = Some(s),
                Ev::Held(c) => self.fail(format!("unexpected held call {:?}", c.line())),
                Ev::Stderr(_) | Ev::Finished(_) => {}
            }
        }
        self.status.unwrap()
    }

    /// Waits until the gated call `line` has finished (after the program's death).
    fn finished(&mut self, line: &str) {
        loop {
            match self.next(line) {
                Ev::Finished(c) if c.line() == line => return,
                Ev::Held(c) => self.fail(format!("unexpected held call {:?}", c.line())),
                _ => {}
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    fn finish(mut self) -> Finished {
        let status = self.exit();
        let (out_t, err_t, wait_t) = self.threads.take().unwrap();
        wait_t.join().unwrap();
        Finished {
            status,
            stdout: out_t.join().unwrap(),
            stderr: err_t.join().unwrap(),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.status.is_none() && self.threads.is_some() {
            // A failed assertion: do not leave the binary running.
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Where the first signal lands.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// While `systemctl stop --no-block <unit>` is in flight.
    Stop(usize),
    /// While the first `systemctl is-active <unit>` after its stop is in flight; it answers
    /// `inactive` (the signal is seen between two units).
    Poll(usize),
    /// Same, answering `deactivating` (the signal ends the wait for the unit).
    Deactivating(usize),
    /// While `systemctl start <unit>` (in restart order) is in flight, after the commit.
    Start(usize),
}

impl Point {
    fn random(rng: &mut Rng, role: Role) -> Point {
        let u = rng.below(role.units().len());
        match rng.below(4) {
            0 => Point::Stop(u),
            1 => Point::Poll(u),
            2 => Point::Deactivating(u),
            _ => Point::Start(u),
        }
    }

    /// Installs the gate (and answer) and returns the held call's line.
    fn arm(self, lab: &Lab) -> String {
        let units = lab.role.units();
        let f = &lab.fake;
        match self {
            Point::Stop(u) => {
                f.gate("systemctl", &["stop", "--no-block", units[u]], Some(1));
                format!("systemctl stop --no-block {}", units[u])
            }
            Point::Poll(u) | Point::Deactivating(u) => {
                f.gate("systemctl", &["is-active", units[u]], Some(1));
                if let Point::Deactivating(_) = self {
                    f.respond_times(
                        "systemctl",
                        &["is-active", units[u]],
                        1,
                        Response::ok("deactivating\n"),
                    );
                }
                format!("systemctl is-active {}", units[u])
            }
            Point::Start(u) => {
                let unit = lab.role.restart_order(units)[u];
                f.gate("systemctl", &["start", unit], Some(1));
                format!("systemctl start {unit}")
            }
        }
    }

    /// The units the run stops (all of them up to the point), in stop order.
    fn stopped(self, role: Role) -> Vec<&'static str> {
        let units = role.units();
        match self {
            Point::Stop(u) | Point::Poll(u) | Point::Deactivating(u) => units[..=u].to_vec(),
            Point::Start(_) => units.to_vec(),
        }
    }

    fn during(self) -> &'static str {
        match self {
            Point::Start(_) => "restarting services",
            _ => "stopping services",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sigint,
    Sigterm,
    DoubleSigint,
}

impl Kind {
    fn first(self) -> (i32, &'static str) {
        match self {
            Kind::Sigterm => (libc::SIGTERM, "SIGTERM"),
            _ => (libc::SIGINT, "SIGINT"),
        }
    }
}

const ANNOUNCEMENT: &str =
    "restarting services, press Ctrl+C again within 3 s to leave them as they are";

/// One restore interrupted at `point` (and, for a double Ctrl+C, again during a restart);
/// checks everything a user would.
fn interrupted_run(lab: &Lab, n: usize, kind: Kind, point: Point, rng: &mut Rng) -> String {
    lab.reset();
    let held = point.arm(lab);
    let stopped = point.stopped(lab.role);
    let restarts = lab.role.restart_order(&stopped);
    // For a double Ctrl+C: the restart during which the second one comes.
    let second = match (kind, point) {
        (Kind::DoubleSigint, Point::Start(_)) => Some(held.clone()),
        (Kind::DoubleSigint, _) => {
            let unit = restarts[rng.below(restarts.len())];
            lab.fake.gate("systemctl", &["start", unit], Some(1));
            Some(format!("systemctl start {unit}"))
        }
        _ => None,
    };
    let (sig, name) = kind.first();
    let what = format!("run {n}: {kind:?} at {point:?} on {:?}", lab.role);

    let mut run = lab.start(n);
    run.gate(&held);
    run.signal(sig);
    run.stderr(&format!("{name} received"));
    if second.as_deref() == Some(held.as_str()) {
        run.signal(libc::SIGINT);
        run.stderr(ANNOUNCEMENT);
        lab.fake.release_gate();
    } else {
        lab.fake.release_gate();
        if let Some(line) = &second {
            run.gate(line);
            run.signal(libc::SIGINT);
            run.stderr(ANNOUNCEMENT);
            lab.fake.release_gate();
        }
    }
    let done = run.finish();
    let ctx = format!("{what}\nstdout:\n{}\nstderr:\n{}", done.stdout, done.stderr);
    assert_eq!(done.status.code(), Some(130), "{ctx}");

    // Exactly the units up to the point were stopped, and every one runs again.
    assert_eq!(lab.stopped(), stopped, "{ctx}");
    for unit in &stopped {
        assert_eq!(lab.fake.unit_state(unit), "active", "{unit}: {ctx}");
    }
    assert_eq!(lab.starts(), restarts, "{ctx}");
    for unit in lab.role.units() {
        if !stopped.contains(unit) {
            assert_eq!(lab.fake.unit_state(unit), "active", "{unit}: {ctx}");
        }
    }
    // Nothing left to recover.
    assert!(lab.journals(n).is_empty(), "{:?}: {ctx}", lab.journals(n));

    // The report and the log say what happened.
    let r: serde_json::Value = serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {ctx}"));
    assert_eq!(r["outcome"], "aborted", "{ctx}");
    assert_eq!(r["interrupted"]["signal"], name, "{ctx}");
    assert_eq!(r["interrupted"]["during"], point.during(), "{ctx}");
    let log = lab.log(n);
    let lines = [
        format!(
            "INTERRUPTED: interrupted by {name} during {}",
            point.during()
        ),
        format!("  Services restarted: {}", restarts.join(", ")),
        "  Services NOT restarted: none".to_string(),
    ];
    for line in &lines {
        assert!(
            log.lines().any(|l| l == line),
            "log lacks {line:?}:\n{log}\n{ctx}"
        );
    }
    let units = lab.role.units();
    let held_stop = match point {
        Point::Stop(u) | Point::Deactivating(u) => {
            Some(format!("  stop {}: interrupted", units[u]))
        }
        Point::Poll(u) => Some(format!("  stop {}: ok", units[u])),
        Point::Start(_) => None,
    };
    if let Some(line) = held_stop {
        assert!(log.lines().any(|l| l == line), "log lacks {line:?}:\n{log}");
    }
    for unit in &restarts {
        let line = format!("  start {unit}: ok");
        assert!(log.lines().any(|l| l == line), "log lacks {line:?}:\n{log}");
    }
    assert!(
        done.stderr
            .contains(&format!("Interrupted by {name} during {}.", point.during())),
        "{ctx}"
    );
    if second.is_some() {
        assert_eq!(done.stderr.matches(ANNOUNCEMENT).count(), 1, "{ctx}");
    } else {
        assert!(!done.stderr.contains("press Ctrl+C again"), "{ctx}");
    }
    format!("{kind:?} {point:?} {:?}", lab.role)
}

fn many_runs(kind: Kind, salt: u64) {
    require_tools!("tar", "sha256sum", "mkfifo");
    let mut rng = Rng::new(salt);
    let labs = [Lab::new(Role::Pve), Lab::new(Role::Pbs)];
    let mut done = Vec::new();
    for n in 0..RUNS {
        let lab = &labs[rng.below(2)];
        let point = Point::random(&mut rng, lab.role);
        done.push(interrupted_run(lab, n, kind, point, &mut rng));
    }
    eprintln!("{} runs: {done:#?}", done.len());
}

#[test]
fn sigint_at_random_points_restarts_every_stopped_unit() {
    many_runs(Kind::Sigint, 1);
}

#[test]
fn sigterm_at_random_points_restarts_every_stopped_unit() {
    many_runs(Kind::Sigterm, 2);
}

#[test]
fn a_second_ctrl_c_during_the_restarts_is_announced_and_they_complete() {
    many_runs(Kind::DoubleSigint, 3);
}

#[test]
fn kill_9_during_a_stop_is_put_right_by_recover_for_that_root_only() {
    require_tools!("tar", "sha256sum", "mkfifo");
    let lab = Lab::new(Role::Pve);
    lab.reset();
    lab.fake
        .gate("systemctl", &["stop", "--no-block", "pvedaemon"], Some(1));
    let mut run = lab.start(0);
    run.gate("systemctl stop --no-block pvedaemon");
    run.signal(libc::SIGKILL);
    assert_eq!(run.exit().signal(), Some(libc::SIGKILL));
    // The stop request was already on its way: it completes after proxsave died.
    lab.fake.release_gate();
    run.finished("systemctl stop --no-block pvedaemon");
    drop(run.finish());
    for unit in ["pve-cluster", "pvedaemon"] {
        assert_eq!(lab.fake.unit_state(unit), "inactive");
    }
    let journals = lab.journals(0);
    assert_eq!(journals.len(), 1, "{journals:?}");
    let mode = fs::metadata(&journals[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let j: serde_json::Value = serde_json::from_slice(&fs::read(&journals[0]).unwrap()).unwrap();
    assert_eq!(j["schema"], "proxsave/services-journal/v1");
    assert_eq!(
        j["root"].as_str().unwrap(),
        fs::canonicalize(lab.root()).unwrap().to_str().unwrap()
    );
    let units: Vec<(&str, &str)> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        units,
        [("pve-cluster", "stopping"), ("pvedaemon", "stopping")]
    );

    // Another root: the journal is not applied, and the output says so.
    let other = lab.dir.path().join("other-root");
    fs::create_dir(&other).unwrap();
    lab.fake.clear_calls();
    let out = lab.recover(&other, 0);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(text.contains("not applied"), "{text}");
    assert!(text.contains("Nothing to recover"), "{text}");
    assert!(lab.starts().is_empty());
    assert_eq!(lab.fake.unit_state("pve-cluster"), "inactive");
    assert_eq!(lab.journals(0), journals);

    // The right root: both started, pve-cluster first; the journal is gone.
    let out = lab.recover(lab.root(), 0);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(
        text.contains("started pve-cluster") && text.contains("started pvedaemon"),
        "{text}"
    );
    assert_eq!(lab.starts(), ["pve-cluster", "pvedaemon"]);
    for unit in Role::Pve.units() {
        assert_eq!(lab.fake.unit_state(unit), "active", "{unit}");
    }
    assert!(lab.journals(0).is_empty());

    // Again: nothing to do.
    lab.fake.clear_calls();
    let out = lab.recover(lab.root(), 0);
    common::assert_ok(&out);
    assert!(common::stdout(&out).contains("Nothing to recover"));
    assert!(lab.fake.calls().is_empty(), "{:?}", lab.fake.call_lines());
}

#[test]
fn the_next_restore_first_starts_what_a_killed_one_left_stopped() {
    require_tools!("tar", "sha256sum", "mkfifo");
    let lab = Lab::new(Role::Pbs);
    lab.reset();
    lab.fake
        .gate("systemctl", &["is-active", "proxmox-backup"], Some(1));
    let mut run = lab.start(0);
    run.gate("systemctl is-active proxmox-backup");
    run.signal(libc::SIGKILL);
    assert_eq!(run.exit().signal(), Some(libc::SIGKILL));
    lab.fake.release_gate();
    run.finished("systemctl is-active proxmox-backup");
    drop(run.finish());
    assert_eq!(lab.fake.unit_state("proxmox-backup-proxy"), "inactive");
    assert_eq!(lab.fake.unit_state("proxmox-backup"), "inactive");

    lab.fake.clear_calls();
    let out = lab.restore_command(0).output().unwrap();
    common::assert_ok(&out);
    let text = common::stderr(&out);
    assert!(
        text.contains("Recovering services left stopped by the interrupted restore"),
        "{text}"
    );
    assert!(
        text.contains("started proxmox-backup\n") && text.contains("started proxmox-backup-proxy"),
        "{text}"
    );
    // Recovery (API daemon first), then the restore's own stop and restart (other host
    // commands, such as the accounts applier's visudo checks, are not about services).
    let sc: Vec<String> = lab
        .fake
        .call_lines()
        .into_iter()
        .filter(|l| l.starts_with("systemctl ") && !l.contains("is-active"))
        .collect();
    assert_eq!(
        sc,
        [
            "systemctl start proxmox-backup",
            "systemctl start proxmox-backup-proxy",
            "systemctl stop --no-block proxmox-backup-proxy",
            "systemctl reset-failed proxmox-backup-proxy",
            "systemctl stop --no-block proxmox-backup",
            "systemctl reset-failed proxmox-backup",
            "systemctl start proxmox-backup",
            "systemctl start proxmox-backup-proxy",
        ]
    );
    for unit in Role::Pbs.units() {
        assert_eq!(lab.fake.unit_state(unit), "active", "{unit}");
    }
    assert!(lab.journals(0).is_empty());
}

#[test]
fn a_third_ctrl_c_within_3_s_leaves_the_rest_and_recover_starts_them() {
    require_tools!("tar", "sha256sum", "mkfifo");
    let lab = Lab::new(Role::Pve);
    lab.reset();
    lab.fake.gate("systemctl", &["start", "pvedaemon"], Some(1));
    let mut run = lab.start(0);
    run.gate("systemctl start pvedaemon");
    run.signal(libc::SIGINT);
    run.stderr("SIGINT received");
    run.signal(libc::SIGINT);
    run.stderr(ANNOUNCEMENT);
    run.signal(libc::SIGINT);
    assert_eq!(run.exit().code(), Some(130));
    // The start in flight completes on its own; the later units stay stopped.
    lab.fake.release_gate();
    run.finished("systemctl start pvedaemon");
    let done = run.finish();
    let root = fs::canonicalize(lab.root()).unwrap();
    let hint = format!(
        "proxsave restore --recover --root {} --work-dir {}",
        root.display(),
        lab.work(0).display()
    );
    assert!(
        done.stderr.contains("exiting now") && done.stderr.contains(&hint),
        "{}",
        done.stderr
    );
    assert_eq!(lab.fake.unit_state("pve-cluster"), "active");
    assert_eq!(lab.fake.unit_state("pvedaemon"), "active");
    assert_eq!(lab.fake.unit_state("pveproxy"), "inactive");
    assert_eq!(lab.fake.unit_state("pvestatd"), "inactive");
    assert_eq!(lab.journals(0).len(), 1);

    lab.fake.clear_calls();
    let out = lab.recover(lab.root(), 0);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(text.contains("pvedaemon was already running"), "{text}");
    assert_eq!(lab.starts(), ["pveproxy", "pvestatd"]);
    for unit in Role::Pve.units() {
        assert_eq!(lab.fake.unit_state(unit), "active", "{unit}");
    }
    assert!(lab.journals(0).is_empty());
}
