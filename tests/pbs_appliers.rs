//! The PBS object appliers end to end (`pbs_remotes`, `pbs_jobs`, `pbs_host`, `pbs_tape`,
//! `pbs_notifications`): the real binary restores a PBS backup onto a PBS root whose
//! `proxmox-backup-manager` is the stateful double (`proxsave_testkit::pbs::PbsDouble`: it
//! keeps the files under the root's `etc/proxmox-backup` as PBS writes them and refuses what
//! PBS refuses), in merge and in clean mode, with the API and without it.
//!
//! The backup: two remotes with base64 passwords, two sync jobs, a verify and a prune job,
//! `node.cfg` with an ACME account and domain, a traffic-control rule, an ACME account file
//! and a DNS plugin, a metric server, a tape drive, a media pool and an encryption key, a
//! gotify endpoint with its token and a matcher. No secret is ever shown (stdout, stderr, the
//! run's log and report files).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use proxsave_testkit::fakes::{DEFAULT_COMMANDS, FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::pbs::{PbsDouble, ids, props};
use proxsave_testkit::require_tools;

const PW_B: &str = "Remote-B-S3cret";
const PW_B64: &str = "UmVtb3RlLUItUzNjcmV0";
const PW_C: &str = "Remote-C-S3cret";
const PW_C64: &str = "UmVtb3RlLUMtUzNjcmV0";
const GOTIFY_TOKEN: &str = "Gotify-T0ken-xyz";
const ACME_DATA: &str = "Q0ZfVG9rZW49Q2YtUzNjcmV0LWRucw==";
const ACME_KEY: &str = "AcmeAccountKeyS3cret";
const TAPE_KEY: &str = "TapeKeyS3cret0123456789";
const OLD_PW64: &str = "T2xkLVJlbW90ZS1wdw==";
const SECRETS: &[&str] = &[
    PW_B,
    PW_B64,
    PW_C,
    PW_C64,
    GOTIFY_TOKEN,
    ACME_DATA,
    "Cf-S3cret-dns",
    ACME_KEY,
    TAPE_KEY,
    OLD_PW64,
    "Old-Remote-pw",
];

fn remote_cfg() -> String {
    format!(
        "remote: pbs-b\n\tauth-id sync@pbs\n\tfingerprint aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\n\thost 10.0.0.20\n\tpassword {PW_B64}\n\n\
         remote: pbs-c\n\tauth-id sync@pbs\n\tcomment Off-site\n\thost pbs-c.example.lan\n\tpassword {PW_C64}\n\tport 8007\n"
    )
}

const SYNC_CFG: &str = "sync: pull-b\n\tgroup-filter type:vm\n\tgroup-filter group:vm/100\n\tremote pbs-b\n\tremote-store store1\n\tschedule hourly\n\tstore store1\n\n\
sync: pull-c\n\tremote pbs-c\n\tremote-store archive\n\tremove-vanished true\n\tschedule daily\n\tstore store1\n";
const VERIFY_CFG: &str = "verification: v-store1\n\tignore-verified true\n\toutdated-after 30\n\tschedule daily\n\tstore store1\n";
const PRUNE_CFG: &str = "prune: p-store1\n\tkeep-daily 7\n\tkeep-monthly 6\n\tkeep-weekly 4\n\tschedule daily\n\tstore store1\n";
const NODE_CFG: &str = "#Backup server\nacme: account=default\nacmedomain0: pbs1.example.com,plugin=cf\nemail-from: pbs1@example.lan\ntask-log-max-days: 30\n";
const TRAFFIC_CFG: &str =
    "rule: lan\n\tnetwork 10.0.0.0/8\n\tnetwork 192.168.0.0/16\n\trate-in 100MB\n";
const METRIC_CFG: &str = "influxdb-udp: influx\n\thost 10.0.0.5\n\tport 8089\n";
const TAPE_CFG: &str = "lto: drive0\n\tpath /dev/tape/by-id/scsi-35000e11167c4b0d1-sg\n";
const POOL_CFG: &str = "pool: weekly\n\tallocation weekly\n\tretention 4 weeks\n";
const NOTIFY_CFG: &str = "gotify: gw\n\tcomment Phone\n\tserver https://gotify.example.lan\n\n\
matcher: errors\n\tmatch-severity error\n\tmode all\n\ttarget gw\n";

fn acme_plugins() -> String {
    format!("dns: cf\n\tapi cf\n\tdata {ACME_DATA}\n")
}
fn acme_account() -> String {
    format!(
        r#"{{"location":"https://acme-v02.api.letsencrypt.org/acme/acct/1","account":{{"status":"valid"}},"tos":"https://letsencrypt.org/tos","key":"{ACME_KEY}"}}"#
    )
}
fn tape_keys() -> String {
    format!(
        r#"[{{"fingerprint":"aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99","key":"{TAPE_KEY}"}}]"#
    )
}
fn notify_priv() -> String {
    format!("gotify: gw\n\ttoken {GOTIFY_TOKEN}\n")
}

const CATEGORIES: &str = "pbs_remotes,pbs_jobs,pbs_host,pbs_tape,pbs_notifications";

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    pbs: Option<PbsDouble>,
}

impl Lab {
    fn new(with_api: bool) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let cmds: Vec<&str> = DEFAULT_COMMANDS
            .iter()
            .copied()
            .filter(|c| *c != "proxmox-backup-manager")
            .collect();
        let fake = FakeBin::with_commands(dir.path().join("fake"), &cmds);
        let mut source = HostTree::pbs_node(dir.path().join("source"));
        let files: Vec<(&str, String, u32, (u32, u32))> = vec![
            ("remote.cfg", remote_cfg(), 0o640, (0, 34)),
            ("sync.cfg", SYNC_CFG.into(), 0o640, (0, 34)),
            ("verification.cfg", VERIFY_CFG.into(), 0o640, (0, 34)),
            ("prune.cfg", PRUNE_CFG.into(), 0o640, (0, 34)),
            ("node.cfg", NODE_CFG.into(), 0o640, (0, 34)),
            ("traffic-control.cfg", TRAFFIC_CFG.into(), 0o640, (0, 34)),
            ("metricserver.cfg", METRIC_CFG.into(), 0o640, (0, 34)),
            ("acme/plugins.cfg", acme_plugins(), 0o640, (0, 34)),
            ("acme/accounts/default", acme_account(), 0o600, (0, 0)),
            ("tape.cfg", TAPE_CFG.into(), 0o640, (0, 34)),
            ("media-pool.cfg", POOL_CFG.into(), 0o640, (0, 34)),
            ("tape-encryption-keys.json", tape_keys(), 0o600, (0, 0)),
            ("notifications.cfg", NOTIFY_CFG.into(), 0o640, (0, 34)),
            ("notifications-priv.cfg", notify_priv(), 0o600, (0, 0)),
        ];
        source.dir("etc/proxmox-backup/acme", 0o700, (0, 0));
        source.dir("etc/proxmox-backup/acme/accounts", 0o700, (0, 0));
        for (name, text, mode, owner) in &files {
            source.file(
                &format!("etc/proxmox-backup/{name}"),
                text.as_bytes(),
                *mode,
                *owner,
            );
        }
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pbs(dir.path().join("root"));
        let pbs =
            with_api.then(|| PbsDouble::install(&fake, &target.root().join("etc/proxmox-backup")));
        Lab {
            dir,
            fake,
            target,
            bundle,
            pbs,
        }
    }

    fn pbs(&self) -> &PbsDouble {
        self.pbs.as_ref().expect("the PBS double")
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn etc(&self, rel: &str) -> PathBuf {
        self.root().join("etc/proxmox-backup").join(rel)
    }

    /// `restore --yes --json --host-actions run` of the PBS object categories; secrets never
    /// shown (stdout, stderr, the run's log and report files).
    fn restore(&self, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args([
                "--yes",
                "--json",
                "--host-actions",
                "run",
                "--mode",
                "custom",
                "--categories",
                CATEGORIES,
            ])
            .args(extra);
        let out = cmd.output().unwrap();
        let mut texts = vec![common::stdout(&out), common::stderr(&out)];
        let mut stack = vec![self.dir.path().join("work")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir()
                    && !p.ends_with("stage")
                    && !p.to_string_lossy().contains("restore-stage")
                {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "log" || x == "json") {
                    texts.push(fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        for text in &texts {
            for s in SECRETS {
                assert!(!text.contains(s), "a secret ({s}) is shown:\n{text}");
            }
        }
        out
    }

    fn calls(&self) -> Vec<String> {
        self.pbs()
            .calls()
            .iter()
            .map(|c| c.args.join(" "))
            .collect()
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

fn outcome<'a>(r: &'a serde_json::Value, category: &str) -> &'a serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == category)
        .unwrap_or_else(|| panic!("no {category} outcome in {:#}", r["applied"]))
}

/// A PBS section-config text as `type: id` → properties (the double's reader).
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let cfg =
        proxsave_testkit::pbs::model::parse_pbs(text).unwrap_or_else(|e| panic!("{e:?}: {text}"));
    cfg.sections
        .iter()
        .map(|s| (format!("{}: {}", s.ty, s.id), props(s)))
        .collect()
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The files every mode writes the same way (no API for them).
fn assert_file_objects(lab: &Lab) {
    let acct = lab.etc("acme/accounts/default");
    assert_eq!(read(&acct), acme_account());
    assert_eq!(mode_owner(&acct), (0o600, 0, 0));
    assert_eq!(read(&lab.etc("acme/plugins.cfg")), acme_plugins());
    assert_eq!(mode_owner(&lab.etc("acme/plugins.cfg")), (0o640, 0, 34));
    assert_eq!(read(&lab.etc("metricserver.cfg")), METRIC_CFG);
    assert_eq!(read(&lab.etc("tape.cfg")), TAPE_CFG);
    assert_eq!(mode_owner(&lab.etc("tape.cfg")), (0o640, 0, 34));
    assert_eq!(read(&lab.etc("media-pool.cfg")), POOL_CFG);
    let keys: serde_json::Value =
        serde_json::from_str(&read(&lab.etc("tape-encryption-keys.json"))).unwrap();
    assert_eq!(
        keys,
        serde_json::from_str::<serde_json::Value>(&tape_keys()).unwrap()
    );
    assert_eq!(
        mode_owner(&lab.etc("tape-encryption-keys.json")),
        (0o600, 0, 0)
    );
}

#[test]
fn merge_mode_creates_and_updates_through_the_api_and_keeps_the_rest() {
    require_tools!("tar");
    let lab = Lab::new(true);
    // The host: pbs-b with another host, an extra remote and its job, another gotify.
    let pbs = lab.pbs();
    pbs.write_file(
        "remote.cfg",
        &format!("remote: pbs-b\n\tauth-id sync@pbs\n\thost 10.9.9.9\n\tpassword {OLD_PW64}\n\nremote: old\n\tauth-id a@pbs\n\thost old.example.lan\n\tpassword {OLD_PW64}\n"),
    )
    .write_file("sync.cfg", "sync: pull-old\n\tremote old\n\tremote-store s\n\tstore store1\n")
    .write_file("notifications.cfg", "gotify: phone2\n\tserver https://other.example.lan\n")
    .write_file("notifications-priv.cfg", "gotify: phone2\n\ttoken other\n");

    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.notifications.apply=yes",
    ]);
    common::assert_ok(&out);
    let r = report(&out);
    for c in [
        "pbs_remotes",
        "pbs_jobs",
        "pbs_host",
        "pbs_tape",
        "pbs_notifications",
    ] {
        assert_eq!(
            outcome(&r, c)["status"],
            "applied",
            "{c}: {:#}",
            outcome(&r, c)
        );
    }
    let st = pbs.state();
    // Remotes: the password the CLI got is the plain one, stored base64 once.
    assert_eq!(ids(&st.remote), ["old", "pbs-b", "pbs-c"]);
    let b = props(st.remote.find("remote", "pbs-b").unwrap());
    assert_eq!(b["password"], PW_B64, "not double-encoded");
    assert_eq!(b["host"], "10.0.0.20");
    let c = props(st.remote.find("remote", "pbs-c").unwrap());
    assert_eq!(
        (c["password"].as_str(), c["port"].as_str()),
        (PW_C64, "8007")
    );
    // Jobs.
    assert_eq!(ids(&st.sync), ["pull-b", "pull-c", "pull-old"]);
    assert_eq!(
        st.sync
            .find("sync", "pull-b")
            .unwrap()
            .get_all("group-filter"),
        ["type:vm", "group:vm/100"]
    );
    assert_eq!(ids(&st.verification), ["v-store1"]);
    assert_eq!(ids(&st.prune), ["p-store1"]);
    // node.cfg in its flat grammar, through `node update`.
    assert_eq!(st.node["acme"], "account=default");
    assert_eq!(st.node["acmedomain0"], "pbs1.example.com,plugin=cf");
    assert_eq!(st.node["description"], "Backup server\n");
    assert_eq!(read(&lab.etc("node.cfg")), NODE_CFG);
    assert_eq!(read(&lab.etc("traffic-control.cfg")), TRAFFIC_CFG);
    // Notifications: the token in the priv file only; the host's other endpoint kept.
    assert_eq!(ids(&st.notifications), ["errors", "gw", "phone2"]);
    assert_eq!(
        props(st.notifications_priv.find("gotify", "gw").unwrap())["token"],
        GOTIFY_TOKEN
    );
    assert_eq!(
        mode_owner(&lab.etc("notifications-priv.cfg")),
        (0o600, 0, 0)
    );
    assert_file_objects(&lab);
    // Merge removes nothing.
    assert!(
        !lab.calls()
            .iter()
            .any(|c| c.contains(" remove ") || c.contains(" delete "))
    );
}

#[test]
fn clean_mode_leaves_exactly_the_backup_removing_jobs_before_their_remotes() {
    require_tools!("tar");
    let lab = Lab::new(true);
    let pbs = lab.pbs();
    pbs.write_file(
        "remote.cfg",
        &format!("remote: old\n\tauth-id a@pbs\n\thost old.example.lan\n\tpassword {OLD_PW64}\n\nremote: pbs-c\n\tauth-id sync@pbs\n\tcomment stale\n\tfingerprint 11:22\n\thost pbs-c.example.lan\n\tpassword {OLD_PW64}\n"),
    )
    .write_file("sync.cfg", "sync: pull-old\n\tremote old\n\tremote-store s\n\tstore store1\n")
    .write_file("node.cfg", "http-proxy: http://proxy:3128\nemail-from: old@example.lan\n")
    .write_file("notifications.cfg", "gotify: phone2\n\tserver https://other.example.lan\n\nmatcher: m-old\n\ttarget phone2\n")
    .write_file("notifications-priv.cfg", "gotify: phone2\n\ttoken other\n")
    .write_file("acme/accounts/stale", "{\"key\":\"x\"}")
    .write_file("media-pool.cfg", "pool: daily\n\tallocation daily\n");

    // The plan names every call (secrets redacted) and changes nothing.
    let dry = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.notifications.apply=yes",
        "--dry-run",
    ]);
    common::assert_ok(&dry);
    let plan = common::stdout(&dry);
    for want in [
        "proxmox-backup-manager sync-job remove pull-old",
        "proxmox-backup-manager remote remove old",
        "proxmox-backup-manager remote create pbs-b --auth-id=sync@pbs",
        "--password=<redacted>",
        "proxmox-backup-manager notification endpoint gotify create gw --comment=Phone --server=https://gotify.example.lan --token=<redacted>",
        "data <redacted>",
        "pbs.notifications.apply",
    ] {
        assert!(plan.contains(want), "{want} not in {plan}");
    }
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert!(!lab.etc("tape.cfg").exists());

    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.notifications.apply=yes",
    ]);
    common::assert_ok(&out);
    let r = report(&out);
    for c in [
        "pbs_remotes",
        "pbs_jobs",
        "pbs_host",
        "pbs_tape",
        "pbs_notifications",
    ] {
        assert_eq!(
            outcome(&r, c)["status"],
            "applied",
            "{c}: {:#}",
            outcome(&r, c)
        );
    }
    let calls = lab.calls();
    let job_gone = calls
        .iter()
        .position(|c| c == "sync-job remove pull-old")
        .expect("job removed");
    let remote_gone = calls
        .iter()
        .position(|c| c == "remote remove old")
        .expect("remote removed");
    assert!(job_gone < remote_gone, "{calls:#?}");
    assert!(calls.iter().any(|c| c == "remote update pbs-c --auth-id=sync@pbs --comment=Off-site --host=pbs-c.example.lan --password=Remote-C-S3cret --port=8007 --delete=fingerprint"), "{calls:#?}");

    // The state is exactly the backup's (the double writes the files as PBS does; sections
    // it created come after those it updated, as in PBS).
    for (f, want) in [
        ("remote.cfg", remote_cfg()),
        ("sync.cfg", SYNC_CFG.to_string()),
        ("verification.cfg", VERIFY_CFG.to_string()),
        ("prune.cfg", PRUNE_CFG.to_string()),
        ("traffic-control.cfg", TRAFFIC_CFG.to_string()),
        ("notifications.cfg", NOTIFY_CFG.to_string()),
        ("notifications-priv.cfg", notify_priv()),
    ] {
        assert_eq!(sections(&read(&lab.etc(f))), sections(&want), "{f}");
    }
    assert_eq!(read(&lab.etc("node.cfg")), NODE_CFG);
    assert!(!lab.etc("acme/accounts/stale").exists());
    assert_file_objects(&lab);
    for f in ["remote.cfg", "sync.cfg", "node.cfg", "notifications.cfg"] {
        assert_eq!(mode_owner(&lab.etc(f)), (0o640, 0, 34), "{f}");
    }
}

#[test]
fn without_the_api_clean_writes_the_files_and_merge_writes_none() {
    require_tools!("tar");
    let lab = Lab::new(false);
    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.notifications.apply=yes",
    ]);
    common::assert_ok(&out);
    let r = report(&out);
    for c in ["pbs_remotes", "pbs_jobs", "pbs_notifications"] {
        let o = outcome(&r, c);
        assert_eq!(o["status"], "skipped", "{c}: {o:#}");
        assert!(
            o["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("not available")
                || o["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not available"),
            "{o:#}"
        );
    }
    for f in [
        "remote.cfg",
        "sync.cfg",
        "node.cfg",
        "notifications-priv.cfg",
        "traffic-control.cfg",
    ] {
        assert!(
            !lab.etc(f).exists(),
            "{f} written in merge mode without the API"
        );
    }
    // The file-only objects are merged in.
    assert_file_objects(&lab);

    let lab = Lab::new(false);
    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.notifications.apply=yes",
    ]);
    common::assert_ok(&out);
    assert_eq!(
        read(&lab.etc("remote.cfg")),
        remote_cfg(),
        "passwords stay base64 as stored"
    );
    assert_eq!(read(&lab.etc("sync.cfg")), SYNC_CFG);
    assert_eq!(read(&lab.etc("node.cfg")), NODE_CFG);
    assert_eq!(read(&lab.etc("notifications.cfg")), NOTIFY_CFG);
    assert_eq!(read(&lab.etc("notifications-priv.cfg")), notify_priv());
    assert_eq!(mode_owner(&lab.etc("remote.cfg")), (0o640, 0, 34));
    assert_eq!(mode_owner(&lab.etc("notifications.cfg")), (0o640, 0, 34));
    assert_eq!(
        mode_owner(&lab.etc("notifications-priv.cfg")),
        (0o600, 0, 0)
    );
    assert_file_objects(&lab);
}

#[test]
fn clean_mode_reports_a_failed_removal_and_does_not_overwrite_the_file_after_it() {
    require_tools!("tar");
    let lab = Lab::new(true);
    let pbs = lab.pbs();
    pbs.write_file(
        "remote.cfg",
        &format!("remote: old\n\tauth-id a@pbs\n\thost old.example.lan\n\tpassword {OLD_PW64}\n"),
    );
    lab.fake.respond(
        "proxmox-backup-manager",
        &["remote", "remove", "old"],
        Response::fail(
            255,
            "Error: unable to acquire lock \"/etc/proxmox-backup/.remote.lck\" - got timeout\n",
        ),
    );
    // pbs-c's create fails too: without the failed removal this would write the file.
    lab.fake.respond(
        "proxmox-backup-manager",
        &["remote", "create", "pbs-c"],
        Response::fail(
            255,
            format!("Error: connection refused (password {PW_C})\n"),
        ),
    );
    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.notifications.apply=no",
    ]);
    let r = report(&out);
    assert_eq!(r["outcome"], "completed_with_errors", "{r:#}");
    assert_eq!(common::code(&out), 1);
    let o = outcome(&r, "pbs_remotes");
    assert_eq!(o["status"], "partly_applied", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    assert!(detail.contains("remote old: removal failed"), "{detail}");
    assert!(
        detail.contains("proxmox-backup-manager remote remove old"),
        "{detail}"
    );
    assert!(detail.contains("unable to acquire lock"), "{detail}");
    assert!(
        detail.contains("clean 1:1 incomplete: a remote could not be removed, so /etc/proxmox-backup/remote.cfg is not rewritten"),
        "{detail}"
    );
    assert!(detail.contains("--password=<redacted>"), "{detail}");
    // The file holds what the API did (old kept, pbs-b created), not the backup's file.
    let st = pbs.state();
    assert_eq!(ids(&st.remote), ["old", "pbs-b"]);
    // Notifications were declined: untouched.
    assert_eq!(outcome(&r, "pbs_notifications")["status"], "skipped");
    assert!(!lab.etc("notifications-priv.cfg").exists());
}

#[test]
fn notifications_are_applied_only_when_the_question_says_yes() {
    require_tools!("tar");
    let lab = Lab::new(true);
    // `--yes` takes the default: `no`.
    let out = lab.restore(&["--pbs-behavior", "clean"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "pbs_notifications");
    assert_eq!(o["status"], "skipped", "{o:#}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .starts_with("pbs.notifications.apply = no"),
        "{o:#}"
    );
    assert!(!lab.etc("notifications.cfg").exists());
    assert!(!lab.calls().iter().any(|c| c.starts_with("notification")));
    // The other objects were applied.
    assert_eq!(ids(&lab.pbs().state().remote), ["pbs-b", "pbs-c"]);
}
