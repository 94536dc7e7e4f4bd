//! The preflight with the REAL Debian ifupdown2 3.0.0 and ifupdown 0.8.41 (network.md §13,
//! scenarios 17–19), unpacked by the testkit and run inside `unshare -n -m` with a tmpfs
//! `/run`: a valid Proxmox bridge file passes; `bridge-ports none` passes with ifupdown2's
//! warning; a bad address, an option before any stanza and a slave in two masters fail with
//! the tool's line; ifupdown2's crashing `ifup -n` is "unusable", not a failure; a bridge port
//! this host lacks fails on the lint before any tool runs; no `ifup` and deferred host actions
//! are "not run". The host's interfaces are the same before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use proxsave_net::ifaces::{ConfigSet, Flavor, LintOptions, lint};
use proxsave_net::inventory::{Inventory, Nic};
use proxsave_net::preflight::{self, PreflightOutcome, Tool};
use proxsave_restore::host::{
    Clock, CommandOutput, CommandRunner, Host, HostActions, HostCommand, MountProbe,
};
use proxsave_testkit::ifupdown::{Package, install_ifup, require_ifupdown};

/// Runs programs from one folder only (a missing one is `NotFound`), recording each call.
struct DirRunner {
    dir: PathBuf,
    calls: Mutex<Vec<String>>,
}

impl CommandRunner for DirRunner {
    fn run(&self, cmd: &HostCommand, _c: &CancelToken) -> std::io::Result<CommandOutput> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("{} {}", cmd.program, cmd.args.join(" ")));
        let path = self.dir.join(&cmd.program);
        if !path.is_file() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let out = Command::new(path)
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: false,
        })
    }
}

struct NoClock;
impl Clock for NoClock {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        chrono::DateTime::default()
    }
    fn sleep(&self, _d: Duration) {}
}

struct NoMounts;
impl MountProbe for NoMounts {
    fn is_mount_point(&self, _p: &Path) -> bool {
        false
    }
}

struct Lab {
    dir: tempfile::TempDir,
    runner: Arc<DirRunner>,
    host: Host,
}

impl Lab {
    fn new(pkg: Option<(Package, &Path)>, actions: HostActions) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        if let Some((p, tree)) = pkg {
            install_ifup(&bin, p, tree);
        }
        let runner = Arc::new(DirRunner {
            dir: bin,
            calls: Mutex::default(),
        });
        let host = Host::new(
            dir.path().join("root"),
            actions,
            runner.clone(),
            Arc::new(NoClock),
            Arc::new(NoMounts),
        );
        Lab { dir, runner, host }
    }

    /// Writes `text` as the root's interfaces file and runs the preflight, the lint knowing
    /// this host has `nics`.
    fn check(&self, text: &str, nics: &[&str]) -> PreflightOutcome {
        let root = self.dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/network")).expect("mkdir");
        let file = root.join("etc/network/interfaces");
        std::fs::write(&file, text).expect("write");
        let set = ConfigSet::load(
            &root,
            Path::new("/etc/network/interfaces"),
            Flavor::Ifupdown2,
        )
        .expect("load");
        let current = Inventory {
            interfaces: Some(
                nics.iter()
                    .map(|n| Nic {
                        name: n.to_string(),
                        ..Nic::default()
                    })
                    .collect(),
            ),
            ..Inventory::default()
        };
        let findings = lint(&set, &LintOptions::with_inventory(&current));
        preflight::run(&self.host, &CancelToken::new(), &file, &findings)
    }

    fn calls(&self) -> Vec<String> {
        self.runner.calls.lock().expect("lock").clone()
    }
}

const PVE: &str = "\
auto lo
iface lo inet loopback

iface eno1 inet manual

auto vmbr0
iface vmbr0 inet static
\taddress 192.0.2.10/24
\tgateway 192.0.2.1
\tbridge-ports eno1
\tbridge-stp off
\tbridge-fd 0

iface eno1.20 inet manual
\tvlan-raw-device eno1
";

fn host_links() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-br", "link"])
            .output()
            .expect("ip -br link")
            .stdout,
    )
    .into_owned()
}

fn reasons(o: &PreflightOutcome) -> String {
    match o {
        PreflightOutcome::Failed { reasons, .. } => reasons.join("\n"),
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn ifupdown2_syntax_check_passes_warns_and_fails_with_the_line() {
    let Some(tree) = require_ifupdown(Package::Ifupdown2) else {
        return;
    };
    let links = host_links();
    let lab = Lab::new(Some((Package::Ifupdown2, &tree)), HostActions::Run);
    let file = lab.dir.path().join("root/etc/network/interfaces");
    let file = file.to_str().expect("utf-8");

    let ok = lab.check(PVE, &["lo", "eno1"]);
    assert_eq!(
        ok,
        PreflightOutcome::Passed {
            command: format!("ifup -a -s -i {file}"),
            warnings: vec![]
        }
    );
    assert_eq!(
        lab.calls(),
        vec![
            "ifup --version".to_string(),
            format!("ifup -a -s -i {file}")
        ]
    );

    // ifupdown2 3.0.0 exits 1 on `bridge-ports none`, with only a warning: a pass with it.
    let none = lab.check(
        "auto vmbr1\niface vmbr1 inet static\n\taddress 198.51.100.1/24\n\tbridge-ports none\n",
        &["lo"],
    );
    match &none {
        PreflightOutcome::Passed { warnings, .. } => assert!(
            warnings
                .iter()
                .any(|w| w.contains("bridge-ports: invalid value \"none\"")),
            "{warnings:?}"
        ),
        other => panic!("{other:?}"),
    }

    let bad_address = lab.check(
        &PVE.replace("192.0.2.10/24", "999.0.2.10/24"),
        &["lo", "eno1"],
    );
    assert!(
        reasons(&bad_address).contains("address: invalid value \"999.0.2.10/24\""),
        "{bad_address:?}"
    );

    let orphan = lab.check(
        "address 192.0.2.10/24\nauto eno1\niface eno1 inet manual\n",
        &["lo", "eno1"],
    );
    // The lint sees the option before any stanza first: no tool runs.
    assert!(
        matches!(&orphan, PreflightOutcome::Failed { command: None, reasons } if reasons[0].contains(":1:")),
        "{orphan:?}"
    );

    let two_masters = lab.check(
        "auto eno2\niface eno2 inet manual\n\nauto bond0\niface bond0 inet manual\n\tbond-slaves eno2\n\tbond-mode active-backup\n\nauto vmbr9\niface vmbr9 inet manual\n\tbridge-ports eno2\n",
        &["lo", "eno2"],
    );
    assert!(
        matches!(two_masters, PreflightOutcome::Failed { .. }),
        "{two_masters:?}"
    );

    assert_eq!(host_links(), links, "the host's interfaces changed");
}

#[test]
fn a_bridge_port_this_host_lacks_fails_before_any_tool_runs() {
    let lab = Lab::new(None, HostActions::Run);
    let o = lab.check(PVE, &["lo", "enp3s0"]);
    let text = reasons(&o);
    assert!(
        text.contains("/etc/network/interfaces:10:") && text.contains("eno1"),
        "{text}"
    );
    assert!(matches!(o, PreflightOutcome::Failed { command: None, .. }));
    assert!(!o.allows_live_apply(true));
    assert_eq!(lab.calls(), Vec::<String>::new());
}

#[test]
fn ifupdown2_dry_run_crash_on_bridges_is_unusable_not_a_failure() {
    let Some(tree) = require_ifupdown(Package::Ifupdown2) else {
        return;
    };
    let lab = Lab::new(Some((Package::Ifupdown2, &tree)), HostActions::Run);
    let dir = lab.dir.path().join("root/etc/network");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("interfaces"), PVE).expect("write");
    let file = dir.join("interfaces");
    let out = Command::new(lab.dir.path().join("bin/ifup"))
        .args(["-a", "-n", "-i"])
        .arg(&file)
        .output()
        .expect("ifup -n");
    let out = CommandOutput {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
        timed_out: false,
    };
    assert_eq!(
        out.code,
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = preflight::classify(Tool::Ifupdown2, "ifup -a -n -i F", &out);
    match &o {
        PreflightOutcome::Unusable { reason, .. } => {
            assert!(
                reason.contains("link_set_bridge_info_data_dry_run"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!o.allows_live_apply(false));
    // argparse's wording for an option it lacks.
    let unknown = Command::new(lab.dir.path().join("bin/ifup"))
        .args(["-a", "--no-such-option"])
        .output()
        .expect("ifup");
    let o = preflight::classify(
        Tool::Ifupdown2,
        "ifup -a --no-such-option",
        &CommandOutput {
            code: unknown.status.code(),
            stdout: unknown.stdout,
            stderr: unknown.stderr,
            timed_out: false,
        },
    );
    assert!(matches!(o, PreflightOutcome::Unusable { .. }), "{o:?}");
}

#[test]
fn classic_ifupdown_no_act_passes_and_names_what_is_missing() {
    let Some(tree) = require_ifupdown(Package::Ifupdown) else {
        return;
    };
    let lab = Lab::new(Some((Package::Ifupdown, &tree)), HostActions::Run);
    let file = lab.dir.path().join("root/etc/network/interfaces");
    let file = file.to_str().expect("utf-8").to_string();
    let ok = lab.check(PVE, &["lo", "eno1"]);
    assert_eq!(
        ok,
        PreflightOutcome::Passed {
            command: format!("ifup -a -n -i {file}"),
            warnings: vec![]
        }
    );
    // A static stanza without its address: only the tool knows.
    let missing = lab.check(
        "auto vmbr0\niface vmbr0 inet static\n\tgateway 192.0.2.1\n",
        &["lo"],
    );
    assert!(
        reasons(&missing).contains("missing required variable: address"),
        "{missing:?}"
    );
}

#[test]
fn no_ifup_and_deferred_actions_do_not_run_a_validator() {
    let lab = Lab::new(None, HostActions::Run);
    let o = lab.check(PVE, &["lo", "eno1"]);
    assert!(
        matches!(&o, PreflightOutcome::NotRun { reason } if reason.contains("install ifupdown2")),
        "{o:?}"
    );
    assert!(!o.allows_live_apply(false));
    assert!(o.allows_live_apply(true));

    let lab = Lab::new(None, HostActions::Defer);
    let o = lab.check(PVE, &["lo", "eno1"]);
    assert_eq!(
        o,
        PreflightOutcome::NotRun {
            reason: "host actions are deferred".into()
        }
    );
    assert_eq!(lab.calls(), Vec::<String>::new());
    let todo = lab.host.deferred();
    assert!(todo.iter().any(|t| t.contains("ifup -a -s -i")), "{todo:?}");
}
