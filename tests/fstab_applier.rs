//! The `fstab-merge` applier end to end: the real binary restores the `filesystem` category
//! onto a fresh PVE root (its own root, EFI and swap UUIDs, `/dev/disk/by-uuid` links for the
//! disks it has) from backups with NFS and CIFS mounts (a `password=` in the options), a data
//! disk by UUID that exists here and one that does not, and `/dev/sdb1` remapped through the
//! backup's `lsblk` JSON. Fake `systemctl` on `PATH` (recording), the real `findmnt`. The
//! `fstab.merge` question: its default under `--yes`, `--answer`, the answers file's
//! `[answers]` table, and an answer that is not a safe proposal (exit 2, nothing written).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_restore::system::fstab::{VerifyReport, blocking_findings};
use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

const NEW_ROOT: &str = "6a1f3c2e-8d4b-4e5f-9a7b-1c2d3e4f5a6b";
const NEW_SWAP: &str = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901";
const NEW_EFI: &str = "7A3B-1C2D";
const OLD_ROOT: &str = "0e9d8c7b-6a59-4837-a261-5f4e3d2c1b0a";
const OLD_SWAP: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";
const OLD_EFI: &str = "1A2B-3C4D";
/// A data disk both machines have.
const DATA: &str = "b3c1d2e4-5f60-4718-92a3-b4c5d6e7f809";
/// A disk of the old machine that is not here.
const GONE: &str = "c0ffee00-1234-4567-89ab-cdef01234567";
/// `/dev/sdb1` on the old machine; here by UUID.
const SCRATCH: &str = "5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e";
const PASSWORD: &str = "S3cr3t!pw";

/// A fresh PVE install's fstab.
fn target_fstab() -> String {
    format!(
        "# /etc/fstab: static file system information.\n\
         #\n\
         # <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
         UUID={NEW_ROOT} /               ext4    errors=remount-ro 0       1\n\
         # /boot/efi was on /dev/nvme0n1p2 during installation\n\
         UUID={NEW_EFI}  /boot/efi       vfat    umask=0077      0       1\n\
         UUID={NEW_SWAP} none            swap    sw              0       0\n\
         proc /proc proc defaults 0 0\n"
    )
}

/// The backed-up host's fstab, its root on `root_uuid`.
fn backup_fstab(root_uuid: &str) -> String {
    format!(
        "# /etc/fstab: static file system information.\n\
         # <file system> <mount point> <type> <options> <dump> <pass>\n\
         UUID={root_uuid} / ext4 errors=remount-ro 0 1\n\
         UUID={OLD_EFI} /boot/efi vfat umask=0077 0 1\n\
         UUID={OLD_SWAP} none swap sw 0 0\n\
         proc /proc proc defaults 0 0\n\
         # NAS shares\n\
         nas.example.lan:/export/iso\t/mnt/iso\tnfs\tvers=4.2,soft\t0 0\n\
         //files.example.lan/backup /mnt/smb-backup cifs username=backup,password={PASSWORD},vers=3.0,uid=0 0 0\n\
         UUID={DATA} /mnt/data ext4 defaults 0 2\n\
         UUID={GONE} /mnt/archive xfs defaults 0 2\n\
         /dev/sdb1 /var/lib/vz-extra ext4 noatime 0 2\n"
    )
}

fn lsblk_json(root_uuid: &str) -> String {
    format!(
        r#"{{
   "blockdevices": [
      {{"name":"sda", "path":"/dev/sda", "fstype":null, "label":null, "uuid":null, "partuuid":null, "mountpoint":null,
         "children": [
            {{"name":"sda1", "path":"/dev/sda1", "fstype":"vfat", "label":null, "uuid":"{OLD_EFI}", "partuuid":"8c1e2a4b-01", "mountpoint":"/boot/efi"}},
            {{"name":"sda2", "path":"/dev/sda2", "fstype":"ext4", "label":null, "uuid":"{root_uuid}", "partuuid":"8c1e2a4b-02", "mountpoint":"/"}},
            {{"name":"sda3", "path":"/dev/sda3", "fstype":"swap", "label":null, "uuid":"{OLD_SWAP}", "partuuid":"8c1e2a4b-03", "mountpoint":"[SWAP]"}}
         ]
      }},
      {{"name":"sdb", "path":"/dev/sdb", "fstype":null, "label":null, "uuid":null, "partuuid":null, "mountpoint":null,
         "children": [
            {{"name":"sdb1", "path":"/dev/sdb1", "fstype":"ext4", "label":"scratch", "uuid":"{SCRATCH}", "partuuid":"3d4e5f60-01", "mountpoint":"/var/lib/vz-extra"}}
         ]
      }}
   ]
}}
"#
    )
}

fn blkid_txt(root_uuid: &str) -> String {
    format!(
        "/dev/sda1: UUID=\"{OLD_EFI}\" BLOCK_SIZE=\"512\" TYPE=\"vfat\" PARTUUID=\"8c1e2a4b-01\"\n\
         /dev/sda2: UUID=\"{root_uuid}\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" PARTUUID=\"8c1e2a4b-02\"\n\
         /dev/sda3: UUID=\"{OLD_SWAP}\" TYPE=\"swap\" PARTUUID=\"8c1e2a4b-03\"\n\
         /dev/sdb1: LABEL=\"scratch\" UUID=\"{SCRATCH}\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" PARTUUID=\"3d4e5f60-01\"\n\
         /dev/sdc1: UUID=\"{DATA}\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" PARTUUID=\"77aa88bb-01\"\n"
    )
}

/// What the merge appends to [`target_fstab`] when every proposal is chosen.
fn added_block(host: &str) -> String {
    format!(
        "\n# --- proxsave: mounts restored from backup of {host} ---\n\
         nas.example.lan:/export/iso\t/mnt/iso\tnfs\tvers=4.2,soft,_netdev,nofail\t0 0\n\
         //files.example.lan/backup /mnt/smb-backup cifs username=backup,password={PASSWORD},vers=3.0,uid=0,_netdev,nofail 0 0\n\
         UUID={DATA} /mnt/data ext4 defaults,nofail 0 2\n\
         # /dev/sdb1 in the backup (line 12) is UUID={SCRATCH} here\n\
         UUID={SCRATCH} /var/lib/vz-extra ext4 noatime,nofail 0 2\n\
         # --- end proxsave ---\n"
    )
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
}

impl Lab {
    /// A fresh PVE root and a backup of `hostname` whose root is on `root_uuid`.
    fn new(hostname: &str, root_uuid: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        assert!(
            !fake.bin_dir().join("findmnt").exists(),
            "findmnt must be the real one"
        );

        let mut source = HostTree::new(dir.path().join("source"));
        source
            .file(
                "var/lib/proxsave-info/backup_metadata.txt",
                format!(
                    "# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME={hostname}\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE=standalone\n"
                )
                .as_bytes(),
                0o640,
                ROOT,
            )
            .file("etc/fstab", backup_fstab(root_uuid).as_bytes(), 0o644, ROOT)
            .file(
                "var/lib/proxsave-info/commands/system/lsblk_json.json",
                lsblk_json(root_uuid).as_bytes(),
                0o640,
                ROOT,
            )
            .file(
                "var/lib/proxsave-info/commands/system/blkid.txt",
                blkid_txt(root_uuid).as_bytes(),
                0o640,
                ROOT,
            )
            .settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);

        let mut target = HostRoot::pve(dir.path().join("root"));
        let t = target.tree_mut();
        t.file("etc/fstab", target_fstab().as_bytes(), 0o644, ROOT);
        for (uuid, dev) in [
            (NEW_ROOT, "dm-1"),
            (NEW_EFI, "nvme0n1p2"),
            (NEW_SWAP, "dm-0"),
            (DATA, "sdc1"),
            (SCRATCH, "sdb1"),
        ] {
            t.symlink(&format!("dev/disk/by-uuid/{uuid}"), &format!("../../{dev}"));
        }
        t.settle_dirs();
        Lab {
            dir,
            fake,
            target,
            bundle,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn fstab(&self) -> Vec<u8> {
        fs::read(self.root().join("etc/fstab")).unwrap()
    }

    fn baks(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("fstab.bak-")
            })
            .collect();
        v.sort();
        v
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

    /// `restore --yes --mode custom --categories filesystem --host-actions run --json …`.
    fn restore(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "--yes",
            "--mode",
            "custom",
            "--categories",
            "filesystem",
            "--host-actions",
            "run",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        for text in [common::stdout(&out), common::stderr(&out)] {
            assert!(
                !text.contains(PASSWORD),
                "the CIFS password is shown:\n{text}"
            );
            assert!(
                text.matches("password=").count() == text.matches("password=********").count(),
                "an option's secret is shown:\n{text}"
            );
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

    fn daemon_reloads(&self) -> usize {
        self.fake
            .calls_of("systemctl")
            .iter()
            .filter(|c| c.args == ["daemon-reload"])
            .count()
    }
}

/// `findmnt --verify --tab-file FILE` with the real tool.
fn findmnt_verify(file: &Path) -> VerifyReport {
    let out = Command::new("findmnt")
        .env("LC_ALL", "C")
        .args(["--verify", "--tab-file"])
        .arg(file)
        .output()
        .expect("run findmnt");
    VerifyReport::parse(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

fn outcome(r: &serde_json::Value) -> &serde_json::Value {
    let applied = r["applied"].as_array().expect("applied");
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["category"], "filesystem");
    assert_eq!(applied[0]["applier"], "fstab-merge");
    &applied[0]
}

#[test]
fn same_machine_backup_adds_its_safe_mounts_checks_them_and_rolls_back() {
    require_tools!("tar", "gzip", "sha256sum", "findmnt");
    let lab = Lab::new("pve1.example.lan", NEW_ROOT);
    let before = lab.target.snapshot();
    let old = lab.fstab();
    let old_meta = fs::metadata(lab.root().join("etc/fstab")).unwrap();

    // A dry run describes the applier and writes nothing.
    let out = lab.restore(&["--dry-run"]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(lab.target.snapshot(), before);
    // The planned change, in the plan and as `diff` shows it: a unified diff of /etc/fstab
    // with the CIFS password masked.
    let changes = r["appliers"][0]["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["target"], "/etc/fstab");
    assert_eq!(changes[0]["kind"], "write");
    let diff = lab
        .fake
        .command(common::bin())
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .args(["diff", "--backup"])
        .arg(&lab.bundle)
        .arg("--root")
        .arg(lab.root())
        .args(["--mode", "custom", "--categories", "filesystem"])
        .output()
        .unwrap();
    common::assert_ok(&diff);
    let shown = common::stdout(&diff);
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains(
            "# fstab-merge (write): /etc/fstab\n--- /etc/fstab (current)\n+++ /etc/fstab (backup)\n"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("+//files.example.lan/backup /mnt/smb-backup cifs username=backup,password=********,vers=3.0,uid=0,_netdev,nofail 0 0\n"),
        "{shown}"
    );
    assert!(shown.contains("+nas.example.lan:/export/iso"), "{shown}");
    assert_eq!(lab.target.snapshot(), before);
    let a = &r["appliers"][0];
    assert_eq!(a["name"], "fstab-merge");
    assert_eq!(a["categories"], serde_json::json!(["filesystem"]));
    assert_eq!(a["files"], serde_json::json!(["etc/fstab"]));
    let actions: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "add nas.example.lan:/export/iso → /mnt/iso (nfs)".to_string(),
        "add //files.example.lan/backup → /mnt/smb-backup (cifs)".to_string(),
        format!("add UUID={DATA} → /mnt/data (ext4)"),
        format!("add UUID={SCRATCH} → /var/lib/vz-extra (ext4) [was /dev/sdb1 in the backup]"),
    ] {
        assert!(
            actions.contains(&want.as_str()),
            "{want} not in {actions:#?}"
        );
    }
    assert!(
        actions.iter().any(|l| l.starts_with(&format!(
            "leave out UUID={GONE} → /mnt/archive (xfs): UUID={GONE} does not exist on this host"
        ))),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|l| l.starts_with(&format!("leave out UUID={NEW_ROOT} → / (ext4): "))),
        "{actions:#?}"
    );
    let q = &a["questions"][0];
    assert_eq!(q["spec"]["id"], "fstab.merge");
    assert_eq!(q["default"], "all");
    assert_eq!(r["questions"][0]["id"], "fstab.merge");
    assert_eq!(r["questions"][0]["default"], "all");
    assert_eq!(a["details"]["root"]["match"], "same");

    // The restore: the host's file byte for byte, then the marked block.
    let out = lab.restore(&[]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "applied", "{o}");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "added 4 mounts to /etc/fstab: nas.example.lan:/export/iso → /mnt/iso (nfs), \
             //files.example.lan/backup → /mnt/smb-backup (cifs), UUID={DATA} → /mnt/data (ext4), \
             UUID={SCRATCH} → /var/lib/vz-extra (ext4) [was /dev/sdb1 in the backup]; \
             the previous file is /etc/fstab.bak-"
        )),
        "{detail}"
    );
    assert!(!detail.contains("warning"), "{detail}");
    assert_eq!(r["questions"][0]["answer"], "all");
    assert_eq!(r["questions"][0]["source"], "default");
    let merged = lab.fstab();
    assert_eq!(
        String::from_utf8(merged.clone()).unwrap(),
        format!("{}{}", target_fstab(), added_block("pve1.example.lan"))
    );
    assert!(merged.starts_with(&old));
    let meta = fs::metadata(lab.root().join("etc/fstab")).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (old_meta.mode() & 0o7777, old_meta.uid(), old_meta.gid())
    );

    // findmnt finds nothing in it that the old file did not have but unreachable sources
    // and targets (this machine has none of these disks or folders).
    let new_report = findmnt_verify(&lab.root().join("etc/fstab"));
    let baks = lab.baks();
    assert_eq!(baks.len(), 1, "{baks:?}");
    let old_report = findmnt_verify(&baks[0]);
    assert!(
        blocking_findings(&old_report, &new_report).is_empty(),
        "{new_report:?}"
    );

    // The .bak copy: the old bytes, same mode and owner; its name is the run's local time.
    let name = baks[0].file_name().unwrap().to_string_lossy().into_owned();
    let stamp = name.trim_start_matches("fstab.bak-");
    assert_eq!(stamp.len(), 15, "{name}");
    assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").is_ok());
    assert_eq!(fs::read(&baks[0]).unwrap(), old);
    let bak_meta = fs::metadata(&baks[0]).unwrap();
    assert_eq!(bak_meta.mode() & 0o7777, 0o644);
    assert_eq!(lab.daemon_reloads(), 1);

    // The safety backup holds the old /etc/fstab.
    let sb = r["safety_backup"]["path"].as_str().unwrap().to_string();
    let listing = Command::new("tar").arg("-tzf").arg(&sb).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "etc/fstab"),
        "{listing}"
    );

    // A second identical restore changes nothing: no rewrite, no new .bak, no reload.
    let after_first = lab.target.snapshot();
    let out = lab.restore(&[]);
    common::assert_ok(&out);
    let r2 = Lab::report(&out);
    let o2 = outcome(&r2);
    assert_eq!(o2["status"], "skipped");
    assert_eq!(
        o2["reason"],
        "nothing to add: the backup's safe mounts are already in /etc/fstab"
    );
    assert_eq!(lab.target.snapshot(), after_first);
    assert_eq!(lab.baks().len(), 1);
    assert_eq!(lab.daemon_reloads(), 1);

    // Rollback to the first run's safety backup: the old file, byte for byte.
    let out = lab
        .fake
        .command(common::bin())
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .args(["restore", "--rollback", &sb, "--root"])
        .arg(lab.root())
        .arg("--yes")
        .output()
        .unwrap();
    common::assert_ok(&out);
    assert_eq!(lab.fstab(), old);
    let meta = fs::metadata(lab.root().join("etc/fstab")).unwrap();
    assert_eq!(meta.mode() & 0o7777, old_meta.mode() & 0o7777);
}

#[test]
fn another_machines_backup_adds_nothing_under_yes() {
    require_tools!("tar", "sha256sum", "findmnt");
    let lab = Lab::new("pve-old.example.lan", OLD_ROOT);
    let before = lab.target.snapshot();
    let out = lab.restore(&[]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    assert_eq!(
        o["reason"],
        format!(
            "nothing added: answer `none` (the default: the backup's root device (UUID={OLD_ROOT}) \
             is not this host's (UUID={NEW_ROOT}): another machine or a new install)"
        )
    );
    let q = &r["questions"][0];
    assert_eq!(q["id"], "fstab.merge");
    assert_eq!(q["default"], "none");
    assert_eq!(q["answer"], "none");
    assert_eq!(q["source"], "default");
    // The proposals are still described for the user to add by hand.
    let a = &r["appliers"][0];
    assert_eq!(a["details"]["root"]["match"], "different");
    assert_eq!(a["details"]["proposals"].as_array().unwrap().len(), 4);
    assert_eq!(lab.fstab(), target_fstab().as_bytes());
    assert!(lab.baks().is_empty());
    assert_eq!(lab.daemon_reloads(), 0);
    // Only the fstab applier's safety copy may differ: the root is as it was.
    assert_eq!(lab.target.snapshot(), before);
}

/// The block [`added_block`] restricted to some of its mounts, in its order.
fn block_of(host: &str, lines: &[&str]) -> String {
    let mut s = format!("\n# --- proxsave: mounts restored from backup of {host} ---\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("# --- end proxsave ---\n");
    s
}

#[test]
fn the_answers_file_or_a_flag_chooses_what_another_machines_backup_adds() {
    require_tools!("tar", "sha256sum", "findmnt");
    // `[answers]` "fstab.merge" = "all": every safe proposal, though the root differs.
    let lab = Lab::new("pve-old.example.lan", OLD_ROOT);
    let answers = lab.dir.path().join("answers.toml");
    fs::write(&answers, "[answers]\n\"fstab.merge\" = \"all\"\n").unwrap();
    let out = lab.restore(&["--answers", answers.to_str().unwrap()]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(outcome(&r)["status"], "applied");
    let q = &r["questions"][0];
    assert_eq!(
        (&q["id"], &q["default"], &q["answer"], &q["source"]),
        (
            &"fstab.merge".into(),
            &"none".into(),
            &"all".into(),
            &"answers-file".into()
        )
    );
    assert_eq!(
        String::from_utf8(lab.fstab()).unwrap(),
        format!("{}{}", target_fstab(), added_block("pve-old.example.lan"))
    );
    assert_eq!(lab.baks().len(), 1);
    assert_eq!(lab.daemon_reloads(), 1);

    // `--answer` with two mountpoints (spelt loosely): only those, in the file's order.
    let lab = Lab::new("pve-old.example.lan", OLD_ROOT);
    let out = lab.restore(&["--answer", "fstab.merge=/var/lib/vz-extra/, /mnt/data"]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "applied");
    assert!(
        o["detail"].as_str().unwrap().starts_with(&format!(
            "added 2 mounts to /etc/fstab: UUID={DATA} → /mnt/data (ext4), UUID={SCRATCH} → /var/lib/vz-extra (ext4) [was /dev/sdb1 in the backup]; "
        )),
        "{o}"
    );
    assert_eq!(r["questions"][0]["source"], "flag");
    assert_eq!(
        String::from_utf8(lab.fstab()).unwrap(),
        format!(
            "{}{}",
            target_fstab(),
            block_of(
                "pve-old.example.lan",
                &[
                    &format!("UUID={DATA} /mnt/data ext4 defaults,nofail 0 2"),
                    &format!("# /dev/sdb1 in the backup (line 12) is UUID={SCRATCH} here"),
                    &format!("UUID={SCRATCH} /var/lib/vz-extra ext4 noatime,nofail 0 2"),
                ]
            )
        )
    );
}

#[test]
fn an_answer_that_is_not_a_safe_proposal_is_exit_2_before_anything_is_written() {
    require_tools!("tar", "sha256sum", "findmnt");
    let lab = Lab::new("pve-old.example.lan", OLD_ROOT);
    let before = lab.target.snapshot();
    for (answer, why) in [
        (
            "fstab.merge=/mnt/data,/mnt/archive",
            format!(
                "/mnt/archive is not a safe proposal (UUID={GONE} does not exist on this host)"
            ),
        ),
        (
            "fstab.merge=/",
            "/ is not a safe proposal (a system mountpoint".to_string(),
        ),
        (
            "fstab.merge=mnt/data",
            "`mnt/data` is not an absolute mountpoint".to_string(),
        ),
    ] {
        let out = lab.restore(&["--answer", answer]);
        assert_eq!(common::code(&out), 2, "{answer}: {}", common::stderr(&out));
        let err = common::stderr(&out);
        assert!(
            err.contains("fstab.merge") && err.contains(&why),
            "{answer}: {err}"
        );
        assert_eq!(lab.target.snapshot(), before, "{answer}");
        assert_eq!(lab.daemon_reloads(), 0);
    }
}
