//! The PVE API appliers end to end: the real binary restores a PVE backup (`--mode storage`,
//! SAFE) onto a fresh node whose `pvesh` is the stateful PVE API double
//! (`proxsave_testkit::pve::PveDouble`: it keeps `storage.cfg`, `priv/storage/*`,
//! `datacenter.cfg`, `jobs.cfg`, `replication.cfg` and `notifications.cfg` under the root's
//! `etc/pve` as PVE writes them, and refuses what PVE refuses).
//!
//! The backup: storages `dir` (`local`, with more content than a fresh node), `lvmthin`
//! (`local-lvm`, as on the node), `zfspool`, `nfs`, `cifs` with a password, `pbs` with a
//! fingerprint and an encryption key, a disabled `dir`, a comment inside a section; `jobs.cfg`
//! with two backup jobs and a realm-sync job; `replication.cfg` with one job;
//! `datacenter.cfg` with keyboard, migration, tag-style and a description.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{DEFAULT_COMMANDS, FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::pve::{PveDouble, normalized};
use proxsave_testkit::require_tools;

const CIFS_PASSWORD: &str = "Sm8-S3cret!pw";
const PBS_PASSWORD: &str = "Pbs-S3cret-pw";
const KEY_DATA: &str = "Zm9vYmFyYmF6cXV4S2V5RGF0YVRoYXRJc1NlY3JldA==";
const KEY_FP: &str = "a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:01:12:23:34:45:56:67:78:89:9a:ab:bc:cd:de:ef:f0";
const SMTP_PASSWORD: &str = "Smtp-S3cret-relay";
const SECRETS: &[&str] = &[CIFS_PASSWORD, PBS_PASSWORD, KEY_DATA, SMTP_PASSWORD];

fn key_json() -> String {
    format!(
        r#"{{"kdf":null,"created":"2024-05-01T10:00:00+00:00","modified":"2024-05-01T10:00:00+00:00","data":"{KEY_DATA}","fingerprint":"{KEY_FP}"}}"#
    )
}

fn storage_cfg() -> String {
    format!(
        "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup,snippets\n\tprune-backups keep-all=1\n\n\
         lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n\
         zfspool: tank-vm\n\tpool tank/vm\n\tcontent images,rootdir\n\tsparse 1\n\n\
         nfs: nas-backup\n\texport /volume1/pve\n\tpath /mnt/pve/nas-backup\n\tserver 192.168.1.10\n\tcontent backup\n\toptions vers=4.2\n\tprune-backups keep-daily=7,keep-weekly=4\n\n\
         cifs: smb-iso\n\tpath /mnt/pve/smb-iso\n\tserver files.example.lan\n\tshare iso\n\tcontent iso,vztmpl\n\t# the password lives in priv/storage/smb-iso.pw\n\tsmbversion 3.0\n\tusername pveuser\n\n\
         pbs: pbs01\n\tdatastore store1\n\tserver 192.168.1.30\n\tcontent backup\n\tencryption-key {KEY_FP}\n\tfingerprint 3a:7c:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:e1\n\tprune-backups keep-last=3\n\tusername backup@pbs\n\n\
         dir: usb-backup\n\tdisable\n\tpath /mnt/usb-backup\n\tcontent backup\n\tis_mountpoint 1\n\n"
    )
}

const DATACENTER_CFG: &str = "#Production%20datacenter\n#racks A and B\n\nkeyboard: de\nmigration: network=10.10.10.0/24,type=secure\ntag-style: shape=circle\n";

const JOBS_CFG: &str = "vzdump: backup-1a2b3c4d-5e6f\n\tschedule sun 01:00\n\tall 1\n\tenabled 1\n\tmode snapshot\n\tnotes-template {{guestname}}\n\tstorage pbs01\n\n\
vzdump: backup-nightly\n\tschedule 21:00\n\tcompress zstd\n\tenabled 1\n\tmode snapshot\n\tstorage nas-backup\n\tvmid 100,101\n\n\
realm-sync: sync-corp\n\tschedule daily\n\trealm corp\n\tremove-vanished acl;entry;properties\n\n";

const REPLICATION_CFG: &str = "local: 100-0\n\ttarget pve2\n\tschedule */15\n\tsource pve1\n\n";

const VZDUMP_CONF: &str =
    "# vzdump default settings\ntmpdir: /var/tmp\nbwlimit: 51200\nionice: 7\n";

/// The backup's files under `etc/pve` (and `etc/vzdump.conf`).
fn pve_files(storage: &str) -> Vec<(String, String, u32)> {
    vec![
        ("etc/pve/storage.cfg".into(), storage.to_string(), 0o640),
        (
            "etc/pve/datacenter.cfg".into(),
            DATACENTER_CFG.into(),
            0o640,
        ),
        ("etc/pve/jobs.cfg".into(), JOBS_CFG.into(), 0o640),
        (
            "etc/pve/replication.cfg".into(),
            REPLICATION_CFG.into(),
            0o640,
        ),
        (
            "etc/pve/priv/storage/smb-iso.pw".into(),
            format!("password={CIFS_PASSWORD}\n"),
            0o600,
        ),
        (
            "etc/pve/priv/storage/pbs01.pw".into(),
            format!("{PBS_PASSWORD}\n"),
            0o600,
        ),
        (
            "etc/pve/priv/storage/pbs01.enc".into(),
            format!("{}\n", key_json()),
            0o600,
        ),
        ("etc/vzdump.conf".into(), VZDUMP_CONF.into(), 0o644),
    ]
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    pve: Option<PveDouble>,
}

impl Lab {
    /// A fresh node `pve1` (PVE double unless `with_pvesh` is false) and a cluster backup
    /// holding `files`.
    fn new(files: &[(String, String, u32)], with_pvesh: bool) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = if with_pvesh {
            FakeBin::new(dir.path().join("fake"))
        } else {
            let cmds: Vec<&str> = DEFAULT_COMMANDS
                .iter()
                .copied()
                .filter(|c| *c != "pvesh")
                .collect();
            FakeBin::with_commands(dir.path().join("fake"), &cmds)
        };
        let mut source = HostTree::new(dir.path().join("source"));
        source.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1.example.lan\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=cluster\n",
            0o640,
            ROOT,
        );
        source.file(
            "var/lib/pve-cluster/config.db",
            // A real one: RECOVERY checks it with SQLite before anything stops.
            &proxsave_testkit::configdb::ConfigDb::pve_cluster().bytes(),
            0o600,
            ROOT,
        );
        for (path, text, mode) in files {
            source.file(path, text.as_bytes(), *mode, (0, 33));
        }
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pve(dir.path().join("root"));
        let pve = with_pvesh.then(|| {
            let pve = PveDouble::fresh_node(&fake, &target.root().join("etc/pve"), "pve1");
            pve.add_node("pve2").add_guest(100, "qemu", "pve1");
            pve
        });
        Lab {
            dir,
            fake,
            target,
            bundle,
            pve,
        }
    }

    fn pve(&self) -> &PveDouble {
        self.pve.as_ref().expect("the PVE double")
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn command(&self, extra: &[&str]) -> Command {
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
            .args(extra);
        cmd
    }

    /// `restore --yes --json --host-actions run --cluster-mode safe EXTRA…`; secrets never
    /// shown (stdout, stderr, the run's log files).
    fn restore(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "--yes",
            "--json",
            "--host-actions",
            "run",
            "--cluster-mode",
            "safe",
        ];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        let mut texts = vec![common::stdout(&out), common::stderr(&out)];
        for e in fs::read_dir(self.dir.path().join("work"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log" || x == "json") {
                texts.push(fs::read_to_string(&p).unwrap_or_default());
            }
        }
        for text in &texts {
            for s in SECRETS {
                assert!(!text.contains(s), "a secret is shown:\n{text}");
            }
        }
        out
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

    /// The change calls the double received (`verb path args…`, without the output format).
    fn change_calls(&self) -> Vec<String> {
        self.pve()
            .calls()
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .filter(|a| a.as_str() != "--output-format" && a.as_str() != "json")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

fn outcome<'a>(r: &'a serde_json::Value, category: &str) -> &'a serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == category)
        .unwrap_or_else(|| panic!("no {category} outcome in {:#}", r["applied"]))
}

/// The sections of a section-config text as maps (`content`/`nodes` sorted, flags `1`).
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let (cfg, diags) = proxsave_formats::section::parse(text);
    assert!(diags.is_empty(), "{diags:?}");
    cfg.sections
        .iter()
        .map(|s| (s.id.clone(), normalized(s)))
        .collect()
}

fn file_sections(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    sections(&fs::read_to_string(path).unwrap_or_default())
}

#[test]
fn storage_restore_onto_a_fresh_node_leaves_the_api_state_equal_to_the_backup() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    let before = lab.target.snapshot();
    let out = lab.restore(&["--mode", "storage"]);
    common::assert_ok(&out);
    let r = Lab::report(&out);

    // Every change call once, in order, each accepted.
    let pbs_fp = "3a:7c:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:e1";
    let expected = vec![
        "set /storage/local --content=iso,vztmpl,backup,snippets --prune-backups=keep-all=1".to_string(),
        "create /storage --storage=tank-vm --type=zfspool --pool=tank/vm --content=images,rootdir --sparse=1".into(),
        "create /storage --storage=nas-backup --type=nfs --export=/volume1/pve --path=/mnt/pve/nas-backup --server=192.168.1.10 --content=backup --options=vers=4.2 --prune-backups=keep-daily=7,keep-weekly=4".into(),
        format!("create /storage --storage=smb-iso --type=cifs --path=/mnt/pve/smb-iso --server=files.example.lan --share=iso --content=iso,vztmpl --smbversion=3.0 --username=pveuser --password={CIFS_PASSWORD}"),
        format!("create /storage --storage=pbs01 --type=pbs --datastore=store1 --server=192.168.1.30 --content=backup --fingerprint={pbs_fp} --prune-backups=keep-last=3 --username=backup@pbs --password={PBS_PASSWORD} --encryption-key={}", key_json()),
        "create /storage --storage=usb-backup --type=dir --disable=1 --path=/mnt/usb-backup --content=backup --is_mountpoint=1".into(),
        "set /cluster/options --description=Production datacenter\nracks A and B --keyboard=de --migration=network=10.10.10.0/24,type=secure --tag-style=shape=circle".into(),
        "create /cluster/backup --id=backup-1a2b3c4d-5e6f --schedule=sun 01:00 --all=1 --enabled=1 --mode=snapshot --notes-template={{guestname}} --storage=pbs01".into(),
        "create /cluster/backup --id=backup-nightly --schedule=21:00 --compress=zstd --enabled=1 --mode=snapshot --storage=nas-backup --vmid=100,101".into(),
        "create /cluster/replication --id=100-0 --type=local --target=pve2 --schedule=*/15".into(),
    ];
    assert_eq!(lab.change_calls(), expected);

    // The double's state equals the backup's.
    let state = lab.pve().state();
    let want = sections(&storage_cfg());
    let have: BTreeMap<_, _> = state
        .storage
        .sections
        .iter()
        .map(|s| (s.id.clone(), normalized(s)))
        .collect();
    assert_eq!(have, want);
    let mut secrets = BTreeMap::new();
    for name in ["smb-iso.pw", "pbs01.pw", "pbs01.enc"] {
        let p = lab.root().join("etc/pve/priv/storage").join(name);
        secrets.insert(name.to_string(), fs::read_to_string(p).unwrap());
    }
    assert_eq!(secrets["smb-iso.pw"], format!("password={CIFS_PASSWORD}\n"));
    assert_eq!(secrets["pbs01.pw"], format!("{PBS_PASSWORD}\n"));
    assert_eq!(secrets["pbs01.enc"], format!("{}\n", key_json()));
    assert_eq!(
        state.datacenter_description,
        "Production datacenter\nracks A and B"
    );
    let dc: BTreeMap<String, String> = [
        ("keyboard", "de"),
        ("migration", "network=10.10.10.0/24,type=secure"),
        ("tag-style", "shape=circle"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(state.datacenter, dc);
    let mut jobs = sections(JOBS_CFG);
    jobs.remove("sync-corp");
    assert_eq!(
        file_sections(&lab.root().join("etc/pve/jobs.cfg")),
        jobs,
        "the backup jobs as in the backup, the realm-sync job not applied"
    );
    let repl = file_sections(&lab.root().join("etc/pve/replication.cfg"));
    assert_eq!(repl, sections(REPLICATION_CFG));

    // The outcomes.
    let st = outcome(&r, "storage_pve");
    assert_eq!(st["status"], "applied", "{st:#}");
    let detail = st["detail"].as_str().unwrap();
    assert!(detail.contains("/etc/vzdump.conf written"), "{detail}");
    assert!(
        detail.contains("/mnt/pve/nas-backup is not mounted"),
        "{detail}"
    );
    let jobs = outcome(&r, "pve_jobs");
    assert_eq!(jobs["status"], "applied", "{jobs:#}");
    assert!(
        jobs["detail"]
            .as_str()
            .unwrap()
            .contains("realm-sync job sync-corp: not applied"),
        "{jobs:#}"
    );

    // Nothing else changed on the root: vzdump.conf, the snippets folder of `local`, and
    // what the double (PVE) wrote under etc/pve.
    assert_eq!(
        fs::read_to_string(lab.root().join("etc/vzdump.conf")).unwrap(),
        VZDUMP_CONF
    );
    assert!(lab.root().join("var/lib/vz/snippets").is_dir());
    assert!(!lab.root().join("mnt/pve/nas-backup").exists());
    assert!(!lab.root().join("mnt/usb-backup").exists());
    let after = lab.target.snapshot();
    let changed: Vec<&String> = after
        .iter()
        .filter(|l| !before.contains(l))
        .filter(|l| {
            !l.contains(" ./etc/pve")
                && !l.contains(" ./etc/vzdump.conf ")
                && !l.contains(" ./var/lib/vz/snippets ")
                && !l.contains(" ./var/lib/vz ")
                && !l.contains(" ./etc ")
                && !l.contains(" ./var/lib/pve-cluster")
        })
        .collect();
    assert!(changed.is_empty(), "unexpected changes: {changed:#?}");

    // Again: nothing left to change, no change call at all.
    let calls_before = lab.pve().calls().len();
    let out = lab.restore(&["--mode", "storage"]);
    common::assert_ok(&out);
    let again: Vec<String> = lab.change_calls()[calls_before..].to_vec();
    // Everything is as in the backup now; only the storages with secrets are set again (a
    // secret cannot be read back to compare).
    assert_eq!(
        again,
        [
            format!(
                "set /storage/smb-iso --content=iso,vztmpl --smbversion=3.0 --username=pveuser --password={CIFS_PASSWORD}"
            ),
            format!(
                "set /storage/pbs01 --content=backup --fingerprint={pbs_fp} --prune-backups=keep-last=3 --username=backup@pbs --password={PBS_PASSWORD} --encryption-key={}",
                key_json()
            ),
        ],
        "a second run changes nothing else"
    );
}

#[test]
fn dry_run_only_reads_and_lists_each_call_with_secrets_redacted() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    let before = lab.target.snapshot();
    let out = lab.restore(&["--mode", "storage", "--dry-run"]);
    common::assert_ok(&out);
    let calls = lab.pve().all_calls();
    assert!(!calls.is_empty(), "the dry run reads the API");
    for c in &calls {
        assert_eq!(c.args[0], "get", "a dry run only reads: {}", c.line());
    }
    assert_eq!(lab.target.snapshot(), before, "a dry run changes nothing");
    let text = common::stdout(&out);
    assert!(
        text.contains("pvesh create /storage --storage=smb-iso --type=cifs"),
        "{text}"
    );
    assert!(text.contains("--password=<redacted>"), "{text}");
    assert!(text.contains("--encryption-key=<redacted>"), "{text}");
    assert!(text.contains("pvesh set /storage/local"), "{text}");

    // `diff` shows the planned API changes as unified diffs of the objects' options.
    let diff = lab
        .fake
        .command(common::bin())
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .args(["diff", "--backup"])
        .arg(&lab.bundle)
        .arg("--root")
        .arg(lab.root())
        .args([
            "--mode",
            "storage",
            "--cluster-mode",
            "safe",
            "--host-actions",
            "run",
        ])
        .output()
        .unwrap();
    common::assert_ok(&diff);
    let shown = common::stdout(&diff);
    for s in SECRETS {
        assert!(!shown.contains(s), "{shown}");
    }
    assert!(
        shown.contains("# storage-pve (set): pvesh set /storage/local --content=iso,vztmpl,backup,snippets --prune-backups=keep-all=1\n--- /storage/local (current)\n+++ /storage/local (backup)\n"),
        "{shown}"
    );
    assert!(
        shown.contains("-content iso,vztmpl,backup\n+content iso,vztmpl,backup,snippets\n"),
        "{shown}"
    );
    assert!(shown.contains("+password <redacted>\n"), "{shown}");
    assert_eq!(lab.target.snapshot(), before, "diff changes nothing");
    for c in lab.pve().all_calls() {
        assert_eq!(c.args[0], "get", "diff only reads: {}", c.line());
    }
}

#[test]
fn a_bad_section_is_skipped_and_named_and_the_rest_applies() {
    require_tools!("tar", "sha256sum");
    let storage = format!(
        "{}dir: bad id here\n\tpath /srv/bad\n\n\
         dir: vmstore\n\tpath /srv/vmstore\n\tcontent images,rootdir,iso\n\n\
         dir: evil\n\tpath /etc/evil\n\tcontent images\n\n",
        storage_cfg()
    );
    let lab = Lab::new(&pve_files(&storage), true);
    let out = lab.restore(&["--mode", "storage"]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let st = outcome(&r, "storage_pve");
    let detail = st["detail"].as_str().unwrap();
    assert!(
        detail.contains("/etc/pve/storage.cfg line 48: ignored line \"dir: bad id here\""),
        "the bad header is named with its line: {detail}"
    );
    let state = lab.pve().state();
    assert!(state.storage.find_id("usb-backup").is_some());
    assert!(state.storage.find_id("pbs01").is_some());
    assert!(!lab.change_calls().iter().any(|c| c.contains("/srv/bad")));
    // Storage directories as PVE makes them, on the root; never under a system folder.
    for d in ["images", "private", "dump", "template/iso"] {
        assert!(lab.root().join("srv/vmstore").join(d).is_dir(), "{d}");
    }
    assert!(!lab.root().join("etc/evil").exists());
    assert!(
        detail.contains("storage evil: directories not created"),
        "{detail}"
    );
}

#[test]
fn a_failed_call_names_the_object_and_the_next_ones_still_apply() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    // This node has datacenter options of its own: one the backup lacks is left and listed.
    lab.pve()
        .write_file("datacenter.cfg", "console: html5\nkeyboard: en-us\n");
    lab.fake.respond(
        "pvesh",
        &["create", "/storage", "--storage=tank-vm"],
        Response::fail(
            255,
            "create storage failed: zfs error: cannot open 'tank': no such pool\n",
        ),
    );
    let out = lab.restore(&["--mode", "storage"]);
    let r = Lab::report(&out);
    let st = outcome(&r, "storage_pve");
    assert_eq!(st["status"], "partly_applied", "{st:#}");
    let detail = st["detail"].as_str().unwrap();
    let first = detail.lines().next().unwrap();
    assert!(first.contains("storage tank-vm"), "{first}");
    assert!(
        first.contains("pvesh create /storage --storage=tank-vm"),
        "{first}"
    );
    assert!(first.contains("no such pool"), "{first}");
    let state = lab.pve().state();
    assert!(state.storage.find_id("tank-vm").is_none());
    for id in ["nas-backup", "smb-iso", "pbs01", "usb-backup"] {
        assert!(
            state.storage.find_id(id).is_some(),
            "{id} applied after the failure"
        );
    }
    assert_eq!(r["outcome"], "completed_with_errors", "{:#}", r["outcome"]);
    assert!(
        detail.contains("datacenter option `console` (this node has it, the backup does not)"),
        "{detail}"
    );
    assert_eq!(
        state.datacenter.get("console").map(String::as_str),
        Some("html5")
    );
    assert_eq!(
        state.datacenter.get("keyboard").map(String::as_str),
        Some("de")
    );
}

#[test]
fn recovery_writes_only_vzdump_conf_and_calls_no_pvesh() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    let pve_before = lab.pve().state().storage.to_text();
    let mut args = vec!["--yes", "--json", "--host-actions", "run"];
    args.extend(["--mode", "storage", "--cluster-mode", "recovery"]);
    let out = lab.command(&args).output().unwrap();
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert!(
        lab.pve().all_calls().is_empty(),
        "no pvesh call in RECOVERY"
    );
    assert_eq!(
        fs::read_to_string(lab.root().join("etc/vzdump.conf")).unwrap(),
        VZDUMP_CONF
    );
    let st = outcome(&r, "storage_pve");
    assert!(
        st["detail"].as_str().unwrap().contains("RECOVERY"),
        "{st:#}"
    );
    let jobs = outcome(&r, "pve_jobs");
    assert_eq!(jobs["status"], "skipped", "{jobs:#}");
    assert_eq!(lab.pve().state().storage.to_text(), pve_before);
}

#[test]
fn without_pvesh_the_api_part_is_skipped_with_that_reason() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), false);
    let out = lab.restore(&["--mode", "storage"]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let jobs = outcome(&r, "pve_jobs");
    assert_eq!(jobs["status"], "skipped", "{jobs:#}");
    assert!(
        jobs["reason"].as_str().unwrap().contains("pvesh"),
        "{jobs:#}"
    );
    let st = outcome(&r, "storage_pve");
    assert!(st["detail"].as_str().unwrap().contains("pvesh"), "{st:#}");
    assert_eq!(
        fs::read_to_string(lab.root().join("etc/vzdump.conf")).unwrap(),
        VZDUMP_CONF,
        "vzdump.conf is still written"
    );
}

#[test]
fn deferred_host_actions_make_no_pvesh_call_and_list_the_calls() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    let args = [
        "--yes",
        "--json",
        "--host-actions",
        "defer",
        "--cluster-mode",
        "safe",
        "--mode",
        "storage",
    ];
    let out = lab.command(&args).output().unwrap();
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert!(
        lab.pve().all_calls().is_empty(),
        "no pvesh call when deferred"
    );
    let jobs = outcome(&r, "pve_jobs");
    assert_eq!(jobs["status"], "deferred", "{jobs:#}");
    let text = common::stdout(&out);
    assert!(
        text.contains("pvesh create /cluster/backup --id=backup-nightly"),
        "{text}"
    );
    assert!(!text.contains(CIFS_PASSWORD) && !text.contains(KEY_DATA));
}

const NOTIFICATIONS_CFG: &str = "sendmail: mail-to-root\n\tmailto-user root@pam\n\tcomment Send mails to root@pam's email address\n\n\
smtp: relay\n\tfrom-address pve@example.com\n\tmailto-user root@pam\n\tmailto-user ops@pve\n\tmode starttls\n\tserver mail.example.com\n\tusername pve\n\n\
matcher: critical\n\tmatch-severity error\n\tmode all\n\ttarget relay\n\n";

fn notification_files() -> Vec<(String, String, u32)> {
    vec![
        (
            "etc/pve/notifications.cfg".into(),
            NOTIFICATIONS_CFG.into(),
            0o640,
        ),
        (
            "etc/pve/priv/notifications.cfg".into(),
            format!("smtp: relay\n\tpassword {SMTP_PASSWORD}\n\n"),
            0o600,
        ),
    ]
}

#[test]
fn notifications_are_set_or_created_with_their_secrets_redacted() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&notification_files(), true);
    let custom = ["--mode", "custom", "--categories", "pve_notifications"];
    let out = lab.restore(&custom);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let n = outcome(&r, "pve_notifications");
    assert_eq!(n["status"], "applied", "{n:#}");
    assert!(
        n["detail"]
            .as_str()
            .unwrap()
            .contains("mail-to-root: PVE's built-in"),
        "{n:#}"
    );
    assert_eq!(
        lab.change_calls(),
        [
            format!("create /cluster/notifications/endpoints/smtp --name=relay --from-address=pve@example.com --mailto-user=root@pam --mailto-user=ops@pve --mode=starttls --server=mail.example.com --username=pve --password={SMTP_PASSWORD}"),
            "create /cluster/notifications/matchers --name=critical --match-severity=error --mode=all --target=relay".to_string(),
        ]
    );
    let state = lab.pve().state();
    assert!(state.notifications.find("smtp", "relay").is_some());
    assert_eq!(
        state
            .notifications_priv
            .find("smtp", "relay")
            .and_then(|s| s.get("password")),
        Some(SMTP_PASSWORD)
    );

    // Second run: they exist, so `set`; a refused set names the object, redacted.
    lab.fake.respond(
        "pvesh",
        &["set", "/cluster/notifications/endpoints/smtp/relay"],
        Response::fail(
            255,
            format!(
                "400 Parameter verification failed.\npassword: invalid value '{SMTP_PASSWORD}'\n"
            ),
        ),
    );
    let out = lab.restore(&custom);
    let r = Lab::report(&out);
    let n = outcome(&r, "pve_notifications");
    assert_eq!(n["status"], "partly_applied", "{n:#}");
    let first = n["detail"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(first.contains("notification target relay"), "{first}");
    assert!(first.contains("--password=<redacted>"), "{first}");
    assert!(!first.contains(SMTP_PASSWORD), "{first}");
    // The endpoint is set again (its secret cannot be read back to compare); the matcher is
    // as in the backup: no call.
    let calls = lab.change_calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls[2].starts_with("set /cluster/notifications/endpoints/smtp/relay --from-address="),
        "{calls:#?}"
    );
    assert!(
        n["detail"]
            .as_str()
            .unwrap()
            .contains("notification matcher critical: already as in the backup"),
        "{n:#}"
    );
}

#[test]
fn answers_choose_what_is_applied_and_a_bad_one_stops_before_anything_is_written() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new(&pve_files(&storage_cfg()), true);
    let before = lab.target.snapshot();
    let out = lab.restore(&["--mode", "storage", "--answer", "pve.storage.apply=maybe"]);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("pve.storage.apply"),
        "{}",
        common::stderr(&out)
    );
    assert!(lab.pve().calls().is_empty());
    assert_eq!(lab.target.snapshot(), before, "nothing written");

    let out = lab.restore(&[
        "--mode",
        "storage",
        "--answer",
        "pve.storage.apply=no",
        "--answer",
        "pve.jobs.apply=no",
    ]);
    common::assert_ok(&out);
    assert_eq!(
        lab.change_calls(),
        [
            "set /cluster/options --description=Production datacenter\nracks A and B --keyboard=de --migration=network=10.10.10.0/24,type=secure --tag-style=shape=circle"
        ],
        "only the datacenter options (pve.datacenter.apply defaults to yes)"
    );
    let r = Lab::report(&out);
    assert_eq!(outcome(&r, "pve_jobs")["status"], "skipped");
}
