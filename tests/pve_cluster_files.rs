//! The `pve_firewall`, `pve_ha` and `pve_sdn` appliers and the COMMIT window, end to end:
//! the real binary restores onto a PVE root whose `/etc/pve` is a real mount (a tmpfs, as
//! pmxcfs would be; unmounted on every path by a guard), with fake `systemctl`, `pvesh` and
//! `systemd-run` on `PATH` (the fake timer really runs its command after `--on-active`).
//!
//! What a user checks: the folders equal the backup's (bytes and modes 0640), `host.fw` on
//! this node, `pve-firewall` reloaded, SDN applied only when asked; not mounted => skipped
//! with the reason; RECOVERY => untouched. The window: `--yes` commits, `--answer
//! pve.commit=rollback` rolls back, no answer at a console within the window rolls back, and
//! a `kill -9` of proxsave inside the window still puts the previous files back on time (both
//! timer kinds), while `--rollback-status` lists it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxsave_restore::commit::{State, Timer, WindowRecord};
use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::paused::{Paused, Reached, wait_pid_exit};

/// pmxcfs shows files as root:www-data.
const PVE: (u32, u32) = (0, 33);

/// The backup's `/etc/pve` files of the three categories (from node `pve-old`).
const BACKUP: &[(&str, &str)] = &[
    (
        "firewall/cluster.fw",
        "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[RULES]\nIN SSH(ACCEPT) -i vmbr0 -log nolog\nIN ACCEPT -p tcp -dport 8006\n",
    ),
    (
        "firewall/100.fw",
        "[OPTIONS]\nenable: 1\n\n[RULES]\nIN HTTP(ACCEPT)\n",
    ),
    (
        "nodes/pve-old/host.fw",
        "[OPTIONS]\nenable: 1\nnf_conntrack_max: 262144\n\n[RULES]\nIN ACCEPT -source 10.0.0.0/24\n",
    ),
    (
        "ha/resources.cfg",
        "vm: 100\n\tstate started\n\tmax_restart 2\n\n",
    ),
    (
        "ha/groups.cfg",
        "group: prefer-a\n\tnodes pve-old:2,pve1:1\n\n",
    ),
    ("sdn/zones.cfg", "simple: zone1\n\tipam pve\n\n"),
    ("sdn/vnets.cfg", "vnet: vnet1\n\tzone zone1\n\ttag 10\n\n"),
];

/// What the target's `/etc/pve` holds before (node `pve1`).
const BEFORE: &[(&str, &str)] = &[
    ("firewall/cluster.fw", "[OPTIONS]\nenable: 0\n"),
    ("firewall/200.fw", "[OPTIONS]\nenable: 1\n"),
    ("ha/resources.cfg", "ct: 200\n\tstate stopped\n\n"),
    (
        "ha/rules.cfg",
        "node-affinity: r1\n\tnodes pve1\n\tresources vm:200\n\n",
    ),
    ("nodes/pve1/qemu-server/200.conf", "memory: 512\n"),
];

/// A tmpfs mounted on a folder for the test's life (also on panic).
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: &Path) -> Mounted {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "proxsave-test-pmxcfs"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mount -t tmpfs {} failed (tests run as root)",
            at.display()
        );
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    root: PathBuf,
    bundle: PathBuf,
    _mount: Option<Mounted>,
}

fn write(base: &Path, rel: &str, text: &str, mode: u32) {
    let p = base.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file below `dir`: relative path -> (content, mode).
fn tree(dir: &Path) -> BTreeMap<String, (String, u32)> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, (String, u32)>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().display().to_string(),
                    (
                        fs::read_to_string(&p).unwrap_or_default(),
                        m.permissions().mode() & 0o7777,
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn expected(files: &[(&str, &str)], prefix: &str) -> BTreeMap<String, (String, u32)> {
    files
        .iter()
        .filter_map(|(p, t)| {
            p.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), (t.to_string(), 0o640)))
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Lab {
    fn new(mounted: bool) -> Lab {
        Lab::with(mounted, false, &[])
    }

    /// `cluster`: a backup of a cluster node, with its cluster database; `extra`: more
    /// `/etc/pve` files in the backup.
    fn with(mounted: bool, cluster: bool, extra: &[(&str, &str)]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let mut source = HostTree::new(dir.path().join("source"));
        source.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            format!(
                "# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve-old\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE={}\n",
                if cluster { "cluster" } else { "standalone" }
            )
            .as_bytes(),
            0o640,
            ROOT,
        );
        if cluster {
            source.file(
                "var/lib/pve-cluster/config.db",
                // A real one: RECOVERY checks it with SQLite before anything stops.
                &proxsave_testkit::configdb::ConfigDb::pve_cluster().bytes(),
                0o600,
                ROOT,
            );
        }
        source.file("etc/hostname", b"pve-old\n", 0o644, ROOT);
        for (p, t) in BACKUP.iter().chain(extra) {
            source.file(&format!("etc/pve/{p}"), t.as_bytes(), 0o640, PVE);
        }
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);

        let root = dir.path().join("root");
        write(&root, "etc/hostname", "pve1\n", 0o644);
        write(&root, "usr/sbin/qm", "#!/bin/sh\n", 0o755);
        let etc_pve = root.join("etc/pve");
        let mount = mounted.then(|| Mounted::new(&etc_pve));
        for (p, t) in BEFORE {
            write(&etc_pve, p, t, 0o640);
        }
        Lab {
            dir,
            fake,
            root,
            bundle,
            _mount: mount,
        }
    }

    fn etc_pve(&self) -> PathBuf {
        self.root.join("etc/pve")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn command(&self, timer: &str, extra: &[&str]) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("PROXSAVE_TEST_COMMIT_TIMER", timer)
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(&self.root)
            .arg("--work-dir")
            .arg(self.work())
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args(["--mode", "custom", "--host-actions", "run"]);
        if !extra.contains(&"--categories") {
            cmd.args(["--categories", "pve_firewall,pve_ha,pve_sdn"]);
        }
        cmd.args(extra);
        cmd
    }

    /// A `--yes --json` restore answering yes to the three apply questions.
    fn restore(&self, timer: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "--yes",
            "--json",
            "--commit-window",
            "2",
            "--answer",
            "pve.firewall.apply=yes",
            "--answer",
            "pve.ha.apply=yes",
            "--answer",
            "pve.sdn.apply=yes",
        ];
        args.extend_from_slice(extra);
        self.command(timer, &args).output().unwrap()
    }

    fn windows(&self) -> Vec<WindowRecord> {
        let mut out: Vec<WindowRecord> = fs::read_dir(self.work().join("commit"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| fs::read(e.path().join("window.json")).ok())
                    .map(|b| serde_json::from_slice(&b).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|w: &WindowRecord| w.armed_unix_ms);
        out
    }

    fn window_dir(&self, w: &WindowRecord) -> PathBuf {
        self.work().join("commit").join(&w.id)
    }

    /// The pid that times `w` (the detached waiter, or what the fake systemd timer runs).
    fn timer_pid(&self, w: &WindowRecord) -> u32 {
        match &w.timer {
            Timer::Detached { pid } => *pid,
            Timer::Systemd { unit } => self.fake.timer_pid(unit).expect("fake timer pid"),
            Timer::None => panic!("window {} has no timer", w.id),
        }
    }

    fn firewall_reloads(&self) -> usize {
        self.fake
            .calls_of("systemctl")
            .iter()
            .filter(|c| c.starts_with(&["try-restart", "pve-firewall"]))
            .count()
    }

    fn status_of(report: &serde_json::Value, category: &str) -> serde_json::Value {
        report["applied"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["category"] == category)
            .unwrap_or_else(|| panic!("no outcome for {category}: {report:#}"))
            .clone()
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{}",
            common::stdout(out),
            common::stderr(out)
        )
    })
}

/// What the target's `/etc/pve` must hold after a full apply.
fn after_apply() -> BTreeMap<String, (String, u32)> {
    let mut want = BTreeMap::new();
    for (p, t) in BACKUP {
        let p = p.replace("nodes/pve-old/", "nodes/pve1/");
        want.insert(p, (t.to_string(), 0o640));
    }
    // Not part of these categories: untouched.
    want.insert(
        "nodes/pve1/qemu-server/200.conf".into(),
        ("memory: 512\n".into(), 0o640),
    );
    want
}

fn before() -> BTreeMap<String, (String, u32)> {
    BEFORE
        .iter()
        .map(|(p, t)| (p.to_string(), (t.to_string(), 0o640)))
        .collect()
}

#[test]
fn yes_applies_the_three_folders_like_the_backup_and_commits() {
    let lab = Lab::new(true);
    let out = lab.restore("detached", &["--answer", "pve.sdn.reload=yes"]);
    common::assert_ok(&out);
    let r = report(&out);
    assert_eq!(tree(&lab.etc_pve()), after_apply());
    // Not in the backup: removed. The other node's file landed on this node, with a warning.
    assert!(!lab.etc_pve().join("firewall/200.fw").exists());
    assert!(!lab.etc_pve().join("ha/rules.cfg").exists());
    assert!(!lab.etc_pve().join("nodes/pve-old").exists());
    let err = common::stderr(&out);
    assert!(
        err.contains("host.fw of node pve-old of the backup is applied to this node pve1"),
        "{err}"
    );
    for c in ["pve_firewall", "pve_ha", "pve_sdn"] {
        assert_eq!(Lab::status_of(&r, c)["status"], "applied", "{r:#}");
    }
    assert_eq!(lab.firewall_reloads(), 1);
    let pvesh: Vec<Vec<String>> = lab
        .fake
        .calls_of("pvesh")
        .into_iter()
        .map(|c| c.args)
        .collect();
    assert_eq!(pvesh, [["set", "/cluster/sdn"]]);
    // Two windows (firewall, HA), both committed by --yes; their timers stopped.
    let windows = lab.windows();
    assert_eq!(
        windows.iter().map(|w| w.area.as_str()).collect::<Vec<_>>(),
        ["firewall", "ha"]
    );
    for w in &windows {
        assert_eq!(w.state, State::Committed);
        assert_eq!(w.settled_by.as_deref(), Some("default"));
        let pid = lab.timer_pid(w);
        assert!(
            wait_pid_exit(pid, Duration::from_secs(10)),
            "the committed window's waiter {pid} did not end"
        );
        let dir = lab.window_dir(w);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    // After the deadlines passed, still the backup's files.
    assert_eq!(tree(&lab.etc_pve()), after_apply());
    assert_eq!(
        lab.windows()
            .iter()
            .filter(|w| w.state == State::Committed)
            .count(),
        2
    );
}

#[test]
fn sdn_is_written_but_not_applied_unless_asked() {
    let lab = Lab::new(true);
    let out = lab.restore("detached", &[]);
    common::assert_ok(&out);
    assert!(lab.fake.calls_of("pvesh").is_empty());
    let r = report(&out);
    let sdn = Lab::status_of(&r, "pve_sdn");
    assert!(
        sdn["detail"]
            .as_str()
            .unwrap()
            .contains("not applied: run `pvesh set /cluster/sdn`"),
        "{sdn:#}"
    );
}

#[test]
fn answer_rollback_puts_the_previous_files_back_and_reloads_the_firewall_again() {
    let lab = Lab::new(true);
    let out = lab.restore("systemd", &["--answer", "pve.commit=rollback"]);
    common::assert_ok(&out);
    let r = report(&out);
    let mut want = before();
    // SDN has no window: it stays applied.
    for (p, t) in BACKUP.iter().filter(|(p, _)| p.starts_with("sdn/")) {
        want.insert(p.to_string(), (t.to_string(), 0o640));
    }
    assert_eq!(tree(&lab.etc_pve()), want);
    for c in ["pve_firewall", "pve_ha"] {
        let o = Lab::status_of(&r, c);
        assert_eq!(o["status"], "skipped", "{o:#}");
        assert!(
            o["reason"].as_str().unwrap().contains("rolled back (flag)"),
            "{o:#}"
        );
    }
    // Once after writing, once after the rollback; the systemd timers stopped.
    assert_eq!(lab.firewall_reloads(), 2);
    for w in lab.windows() {
        assert_eq!(w.state, State::RolledBack);
        let Timer::Systemd { unit } = &w.timer else {
            panic!("{:?}", w.timer)
        };
        assert!(
            unit.starts_with(&format!("proxsave-{}-rollback-", w.area)),
            "{unit}"
        );
        assert!(
            lab.fake
                .calls_of("systemctl")
                .iter()
                .any(|c| c.starts_with(&["stop", &format!("{unit}.timer")])),
            "{:?}",
            lab.fake.call_lines()
        );
        let pid = lab.timer_pid(&w);
        assert!(wait_pid_exit(pid, Duration::from_secs(10)));
        let log = fs::read_to_string(lab.window_dir(&w).join("rollback.log")).unwrap();
        assert!(log.contains("rolled back"), "{log}");
    }
    assert_eq!(tree(&lab.etc_pve()), want, "a stopped timer fired anyway");
}

#[test]
fn not_mounted_is_skipped_with_the_reason_and_nothing_changes() {
    let lab = Lab::new(false);
    let out = lab.restore("detached", &[]);
    common::assert_ok(&out);
    let r = report(&out);
    for c in ["pve_firewall", "pve_ha", "pve_sdn"] {
        let o = Lab::status_of(&r, c);
        assert_eq!(o["status"], "skipped", "{o:#}");
        assert!(
            o["reason"]
                .as_str()
                .unwrap()
                .contains("is not a mount point"),
            "{o:#}"
        );
    }
    assert_eq!(tree(&lab.etc_pve()), before());
    assert!(lab.windows().is_empty());
    assert_eq!(lab.firewall_reloads(), 0);
}

#[test]
fn recovery_leaves_etc_pve_untouched() {
    let lab = Lab::with(true, true, &[]);
    let out = lab.restore(
        "detached",
        &[
            "--cluster-mode",
            "recovery",
            "--categories",
            "pve_cluster,pve_firewall,pve_ha,pve_sdn",
        ],
    );
    let text = format!("{}\n{}", common::stdout(&out), common::stderr(&out));
    assert_eq!(tree(&lab.etc_pve()), before(), "{text}");
    assert!(lab.windows().is_empty(), "{text}");
    assert_eq!(lab.firewall_reloads(), 0, "{text}");
    let r = report(&out);
    for c in ["pve_firewall", "pve_ha", "pve_sdn"] {
        let o = Lab::status_of(&r, c);
        assert_eq!(o["status"], "skipped", "{o:#}");
        assert!(o["reason"].as_str().unwrap().contains("RECOVERY"), "{o:#}");
    }
}

/// `(process group, session)` of a running process (`/proc/PID/stat` fields 5 and 6).
fn group_and_session(pid: u32) -> (i64, i64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state ppid pgrp session …
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// `kill -9` of proxsave inside the window: the timer still rolls back, on time.
fn killed_inside_the_window(timer: &str) {
    let lab = Lab::new(true);
    let mut cmd = lab.command(
        timer,
        &[
            "--yes",
            "--commit-window",
            "2",
            "--categories",
            "pve_firewall",
            "--answer",
            "pve.firewall.apply=yes",
        ],
    );
    // The second window checkpoint: after the files were written, before the question.
    let mut p = Paused::spawn(&mut cmd, "commit-window:2", lab.dir.path(), "killed");
    match p.wait_stopped() {
        Reached::Stopped => {}
        Reached::Ended(st) => panic!(
            "ended before the window ({st:?}):\n{}\n{}",
            p.stdout_text(),
            p.stderr_text()
        ),
    }
    // The new files are in place.
    let fw = tree(&lab.etc_pve().join("firewall"));
    assert_eq!(fw, expected(BACKUP, "firewall/"));
    // --rollback-status lists the pending window.
    let status = common::proxsave()
        .args(["restore", "--rollback-status", "--json", "--work-dir"])
        .arg(lab.work())
        .output()
        .unwrap();
    common::assert_ok(&status);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let pending = doc["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{doc:#}");
    assert_eq!(pending[0]["area"], "firewall");
    assert!(pending[0]["seconds_left"].as_u64().unwrap() <= 2);
    assert!(
        pending[0]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "/etc/pve/firewall/cluster.fw"),
        "{doc:#}"
    );
    let human = common::proxsave()
        .args(["restore", "--rollback-status", "--work-dir"])
        .arg(lab.work())
        .output()
        .unwrap();
    common::assert_ok(&human);
    assert!(
        common::stdout(&human).contains("(firewall): rolls back in"),
        "{}",
        common::stdout(&human)
    );

    // The timer is outside proxsave's session and process group.
    let w = lab.windows().remove(0);
    let (pgrp, sid) = group_and_session(lab.timer_pid(&w));
    let (our_pgrp, our_sid) = group_and_session(p.pid());
    assert_ne!(pgrp, our_pgrp, "the timer is in proxsave's process group");
    assert_ne!(sid, our_sid, "the timer is in proxsave's session");

    p.signal(rustix::process::Signal::KILL);
    p.resume();
    let st = p.finish();
    assert!(!st.success());
    let w = lab.windows().remove(0);
    assert_eq!(w.seconds, 2);
    let pid = lab.timer_pid(&w);
    assert!(
        wait_pid_exit(pid, Duration::from_secs(15)),
        "the rollback timer {pid} did not end"
    );
    let seen = now_ms();
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack, "{w:?}");
    assert_eq!(w.settled_by.as_deref(), Some("timer"));
    let settled = w.settled_unix_ms.unwrap();
    assert!(
        settled >= w.deadline_unix_ms,
        "rolled back {} ms before the deadline",
        w.deadline_unix_ms - settled
    );
    assert!(
        settled <= w.deadline_unix_ms + 2000 && seen <= w.deadline_unix_ms + 4000,
        "rolled back {} ms after the deadline (seen {} ms after)",
        settled - w.deadline_unix_ms,
        seen - w.deadline_unix_ms
    );
    // Exactly the previous firewall files; host.fw (created) removed; the rest untouched.
    assert_eq!(tree(&lab.etc_pve()), before());
    assert!(!lab.etc_pve().join("nodes/pve1/host.fw").exists());
    assert!(w.problems.is_empty(), "{:?}", w.problems);
    // Reloaded after writing and again after the rollback.
    assert_eq!(lab.firewall_reloads(), 2);
    let log = fs::read_to_string(lab.window_dir(&w).join("rollback.log")).unwrap();
    assert!(log.contains("rolling back (timer)"), "{log}");
    assert!(
        log.contains("ran systemctl try-restart pve-firewall"),
        "{log}"
    );
}

#[test]
fn kill_9_inside_the_window_rolls_back_on_time_with_a_detached_timer() {
    killed_inside_the_window("detached");
}

#[test]
fn kill_9_inside_the_window_rolls_back_on_time_with_a_systemd_timer() {
    killed_inside_the_window("systemd");
}

#[test]
fn no_answer_at_the_console_within_the_window_rolls_back() {
    use rexpect::session::{Options, spawn_with_options};
    let lab = Lab::new(true);
    let mut cmd = lab.command(
        "detached",
        &["--commit-window", "2", "--categories", "pve_firewall"],
    );
    cmd.env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty");
    p.exp_string("to proceed, or").unwrap();
    p.send_line("RESTORE").unwrap();
    p.exp_string("Apply the backup's firewall rules").unwrap();
    p.exp_string("[no]: ").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Type COMMIT within").unwrap();
    p.exp_string("(no answer within").unwrap();
    // Nothing typed: the countdown ends and the changes roll back (the console's countdown
    // and the timer end together: whichever takes the window's lock first rolls back).
    p.exp_regex("changes rolled back|timer already rolled the changes back")
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(tree(&lab.etc_pve()), before());
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack);
    assert!(
        matches!(w.settled_by.as_deref(), Some("countdown") | Some("timer")),
        "{:?}",
        w.settled_by
    );
}

#[test]
fn commit_typed_at_the_console_keeps_the_changes() {
    use rexpect::session::{Options, spawn_with_options};
    let lab = Lab::new(true);
    let mut cmd = lab.command(
        "detached",
        &["--commit-window", "30", "--categories", "pve_firewall"],
    );
    cmd.env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty");
    p.exp_string("to proceed, or").unwrap();
    p.send_line("RESTORE").unwrap();
    p.exp_string("[no]: ").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Type COMMIT within").unwrap();
    p.exp_string("[rollback]: ").unwrap();
    p.send_line("COMMIT").unwrap();
    p.exp_string("changes committed (console)").unwrap();
    p.exp_eof().unwrap();
    let fw = tree(&lab.etc_pve().join("firewall"));
    assert_eq!(fw, expected(BACKUP, "firewall/"));
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::Committed);
    assert!(wait_pid_exit(lab.timer_pid(&w), Duration::from_secs(10)));
    assert_eq!(lab.windows()[0].state, State::Committed);
}

#[test]
fn several_host_fw_nodes_are_asked_for_and_skip_is_the_default() {
    let other = "[OPTIONS]\nenable: 0\n";
    let lab = Lab::with(true, false, &[("nodes/pve-b/host.fw", other)]);
    let args = ["--categories", "pve_firewall"];
    // --yes: the default `skip` leaves this node's host.fw as it is (absent).
    let out = lab.restore("detached", &args);
    common::assert_ok(&out);
    let r = report(&out);
    let o = Lab::status_of(&r, "pve_firewall");
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("pve.host-fw.node = skip"),
        "{o:#}"
    );
    assert!(!lab.etc_pve().join("nodes/pve1/host.fw").exists());
    assert_eq!(
        tree(&lab.etc_pve().join("firewall")),
        expected(BACKUP, "firewall/")
    );
    // A node that is not in the backup: exit 2, nothing written.
    let lab = Lab::with(true, false, &[("nodes/pve-b/host.fw", other)]);
    let mut bad = args.to_vec();
    bad.extend(["--answer", "pve.host-fw.node=pve-c"]);
    let out = lab.restore("detached", &bad);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("pve.host-fw.node"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(tree(&lab.etc_pve()), before());
    // The chosen node's file becomes this node's.
    let mut pick = args.to_vec();
    pick.extend(["--answer", "pve.host-fw.node=pve-b"]);
    let out = lab.restore("detached", &pick);
    common::assert_ok(&out);
    assert_eq!(
        fs::read_to_string(lab.etc_pve().join("nodes/pve1/host.fw")).unwrap(),
        other
    );
}

#[test]
fn dry_run_lists_one_line_per_change_and_writes_nothing() {
    let lab = Lab::new(true);
    let out = lab
        .command(
            "detached",
            &["--dry-run", "--json", "--categories", "pve_firewall"],
        )
        .output()
        .unwrap();
    common::assert_ok(&out);
    let r = report(&out);
    let fw = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve_firewall")
        .unwrap_or_else(|| panic!("{r:#}"))
        .clone();
    let actions: Vec<&str> = fw["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for line in [
        "write /etc/pve/firewall/cluster.fw (changed, 640)",
        "write /etc/pve/firewall/100.fw (new, 640)",
        "write /etc/pve/nodes/pve1/host.fw (new, 640) from node pve-old of the backup",
        "remove /etc/pve/firewall/200.fw (not in the backup)",
        "under a COMMIT window of 180s: rolled back unless COMMIT is typed (pve.commit)",
    ] {
        assert!(actions.contains(&line), "{line:?} not in {actions:#?}");
    }
    let files: Vec<&str> = fw["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(files.contains(&"etc/pve/firewall/200.fw"), "{files:?}");
    // `diff` shows the planned file changes as unified diffs.
    let out = lab
        .fake
        .command(common::bin())
        .env("TZ", "UTC")
        .arg("diff")
        .arg("--backup")
        .arg(&lab.bundle)
        .arg("--root")
        .arg(&lab.root)
        .args(["--categories", "pve_firewall"])
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(
        text.contains("--- /etc/pve/firewall/cluster.fw (current)")
            && text.contains("+++ /etc/pve/firewall/cluster.fw (backup)")
            && text.contains("-enable: 0")
            && text.contains("+policy_in: DROP"),
        "{text}\n{}",
        common::stderr(&out)
    );
    assert!(
        text.contains("--- /etc/pve/firewall/200.fw (current)"),
        "{text}"
    );
    assert_eq!(tree(&lab.etc_pve()), before());
    assert!(lab.windows().is_empty());
    assert_eq!(lab.firewall_reloads(), 0);
}

#[test]
fn ctrl_c_at_the_commit_question_rolls_back_and_exits_130() {
    use rexpect::process::WaitStatus;
    use rexpect::session::{Options, spawn_with_options};
    let lab = Lab::new(true);
    let mut cmd = lab.command(
        "detached",
        &["--commit-window", "30", "--categories", "pve_firewall"],
    );
    cmd.env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty");
    p.exp_string("to proceed, or").unwrap();
    p.send_line("RESTORE").unwrap();
    p.exp_string("[no]: ").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("[rollback]: ").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("changes rolled back (interrupted)").unwrap();
    p.exp_eof().unwrap();
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 130),
        other => panic!("{other:?}"),
    }
    assert_eq!(tree(&lab.etc_pve()), before());
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack);
    assert_eq!(w.settled_by.as_deref(), Some("interrupted"));
    assert!(wait_pid_exit(lab.timer_pid(&w), Duration::from_secs(10)));
}
