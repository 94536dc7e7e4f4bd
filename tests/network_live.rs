//! The network restore applied live with the real Debian ifupdown2 (3.0.0), inside a
//! network namespace the test makes (`ip netns add`) and a private mount namespace per run
//! (`ip netns exec`, which also mounts the namespace's own sysfs): a veth pair whose first
//! end (`enp3s0`) has the MAC the backup's inventory gives `eno1`, presented to proxsave as a
//! PCI NIC in the root's fake `sys/class/net`. The root's `etc/network` is bind-mounted on
//! `/etc/network` in the mount namespace, so the real `ifreload -a` reads what proxsave wrote;
//! folders of the test on `/run` and `/var/tmp` (ifupdown2's state, kept from run to run),
//! overlays on `/usr/share` and `/etc` carry the unpacked package. Nothing of the host's network, `/etc` or `/usr` is touched.
//!
//! A SYSTEM BASE restore repairs `eno1`→`enp3s0` (`iface`, `auto`, `bridge-ports`, a VLAN),
//! the preflight (`ifup -a -s -i`) passes, `ifreload -a` brings `vmbr0` up with the backup's
//! address; `COMMIT` typed at the pseudo-terminal keeps it; no answer rolls the files and the
//! runtime back; `kill -9` of proxsave after the apply still rolls back on time (the detached
//! timer); `--yes` leaves the window open and `proxsave net commit --root R` ends it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proxsave_restore::commit::{self, State, WindowRecord};
use proxsave_testkit::fixture::{Compressor, HostTree};
use proxsave_testkit::hosts::{ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::ifupdown::{Package, require_ifupdown};
use proxsave_testkit::paused::{Paused, Reached};
use rexpect::session::{Options, PtySession, spawn_with_options};

const MAC: &str = "52:54:00:aa:00:01";

const BACKUP_INTERFACES: &str = "# network of the old machine\nauto lo\niface lo inet loopback\n\nauto eno1\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\niface eno1.100 inet manual\n";

const REPAIRED_INTERFACES: &str = "# network of the old machine\nauto lo\niface lo inet loopback\n\nauto enp3s0\niface enp3s0 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\tbridge-ports enp3s0\n\tbridge-stp off\n\tbridge-fd 0\n\niface enp3s0.100 inet manual\n";

const PREVIOUS_INTERFACES: &str = "auto lo\niface lo inet loopback\n\nauto enp3s0\niface enp3s0 inet static\n\taddress 198.51.100.5/24\n";

/// The mount-namespace part: `$1` the unpacked ifupdown2, `$2` the root, `$3` a scratch
/// folder, the rest the command (exec'd: the same pid as `ip netns exec`).
const SETUP: &str = r#"set -e
tree=$1; root=$2; scratch=$3; shift 3
# ifupdown2's state (/run/network, /var/tmp/network) outlives each run, as on a host.
state=$(dirname "$scratch")/state
mkdir -p "$state/run/network" "$state/var-tmp"
mount --bind "$state/run" /run
mount --bind "$state/var-tmp" /var/tmp
mkdir -p "$scratch/u" "$scratch/w"
mount -t overlay overlay -o "lowerdir=$tree/usr/share:/usr/share,upperdir=$scratch/u,workdir=$scratch/w" /usr/share
chmod 755 /usr/share/ifupdown2/__main__.py
mkdir -p "$scratch/eu" "$scratch/ew"
mount -t overlay overlay -o "lowerdir=$tree/etc:/etc,upperdir=$scratch/eu,workdir=$scratch/ew" /etc
mount --bind "$root/etc/network" /etc/network
mkdir -p "$scratch/bin"
for t in ifup ifdown ifquery ifreload; do ln -sf /usr/share/ifupdown2/__main__.py "$scratch/bin/$t"; done
# The test's own `ping` (found on its PATH), for the gateway check.
if [ -n "$PING" ]; then ln -sf "$PING" "$scratch/bin/ping"; fi
export PATH="$scratch/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if [ -n "$PREPARE" ]; then ifreload -a >/dev/null 2>&1; fi
exec "$@"
"#;

struct Lab {
    dir: tempfile::TempDir,
    tree: PathBuf,
    netns: String,
    bundle: PathBuf,
    root: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [self.netns.clone(), format!("{}-gw", self.netns)] {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn ip(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inventory() -> String {
    serde_json::json!({
        "generated_at": "2026-07-24T02:30:00Z",
        "hostname": "pve1",
        "interfaces": [
            {"name": "eno1", "mac": MAC, "permanent_mac": MAC, "driver": "e1000e",
             "pci_path": "/sys/devices/pci0000:00/0000:00:19.0", "ifindex": 2,
             "oper_state": "up", "is_virtual": false},
            {"name": "vmbr0", "mac": MAC, "is_virtual": true, "ifindex": 5}
        ]
    })
    .to_string()
}

impl Lab {
    fn new(name: &str) -> Option<Lab> {
        let tree = require_ifupdown(Package::Ifupdown2)?;
        let dir = tempfile::tempdir().unwrap();
        let mut source = HostTree::new(dir.path().join("source"));
        source
            .file(
                "var/lib/proxsave-info/backup_metadata.txt",
                b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE=standalone\n",
                0o640,
                ROOT,
            )
            .file("etc/network/interfaces", BACKUP_INTERFACES.as_bytes(), 0o644, ROOT)
            .file("etc/hosts", b"127.0.0.1 localhost\n192.0.2.10 pve1.example.lan pve1\n", 0o644, ROOT)
            .file("etc/hostname", b"pve1\n", 0o644, ROOT)
            .file(
                "var/lib/proxsave-info/commands/system/network_inventory.json",
                inventory().as_bytes(),
                0o640,
                ROOT,
            )
            .settle_dirs();
        let spec = proxsave_testkit::fixture::BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);

        // The target: its previous network files, ifupdown2's own config, a fake sysfs.
        let root = dir.path().join("root");
        let w = |rel: &str, text: &str| {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        w("etc/network/interfaces", PREVIOUS_INTERFACES);
        w(
            "etc/hosts",
            "127.0.0.1 localhost\n198.51.100.5 new.example.lan new\n",
        );
        w("etc/hostname", "new\n");
        w("etc/resolv.conf", "nameserver 198.51.100.53\n");
        // A PVE host (what the system-type check looks for).
        w("usr/sbin/qm", "#!/bin/sh\n");
        fs::create_dir_all(root.join("etc/pve")).unwrap();
        copy_dir(
            &tree.join("etc/network/ifupdown2"),
            &root.join("etc/network/ifupdown2"),
        );
        let pci = "sys/devices/pci0000:00/0000:00:03.0";
        w(&format!("{pci}/net/enp3s0/address"), &format!("{MAC}\n"));
        w(&format!("{pci}/net/enp3s0/ifindex"), "2\n");
        w(&format!("{pci}/net/enp3s0/operstate"), "up\n");
        std::os::unix::fs::symlink(
            "../../../0000:00:03.0",
            root.join(format!("{pci}/net/enp3s0/device")),
        )
        .unwrap();
        fs::create_dir_all(root.join("sys/class/net")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:03.0/net/enp3s0",
            root.join("sys/class/net/enp3s0"),
        )
        .unwrap();
        w("sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n");
        std::os::unix::fs::symlink(
            "../../devices/virtual/net/lo",
            root.join("sys/class/net/lo"),
        )
        .unwrap();

        let netns = format!("pxs-{}-{name}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add");
        ip(
            &netns,
            &[
                "link", "add", "enp3s0", "address", MAC, "type", "veth", "peer", "name", "peer0",
            ],
        );
        // The other end is the gateway, in a namespace of its own.
        let gw = format!("{netns}-gw");
        let st = Command::new("ip")
            .args(["netns", "add", &gw])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add");
        ip(&netns, &["link", "set", "peer0", "netns", &gw]);
        ip(&gw, &["link", "set", "peer0", "up"]);
        ip(&gw, &["addr", "add", "192.0.2.1/24", "dev", "peer0"]);
        fs::write(dir.path().join("setup.sh"), SETUP).unwrap();
        let lab = Lab {
            dir,
            tree,
            netns,
            bundle,
            root,
            runs: std::cell::Cell::new(0),
        };
        // The previous configuration is live.
        let out = lab.in_ns(&["true"]).env("PREPARE", "1").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(lab.addresses("enp3s0"), ["198.51.100.5/24"]);
        Some(lab)
    }

    /// `ip netns exec <ns> sh setup.sh … <cmd>`.
    fn in_ns(&self, cmd: &[&str]) -> Command {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let scratch = self.dir.path().join(format!("scratch{n}"));
        fs::create_dir_all(&scratch).unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, "sh"])
            .arg(self.dir.path().join("setup.sh"))
            .arg(&self.tree)
            .arg(&self.root)
            .arg(&scratch)
            .args(cmd)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("TERM", "dumb");
        if let Some(ping) = proxsave_testkit::which("ping") {
            c.env("PING", ping);
        }
        c
    }

    fn restore_args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            common::bin().into(),
            "restore".into(),
            "--backup".into(),
            self.bundle.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
            "--work-dir".into(),
            self.dir.path().join("work").display().to_string(),
            "--export-dir".into(),
            self.dir.path().join("export").display().to_string(),
            "--mode".into(),
            "base".into(),
            "--host-actions".into(),
            "run".into(),
            "--answer".into(),
            "network.apply-live=yes".into(),
            "--answer".into(),
            "network.nic-repair=safe".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn restore(&self, extra: &[&str]) -> Command {
        let args = self.restore_args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.in_ns(&refs);
        c.env("PROXSAVE_TEST_COMMIT_TIMER", "detached");
        c
    }

    fn addresses(&self, dev: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.netns, "-o", "-4", "addr", "show", "dev", dev])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.iter()
                    .position(|x| *x == "inet")
                    .map(|i| w[i + 1].to_string())
            })
            .collect()
    }

    fn link_up(&self, dev: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.netns, "-o", "link", "show", "dev", dev])
            .output()
            .unwrap();
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(",UP")
    }

    fn interfaces(&self) -> String {
        fs::read_to_string(self.root.join("etc/network/interfaces")).unwrap()
    }

    fn windows(&self) -> Vec<(PathBuf, WindowRecord)> {
        commit::windows(&commit::root_windows_dir(&self.root))
    }

    fn assert_new_state(&self, text: &str) {
        assert_eq!(self.interfaces(), REPAIRED_INTERFACES, "{text}");
        assert_eq!(self.addresses("vmbr0"), ["192.0.2.10/24"], "{text}");
        assert!(self.link_up("vmbr0"), "vmbr0 is not up\n{text}");
        let master = ip(&self.netns, &["-o", "link", "show", "dev", "enp3s0"]);
        assert!(master.contains("master vmbr0"), "{master}\n{text}");
    }

    fn assert_previous_state(&self, text: &str) {
        assert_eq!(self.interfaces(), PREVIOUS_INTERFACES, "{text}");
        assert_eq!(
            fs::read_to_string(self.root.join("etc/hostname")).unwrap(),
            "new\n",
            "{text}"
        );
        assert_eq!(self.addresses("enp3s0"), ["198.51.100.5/24"], "{text}");
        assert!(self.addresses("vmbr0").is_empty(), "{text}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn pty(cmd: Command) -> PtySession {
    spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(30_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits (bounded) for the window to be settled; returns its record. The timer is a detached
/// process whose pid the record holds: the wait is for that process to end (a pidfd becomes
/// readable when it exits), which it does once it rolled back, or once a commit stopped it.
fn settled(lab: &Lab, limit: Duration) -> WindowRecord {
    let w = lab.windows();
    let (dir, r) = w.last().cloned().expect("a window");
    if let commit::Timer::Detached { pid } = r.timer
        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
    {
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => {
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec::try_from(limit).expect("timeout");
                let n = rustix::event::poll(&mut fds, Some(&timeout)).expect("poll the timer");
                assert!(
                    n == 1,
                    "the timer (pid {pid:?}) did not end within {limit:?}: {w:?}"
                );
            }
            // Already gone (and reaped).
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => panic!("pidfd_open({pid:?}): {e}"),
        }
    }
    let w = lab.windows();
    let (_, r) = w
        .iter()
        .find(|(d, _)| *d == dir)
        .cloned()
        .expect("the window is still listed");
    assert_ne!(r.state, State::Pending, "{w:?}");
    // A rollback marks the record, then runs `ifreload -a`, then logs its end.
    if r.state != State::Committed {
        let log = fs::read_to_string(dir.join("rollback.log")).unwrap_or_default();
        assert!(
            log.lines()
                .last()
                .is_some_and(|l| l.ends_with(" rolled back")),
            "{log}"
        );
    }
    r
}

#[test]
fn commit_typed_at_the_console_keeps_the_repaired_bridge_live() {
    let Some(lab) = Lab::new("commit") else {
        return;
    };
    let mut p = pty(lab.restore(&["--commit-window", "60"]));
    let mut transcript = String::new();
    transcript.push_str(&p.exp_string("RESTORE").unwrap_or_else(|e| panic!("{e}")));
    p.send_line("RESTORE").unwrap();
    let before_question = p
        .exp_string("Type COMMIT")
        .unwrap_or_else(|e| panic!("{transcript}\n{e}"));
    transcript.push_str(&before_question);
    // The question shows the health checks.
    assert!(
        before_question.contains("[ok] link enp3s0"),
        "{before_question}"
    );
    assert!(
        before_question.contains("[ok] address vmbr0 192.0.2.10/24"),
        "{before_question}"
    );
    assert!(
        before_question.contains("[ok] default route"),
        "{before_question}"
    );
    // The gateway (the veth's other end, in its own namespace) answers `ping`; `.ci/run`
    // installs iputils-ping, so CI fails here without it.
    if proxsave_testkit::require_tool("ping").is_some() {
        assert!(
            before_question.contains("[ok] gateway 192.0.2.1: answers ping"),
            "{before_question}"
        );
    }
    lab.assert_new_state(&transcript);
    // The window is pending, its state under the root, private.
    let (dir, r) = lab.windows().pop().unwrap();
    assert_eq!((r.state, r.area.as_str()), (State::Pending, "network"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(dir.join("window.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    p.send_line("COMMIT").unwrap();
    let rest = p.exp_eof().unwrap();
    transcript.push_str(&rest);
    let r = settled(&lab, Duration::from_secs(5));
    assert_eq!(r.state, State::Committed, "{transcript}");
    assert_eq!(r.settled_by.as_deref(), Some("console"));
    lab.assert_new_state(&transcript);
}

#[test]
fn no_answer_at_the_console_rolls_back_files_and_runtime_within_the_window() {
    let Some(lab) = Lab::new("nocommit") else {
        return;
    };
    let mut p = pty(lab.restore(&["--commit-window", "4"]));
    let mut transcript = p.exp_string("RESTORE").unwrap_or_else(|e| panic!("{e}"));
    p.send_line("RESTORE").unwrap();
    transcript.push_str(
        &p.exp_string("Type COMMIT")
            .unwrap_or_else(|e| panic!("{transcript}\n{e}")),
    );
    lab.assert_new_state(&transcript);
    transcript.push_str(&p.exp_eof().unwrap());
    let r = settled(&lab, Duration::from_secs(15));
    assert_eq!(r.state, State::RolledBack, "{transcript}");
    assert!(
        r.settled_unix_ms.unwrap() <= r.deadline_unix_ms + 10_000,
        "rolled back too late: {r:?}"
    );
    assert!(r.problems.is_empty(), "{r:?}");
    lab.assert_previous_state(&transcript);
}

#[test]
fn kill_9_after_the_apply_still_rolls_back_on_time() {
    let Some(lab) = Lab::new("kill9") else { return };
    // Long enough for ifreload and the health checks before the question.
    let mut cmd = lab.restore(&["--yes", "--commit-window", "10"]);
    cmd.env(
        "PROXSAVE_TEST_CHECKPOINTS",
        lab.dir.path().join("checkpoints"),
    );
    // The second window checkpoint: applied live, about to ask network.commit.
    let mut p = Paused::spawn(&mut cmd, "commit-window:2", lab.dir.path(), "killed");
    match p.wait_stopped() {
        Reached::Stopped => {}
        Reached::Ended(st) => panic!(
            "ended before the window ({st:?}):\n{}\n{}",
            p.stdout_text(),
            p.stderr_text()
        ),
    }
    lab.assert_new_state(&format!(
        "{}\n{}\n{}",
        p.stdout_text(),
        p.stderr_text(),
        fs::read_to_string(lab.dir.path().join("checkpoints")).unwrap_or_default()
    ));
    // From another shell: the window is pending.
    let status = common::proxsave()
        .args(["net", "status", "--json", "--root"])
        .arg(&lab.root)
        .output()
        .unwrap();
    common::assert_ok(&status);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["windows"][0]["state"], "pending", "{doc:#}");
    // The restore's own listing shows it too (kept under the root, not in the work folder).
    let listed = common::proxsave()
        .args(["restore", "--rollback-status", "--json", "--root"])
        .arg(&lab.root)
        .arg("--work-dir")
        .arg(lab.dir.path().join("work"))
        .output()
        .unwrap();
    common::assert_ok(&listed);
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(doc["pending"][0]["area"], "network", "{doc:#}");
    assert!(
        doc["pending"][0]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "/etc/network/interfaces"),
        "{doc:#}"
    );
    p.signal(rustix::process::Signal::KILL);
    p.resume();
    assert!(!p.finish().success());
    let r = settled(&lab, Duration::from_secs(20));
    let seen = now_ms();
    assert_eq!(r.state, State::RolledBack);
    assert_eq!(r.settled_by.as_deref(), Some("timer"));
    let at = r.settled_unix_ms.unwrap();
    assert!(
        at >= r.deadline_unix_ms,
        "rolled back before the deadline: {r:?}"
    );
    assert!(
        at <= r.deadline_unix_ms + 2_000 && seen <= r.deadline_unix_ms + 10_000,
        "{r:?}"
    );
    // `ifreload -a` after the files: the previous runtime is back too.
    let (dir, _) = lab.windows().pop().unwrap();
    let log = fs::read_to_string(dir.join("rollback.log")).unwrap();
    assert!(log.contains("ran ifreload -a"), "{log}");
    lab.assert_previous_state(&log);
}

#[test]
fn yes_leaves_the_window_open_and_net_commit_ends_it_from_another_shell() {
    let Some(lab) = Lab::new("wait") else { return };
    let out = lab
        .restore(&["--yes", "--commit-window", "30"])
        .output()
        .unwrap();
    let text = format!("{}\n{}", common::stdout(&out), common::stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("proxsave net commit --root"), "{text}");
    // The summary prints the deferred category's to-do in full, with the deadline.
    let todo = text
        .lines()
        .find(|l| l.starts_with("TO DO (network, network): "))
        .unwrap_or_else(|| panic!("no network to-do line:\n{text}"));
    assert!(
        todo.contains("live inside a COMMIT window: run `proxsave net commit --root "),
        "{todo}"
    );
    let at = todo
        .split(" before ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .unwrap_or_else(|| panic!("{todo}"));
    assert!(
        at.len() == 8 && at.chars().filter(|c| *c == ':').count() == 2,
        "not HH:MM:SS: {todo}"
    );
    lab.assert_new_state(&text);
    let (_, r) = lab.windows().pop().unwrap();
    assert_eq!(r.state, State::Pending, "{text}");
    let human = common::proxsave()
        .args(["net", "status", "--root"])
        .arg(&lab.root)
        .output()
        .unwrap();
    assert!(
        common::stdout(&human).contains("PENDING, rolls back in"),
        "{human:?}"
    );
    let c = common::proxsave()
        .args(["net", "commit", "--root"])
        .arg(&lab.root)
        .output()
        .unwrap();
    common::assert_ok(&c);
    let (_, r) = lab.windows().pop().unwrap();
    assert_eq!(r.state, State::Committed);
    assert_eq!(r.settled_by.as_deref(), Some("net commit"));
    // A second commit: nothing pending, exit 1.
    let again = common::proxsave()
        .args(["net", "commit", "--root"])
        .arg(&lab.root)
        .output()
        .unwrap();
    assert_eq!(common::code(&again), 1);
    lab.assert_new_state(&text);
}

#[test]
fn net_rollback_now_from_another_shell_puts_back_files_and_runtime() {
    let Some(lab) = Lab::new("rbnow") else { return };
    let out = lab
        .restore(&["--yes", "--commit-window", "60"])
        .output()
        .unwrap();
    let text = format!("{}\n{}", common::stdout(&out), common::stderr(&out));
    assert!(out.status.success(), "{text}");
    lab.assert_new_state(&text);
    // Another shell in the same namespaces (its `ifreload -a` must reach this network).
    let root = lab.root.display().to_string();
    let out = lab
        .in_ns(&[common::bin(), "net", "rollback-now", "--root", &root])
        .output()
        .unwrap();
    let said = format!("{}\n{}", common::stdout(&out), common::stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("rolled back"), "{said}");
    let (_, r) = lab.windows().pop().unwrap();
    assert_eq!(r.state, State::RolledBack);
    assert_eq!(r.settled_by.as_deref(), Some("net rollback-now"));
    lab.assert_previous_state(&said);
    // Too late for a commit now.
    let late = common::proxsave()
        .args(["net", "commit", "--root", &root])
        .output()
        .unwrap();
    assert_eq!(common::code(&late), 1, "{late:?}");
}

#[test]
fn deferred_host_actions_apply_nothing_live_whatever_the_answer() {
    let Some(lab) = Lab::new("defer") else { return };
    let mut args = lab.restore_args(&["--yes"]);
    let i = args.iter().position(|a| a == "run").unwrap();
    args[i] = "defer".into();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.in_ns(&refs).output().unwrap();
    let text = format!("{}\n{}", common::stdout(&out), common::stderr(&out));
    assert!(out.status.success(), "{text}");
    // Installed (repaired) on disk, nothing live, no window.
    assert_eq!(lab.interfaces(), REPAIRED_INTERFACES, "{text}");
    assert!(text.contains("network (network): deferred"), "{text}");
    assert!(lab.windows().is_empty(), "{text}");
    assert_eq!(lab.addresses("enp3s0"), ["198.51.100.5/24"], "{text}");
    assert!(lab.addresses("vmbr0").is_empty(), "{text}");
}
