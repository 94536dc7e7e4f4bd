//! Tests of the fstab module: unit tests per rule with realistic files, property tests, and
//! the real `findmnt --verify`.

#![allow(clippy::unwrap_used)]

use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

/// A fresh PVE install: its own root, EFI and swap UUIDs.
const FRESH_PVE: &str = "\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=9c0f7a2e-5b1d-4f8e-a0c3-2d6b8e4f1a10 /               ext4    errors=remount-ro 0       1
UUID=4A1B-2C3D  /boot/efi       vfat    umask=0077      0       1
UUID=0b5e6d7c-8a9f-4e1d-b2c3-a4f5e6d7c8b9 none            swap    sw              0       0
proc /proc proc defaults 0 0
";

const CURRENT_ROOT_UUID: &str = "9c0f7a2e-5b1d-4f8e-a0c3-2d6b8e4f1a10";
const DATA_HERE: &str = "5f3c2a1b-7d6e-4c5b-9a8f-00000000beef";
const DATA_GONE: &str = "aaaabbbb-cccc-4ddd-8eee-ffff00001111";
const SDB1_UUID: &str = "c0ffee00-1234-4abc-8def-00000000b001";

/// An older host's backup: other root UUID, NFS, CIFS with a password, a data disk by UUID
/// that exists here and one that does not, `/dev/sdb1` (remappable), `/dev/sdc1` (not).
fn old_backup() -> String {
    format!(
        "\
# /etc/fstab: static file system information.
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=1e2d3c4b-0000-4000-8000-000000000001 /               ext4    errors=remount-ro 0       1
UUID=7E8F-9A0B  /boot/efi       vfat    umask=0077      0       1
/dev/sda3 none swap sw 0 0
proc /proc proc defaults 0 0
tmpfs /tmp tmpfs defaults,size=2G 0 0
# backups on the NAS
192.168.10.5:/export/pve-backup /mnt/nas    nfs  vers=4.2,hard   0 0
//fileserver.lan/media /mnt/media cifs username=svc,password=S3cr3t!pw,vers=3.0 0 0
UUID={DATA_HERE} /mnt/data ext4 defaults 0 2
UUID={DATA_GONE} /mnt/archive ext4 defaults 0 2
/dev/sdb1 /srv/backup-disk ext4 defaults 0 2
/dev/sdc1 /srv/scratch xfs defaults 0 2
"
    )
}

/// `lsblk -J -o NAME,PATH,KNAME,UUID,PARTUUID,LABEL,PARTLABEL,FSTYPE,MOUNTPOINT,TYPE` of the
/// old host (sdc was not attached when the backup ran).
fn old_lsblk() -> String {
    format!(
        r#"{{
   "blockdevices": [
      {{"name":"sda", "path":"/dev/sda", "kname":"sda", "uuid":null, "partuuid":null, "label":null, "partlabel":null, "fstype":null, "mountpoint":null, "type":"disk",
         "children": [
            {{"name":"sda1", "path":"/dev/sda1", "kname":"sda1", "uuid":"7E8F-9A0B", "partuuid":"0d4c1a2b-01", "label":null, "partlabel":null, "fstype":"vfat", "mountpoint":"/boot/efi", "type":"part"}},
            {{"name":"sda2", "path":"/dev/sda2", "kname":"sda2", "uuid":"1e2d3c4b-0000-4000-8000-000000000001", "partuuid":"0d4c1a2b-02", "label":null, "partlabel":null, "fstype":"ext4", "mountpoint":"/", "type":"part"}},
            {{"name":"sda3", "path":"/dev/sda3", "kname":"sda3", "uuid":"3a3a3a3a-0000-4000-8000-000000000003", "partuuid":"0d4c1a2b-03", "label":null, "partlabel":null, "fstype":"swap", "mountpoint":"[SWAP]", "type":"part"}}
         ]
      }},
      {{"name":"sdb", "path":"/dev/sdb", "kname":"sdb", "uuid":null, "partuuid":null, "label":null, "partlabel":null, "fstype":null, "mountpoint":null, "type":"disk",
         "children": [
            {{"name":"sdb1", "path":"/dev/sdb1", "kname":"sdb1", "uuid":"{SDB1_UUID}", "partuuid":"9f8e7d6c-5b4a-4321-8765-43210fedcba9", "label":"backup-disk", "partlabel":"primary", "fstype":"ext4", "mountpoint":"/srv/backup-disk", "type":"part"}}
         ]
      }}
   ]
}}"#
    )
}

const OLD_BLKID: &str = r#"/dev/sda1: UUID="7E8F-9A0B" BLOCK_SIZE="512" TYPE="vfat" PARTUUID="0d4c1a2b-01"
/dev/sda2: UUID="1e2d3c4b-0000-4000-8000-000000000001" BLOCK_SIZE="4096" TYPE="ext4" PARTUUID="0d4c1a2b-02"
/dev/sda3: UUID="3a3a3a3a-0000-4000-8000-000000000003" TYPE="swap" PARTUUID="0d4c1a2b-03"
/dev/sdd1: LABEL="my \"odd\" disk" UUID="dddd0000-0000-4000-8000-00000000d001" TYPE="ext4"
"#;

fn old_inventory() -> Inventory {
    let lsblk = old_lsblk();
    let (inv, warnings) = Inventory::from_files([
        ("lsblk_json.json", lsblk.as_str()),
        ("blkid.txt", OLD_BLKID),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    inv
}

/// What exists under this host's `/dev/disk/by-uuid`.
fn here(r: &StableRef) -> bool {
    let present = [
        format!("UUID={CURRENT_ROOT_UUID}"),
        "UUID=4a1b-2c3d".to_owned(),
        format!("UUID={DATA_HERE}"),
        format!("UUID={SDB1_UUID}"),
    ];
    present.contains(&r.key())
}

fn run(current: &str, backup: &str, choice: Choice) -> MergeResult {
    merge(
        &Fstab::parse(current),
        &Fstab::parse(backup),
        &old_inventory(),
        &here,
        "oldhost/2024-05-01",
        choice,
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Parser

#[test]
fn parse_keeps_every_byte() {
    for text in [
        FRESH_PVE,
        &old_backup(),
        "",
        "\n",
        "no newline at end",
        "UUID=x / ext4 defaults 0 1",
        "a /b ext4\r\nc /d nfs defaults 0 0\r\n",
        "\t  UUID=x\t\t/mnt/a\\040b\text4  defaults 0 2   \n\n\n# c\n",
        "only\rcarriage\rreturns\r",
        "ünïcödé /mnt/ö ext4\n\u{2028}\n",
    ] {
        assert_eq!(Fstab::parse(text).to_string(), text);
    }
}

#[test]
fn entries_expose_their_fields() {
    let f = Fstab::parse(
        "LABEL=my\\040disk  /mnt/my\\040disk/  ext4 defaults,noatime 1 2\n/dev/x /a//b/./c/ xfs\n",
    );
    let entries: Vec<_> = f.entries().collect();
    assert_eq!(entries.len(), 2);
    let (n, e) = entries[0];
    assert_eq!(n, 1);
    assert_eq!(e.spec(), "LABEL=my disk");
    assert_eq!(e.spec_raw(), "LABEL=my\\040disk");
    assert_eq!(e.mountpoint(), "/mnt/my disk");
    assert_eq!(e.mountpoint_raw(), "/mnt/my\\040disk/");
    assert_eq!(e.fstype(), "ext4");
    assert_eq!(e.options(), Some("defaults,noatime"));
    assert!(e.has_option("noatime") && !e.has_option("nofail"));
    assert_eq!((e.dump(), e.pass()), (1, 2));
    let e = entries[1].1;
    assert_eq!(e.mountpoint(), "/a/b/c");
    assert_eq!((e.options(), e.dump(), e.pass()), (None, 0, 0));
}

#[test]
fn mountpoints_are_normalised() {
    assert_eq!(normalise_mountpoint("/"), "/");
    assert_eq!(normalise_mountpoint("//"), "/");
    assert_eq!(normalise_mountpoint("/mnt/data/"), "/mnt/data");
    assert_eq!(normalise_mountpoint("/mnt/./data//x"), "/mnt/data/x");
    assert_eq!(normalise_mountpoint("/mnt/../x"), "/mnt/../x");
    assert_eq!(normalise_mountpoint("none"), "none");
    assert_eq!(unescape("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
    assert_eq!(unescape("not\\an\\escape\\9"), "not\\an\\escape\\9");
    assert_eq!(escape("a b\\"), "a\\040b\\134");
    assert_eq!(unescape(&escape("x y\tz\n\\w")), "x y\tz\n\\w");
}

#[test]
fn lines_that_do_not_parse_are_kept_and_named_by_number() {
    let text = "# ok\nfoo\n/dev/x /a\n//nas/s /mnt/s cifs password=hunter2 zero 0\nUUID=x /b ext4 defaults 0 0 junk\nUUID=y /c ext4 defaults 0 0 # comment\n";
    let f = Fstab::parse(text);
    assert_eq!(f.to_string(), text);
    let w = f.warnings();
    let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert!(w[0].message.contains("1 field,"), "{}", w[0]);
    assert!(w[1].message.contains("2 fields"), "{}", w[1]);
    assert!(
        w[2].message.contains("dump field is not a number"),
        "{}",
        w[2]
    );
    assert!(w[3].message.contains("after the sixth"), "{}", w[3]);
    for w in &w {
        assert!(!w.to_string().contains("hunter2"));
    }
    assert_eq!(
        w[0].to_string(),
        "line 2: not a valid fstab entry (1 field, at least 3 needed (device, mountpoint, type)); kept as it is"
    );
    // An inline comment ends the entry.
    let e = f.lines()[5].entry().unwrap();
    assert_eq!((e.mountpoint(), e.pass()), ("/c", 0));
    assert!(matches!(f.lines()[0].kind(), LineKind::Comment));
}

#[test]
fn debug_output_hides_options() {
    let f = Fstab::parse("//nas/s /mnt/s cifs username=u,password=hunter2 0 0\n");
    let dbg = format!("{f:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("/mnt/s"));
}

// ---------------------------------------------------------------------------------------------
// Device classification

fn source_of(line: &str) -> Source {
    let f = Fstab::parse(line);
    let e = f.entries().next().unwrap().1;
    classify(e)
}

#[test]
fn sources_are_classified() {
    use Source::*;
    let cases: &[(&str, Source)] = &[
        ("UUID=abc none swap sw 0 0", Swap),
        ("/dev/sda3 none swap sw 0 0", Swap),
        ("proc /proc proc defaults 0 0", Pseudo),
        ("tmpfs /tmp tmpfs defaults 0 0", Pseudo),
        ("server:/export /mnt/nas nfs defaults 0 0", Network),
        ("server:/export /mnt/nas nfs4 defaults 0 0", Network),
        ("//nas/share /mnt/s cifs guest 0 0", Network),
        ("//nas/share /mnt/s smb3 guest 0 0", Network),
        ("user@host:/data /mnt/h fuse.sshfs defaults 0 0", Network),
        ("gluster1:/vol /mnt/g glusterfs defaults 0 0", Network),
        ("10.0.0.1:6789:/ /mnt/ceph ceph name=admin 0 0", Network),
        ("server:/export /mnt/nas auto defaults 0 0", Network),
        ("UUID=abc /mnt/iscsi ext4 _netdev 0 0", Network),
        (
            "UUID=abc /mnt/d ext4 defaults 0 2",
            Stable(StableRef::Tag(Tag::Uuid, "abc".into())),
        ),
        (
            "LABEL=\"my\\040data\" /mnt/d ext4 defaults 0 2",
            Stable(StableRef::Tag(Tag::Label, "my data".into())),
        ),
        (
            "/dev/disk/by-id/ata-WDC_WD40-part1 /mnt/d ext4 defaults 0 2",
            Stable(StableRef::DiskBy(DiskBy::Id, "ata-WDC_WD40-part1".into())),
        ),
        (
            "/dev/mapper/vg0-data /mnt/d ext4 defaults 0 2",
            Stable(StableRef::Mapper("vg0-data".into())),
        ),
        (
            "/dev/pve/data /mnt/d ext4 defaults 0 2",
            Stable(StableRef::Lvm {
                vg: "pve".into(),
                lv: "data".into(),
            }),
        ),
        (
            "/dev/sdb1 /mnt/d ext4 defaults 0 2",
            Unstable("/dev/sdb1".into()),
        ),
        (
            "/dev/sdb1 /mnt/d ext4 _netdev 0 2",
            Unstable("/dev/sdb1".into()),
        ),
        (
            "/dev/nvme0n1p3 /mnt/d ext4 defaults 0 2",
            Unstable("/dev/nvme0n1p3".into()),
        ),
        ("/srv/data /mnt/d none bind 0 0", Other),
        ("rpool/data /mnt/d zfs defaults 0 0", Other),
        ("/dev/md0 /mnt/d ext4 defaults 0 0", Other),
        ("/dev/md/data /mnt/d ext4 defaults 0 0", Other),
        ("hostshare /mnt/d 9p trans=virtio 0 0", Other),
        ("/dev/disk/by-foo/x /mnt/d ext4 defaults 0 0", Other),
    ];
    for (line, want) in cases {
        assert_eq!(&source_of(line), want, "{line}");
    }
}

#[test]
fn unstable_kernel_names() {
    for n in [
        "/dev/sda",
        "/dev/sdb1",
        "/dev/sdaa12",
        "/dev/vda2",
        "/dev/hdc",
        "/dev/xvdb1",
        "/dev/nvme0n1",
        "/dev/nvme10n2p15",
        "/dev/mmcblk0",
        "/dev/mmcblk0p1",
    ] {
        assert!(is_unstable_name(n), "{n}");
    }
    for n in [
        "/dev/sd",
        "/dev/sdB1",
        "/dev/sda1x",
        "/dev/nvme0",
        "/dev/nvme0n",
        "/dev/nvme0n1p",
        "/dev/mmcblk",
        "/dev/mmcblk0p",
        "/dev/md0",
        "/dev/dm-0",
        "sda1",
        "/dev/mapper/sda1",
        "UUID=x",
    ] {
        assert!(!is_unstable_name(n), "{n}");
    }
}

#[test]
fn stable_refs_share_keys_across_spellings() {
    let p = |s: &str| StableRef::parse(s).unwrap();
    assert_eq!(
        p("UUID=ABCD-1234").key(),
        p("/dev/disk/by-uuid/abcd-1234").key()
    );
    assert_eq!(p("LABEL=a b").key(), p("/dev/disk/by-label/a\\x20b").key());
    assert_eq!(
        p("/dev/pve/vm-100-disk-0").key(),
        p("/dev/mapper/pve-vm--100--disk--0").key()
    );
    assert_ne!(p("LABEL=Data").key(), p("LABEL=data").key());
    assert_eq!(StableRef::parse("UUID="), None);
    assert_eq!(StableRef::parse("/dev/mapper/control"), None);
    assert_eq!(StableRef::parse("/dev/disk/by-uuid/../../sda"), None);
    assert_eq!(p("LABEL=a b").to_fstab_spec(), "LABEL=a\\040b");
    assert_eq!(
        p("LABEL=a/b").path_in_root(),
        (vec!["dev", "disk", "by-label"], "a\\x2fb".into())
    );
    assert_eq!(udev_decode(&udev_encode("a b/ä\\")), "a b/ä\\");
}

// ---------------------------------------------------------------------------------------------
// Inventory

#[test]
fn inventory_reads_lsblk_json_and_blkid() {
    let inv = old_inventory();
    let sdb1 = inv.find("/dev/sdb1").unwrap();
    assert_eq!(sdb1.uuid.as_deref(), Some(SDB1_UUID));
    assert_eq!(sdb1.label.as_deref(), Some("backup-disk"));
    assert_eq!(
        inv.remap("/dev/sdb1")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            format!("UUID={SDB1_UUID}"),
            "PARTUUID=9f8e7d6c-5b4a-4321-8765-43210fedcba9".into(),
            "LABEL=backup-disk".into(),
            "PARTLABEL=primary".into()
        ]
    );
    assert!(inv.remap("/dev/sdc1").is_empty());
    // blkid fills in what lsblk lacked (sdd was only in blkid), with its escapes.
    let sdd1 = inv.find("/dev/sdd1").unwrap();
    assert_eq!(sdd1.label.as_deref(), Some("my \"odd\" disk"));
    assert_eq!(inv.root_device().unwrap().path, "/dev/sda2");
    assert_eq!(
        inv.find("UUID=1e2d3c4b-0000-4000-8000-000000000001")
            .unwrap()
            .path,
        "/dev/sda2"
    );
    assert_eq!(inv.find("PARTUUID=0D4C1A2B-02").unwrap().path, "/dev/sda2");
    // Not a kernel name: never remapped.
    assert!(inv.remap("UUID=x").is_empty());
}

#[test]
fn inventory_accepts_other_lsblk_shapes() {
    // util-linux ≥ 2.37 `mountpoints`, no `path` column, LVM children, NAME only.
    let json = r#"{"blockdevices":[
        {"name":"nvme0n1","kname":"nvme0n1","type":"disk","children":[
            {"name":"nvme0n1p3","kname":"nvme0n1p3","type":"part","fstype":"LVM2_member","children":[
                {"name":"pve-root","kname":"dm-1","type":"lvm","uuid":"11111111-2222-4333-8444-555555555555","fstype":"ext4","mountpoints":["/", null]},
                {"name":"pve-data","kname":"dm-2","type":"lvm","uuid":"66666666-2222-4333-8444-555555555555","fstype":"ext4","mountpoints":[null]}
            ]}
        ]},
        {"name":"sr0"}
    ]}"#;
    let inv = Inventory::from_lsblk_json(json).unwrap();
    assert_eq!(inv.devices().len(), 5);
    let root = inv.root_device().unwrap();
    assert_eq!(root.path, "/dev/mapper/pve-root");
    assert!(root.is_named("/dev/dm-1") && root.is_named("/dev/pve/root"));
    assert_eq!(inv.find("/dev/pve/data").unwrap().aliases, ["/dev/dm-2"]);
    assert!(Inventory::from_lsblk_json("{}").is_err());
    assert!(Inventory::from_lsblk_json("not json").is_err());
    let (inv, warnings) = Inventory::from_files([
        ("lsblk_json.json", "{broken"),
        ("lsblk.txt", "NAME FSTYPE\nsda1 ext4\n"),
        (
            "blkid.txt",
            "/dev/sdb1: UUID=\"u1\" TYPE=\"ext4\"\ngarbage line\n",
        ),
    ]);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .to_string()
            .starts_with("lsblk_json.json: not read: not valid JSON")
    );
    assert_eq!(inv.devices().len(), 1);
    // `blkid -o export`.
    let inv = Inventory::from_blkid(
        "DEVNAME=/dev/sdb1\nUUID=u1\nLABEL=my\\ disk\nTYPE=ext4\n\nDEVNAME=/dev/sdc1\nPARTUUID=p2\n",
    );
    assert_eq!(
        inv.find("/dev/sdb1").unwrap().label.as_deref(),
        Some("my disk")
    );
    assert_eq!(
        inv.find("/dev/sdc1").unwrap().partuuid.as_deref(),
        Some("p2")
    );
    assert_eq!(
        InventoryFormat::of("x/lsblk_json.json"),
        Some(InventoryFormat::LsblkJson)
    );
    assert_eq!(
        InventoryFormat::of("blkid.txt"),
        Some(InventoryFormat::Blkid)
    );
    assert_eq!(InventoryFormat::of("lsblk.txt"), None);
}

// ---------------------------------------------------------------------------------------------
// Merge

fn expected_block() -> String {
    format!(
        "
# --- proxsave: mounts restored from backup oldhost/2024-05-01 ---
192.168.10.5:/export/pve-backup /mnt/nas    nfs  vers=4.2,hard,_netdev,nofail   0 0
//fileserver.lan/media /mnt/media cifs username=svc,password=S3cr3t!pw,vers=3.0,_netdev,nofail 0 0
UUID={DATA_HERE} /mnt/data ext4 defaults,nofail 0 2
# /dev/sdb1 in the backup (line 13) is UUID={SDB1_UUID} here
UUID={SDB1_UUID} /srv/backup-disk ext4 defaults,nofail 0 2
# --- end proxsave ---
"
    )
}

#[test]
fn older_host_backup_onto_fresh_pve() {
    let r = run(FRESH_PVE, &old_backup(), Choice::All);
    assert_eq!(r.text, format!("{FRESH_PVE}{}", expected_block()));
    assert_eq!(
        r.added,
        ["/mnt/nas", "/mnt/media", "/mnt/data", "/srv/backup-disk"]
    );
    let shown: Vec<String> = r.proposals.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "192.168.10.5:/export/pve-backup → /mnt/nas (nfs)".to_owned(),
            "//fileserver.lan/media → /mnt/media (cifs)".to_owned(),
            format!("UUID={DATA_HERE} → /mnt/data (ext4)"),
            format!("UUID={SDB1_UUID} → /srv/backup-disk (ext4) [was /dev/sdb1 in the backup]"),
        ]
    );
    assert_eq!(r.proposals[0].kind, ProposalKind::Network);
    assert_eq!(r.proposals[2].kind, ProposalKind::Device);
    let skipped: Vec<(&str, &SkipReason)> = r
        .skipped
        .iter()
        .map(|s| (s.mountpoint.as_str(), &s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            ("/", &SkipReason::Critical),
            ("/boot/efi", &SkipReason::Critical),
            ("none", &SkipReason::Swap),
            ("/proc", &SkipReason::Pseudo),
            ("/tmp", &SkipReason::Pseudo),
            (
                "/mnt/archive",
                &SkipReason::NotPresent(StableRef::Tag(Tag::Uuid, DATA_GONE.into()))
            ),
            ("/srv/scratch", &SkipReason::NoStableRef),
        ]
    );
    assert_eq!(
        r.skipped[5].to_string(),
        format!(
            "UUID={DATA_GONE} → /mnt/archive (ext4): UUID={DATA_GONE} does not exist on this host"
        )
    );
    assert!(
        r.skipped[6]
            .to_string()
            .starts_with("/dev/sdc1 → /srv/scratch (xfs): a kernel device name")
    );
    assert!(r.warnings.is_empty());
    // Another machine: nothing by default, as upstream.
    assert_eq!(r.default_choice, Choice::None);
    assert!(matches!(r.root, RootMatch::Different { .. }));
    // Options never shown.
    let all = format!("{:?} {:?} {}", r.proposals, r.skipped, shown.join(" "));
    assert!(!all.contains("S3cr3t"), "{all}");
    assert!(r.proposals[1].fstab_line().contains("password=S3cr3t!pw"));
}

#[test]
fn choice_none_leaves_the_file_alone() {
    let r = run(FRESH_PVE, &old_backup(), Choice::None);
    assert_eq!(r.text, FRESH_PVE);
    assert!(!r.changed());
    assert_eq!(r.proposals.len(), 4);
}

#[test]
fn choosing_some_mountpoints() {
    let r = run(
        FRESH_PVE,
        &old_backup(),
        "/mnt/data/, /mnt/nas".parse().unwrap(),
    );
    assert_eq!(r.added, ["/mnt/nas", "/mnt/data"]);
    assert!(r.text.starts_with(FRESH_PVE));
    assert!(!r.text.contains("/mnt/media"));
    // A skipped or unknown mountpoint is an error naming it (and why).
    let err = merge(
        &Fstab::parse(FRESH_PVE),
        &Fstab::parse(&old_backup()),
        &old_inventory(),
        &here,
        "",
        "/mnt/nas,/mnt/archive,/nope".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "/mnt/archive is not a safe proposal (UUID={DATA_GONE} does not exist on this host); \
             /nope is not a safe proposal (the backup's fstab does not mount it)"
        )
    );
    let err = merge(
        &Fstab::parse(FRESH_PVE),
        &Fstab::parse(&old_backup()),
        &old_inventory(),
        &here,
        "",
        Choice::Mountpoints(vec!["/".into()]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/ is not a safe proposal (a system mountpoint")
    );
}

#[test]
fn choice_parses_and_prints() {
    assert_eq!("all".parse::<Choice>().unwrap(), Choice::All);
    assert_eq!(" None ".parse::<Choice>().unwrap(), Choice::None);
    assert_eq!(
        "/mnt/a\\040b/,/srv/x".parse::<Choice>().unwrap(),
        Choice::Mountpoints(vec!["/mnt/a b".into(), "/srv/x".into()])
    );
    assert!("".parse::<Choice>().is_err());
    assert!(" , ".parse::<Choice>().is_err());
    assert!("mnt/x".parse::<Choice>().is_err());
    assert_eq!(
        Choice::Mountpoints(vec!["/a".into(), "/b".into()]).to_string(),
        "/a,/b"
    );
    assert_eq!(Choice::All.to_string(), "all");
}

#[test]
fn a_second_run_adds_nothing() {
    let first = run(FRESH_PVE, &old_backup(), Choice::All);
    let second = run(&first.text, &old_backup(), Choice::All);
    assert_eq!(second.text, first.text);
    assert!(second.proposals.is_empty() && !second.changed());
    let restored = second
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::AlreadyRestored)
        .count();
    assert_eq!(restored, 4);
    // A partial first run: the second adds the rest in a second block.
    let partial = run(FRESH_PVE, &old_backup(), "/mnt/nas".parse().unwrap());
    let rest = run(&partial.text, &old_backup(), Choice::All);
    assert_eq!(rest.added, ["/mnt/media", "/mnt/data", "/srv/backup-disk"]);
    assert!(rest.text.starts_with(&partial.text));
    assert_eq!(rest.text.matches(BLOCK_END).count(), 2);
}

#[test]
fn same_machine_defaults_to_all() {
    // Same root UUID.
    let backup = old_backup().replace(
        "UUID=1e2d3c4b-0000-4000-8000-000000000001",
        &format!("UUID={CURRENT_ROOT_UUID}"),
    );
    let r = run(FRESH_PVE, &backup, Choice::None);
    assert_eq!(r.default_choice, Choice::All);
    assert_eq!(
        r.root,
        RootMatch::Same {
            device: format!("UUID={CURRENT_ROOT_UUID}")
        }
    );
    // The backup names its root by kernel name; its inventory gives that device's UUID,
    // which is this host's root.
    let backup = old_backup().replace("UUID=1e2d3c4b-0000-4000-8000-000000000001 /", "/dev/sda2 /");
    let current = FRESH_PVE.replace(CURRENT_ROOT_UUID, "1E2D3C4B-0000-4000-8000-000000000001");
    let r = run(&current, &backup, Choice::None);
    assert_eq!(r.default_choice, Choice::All, "{:?}", r.root);
    // Kernel names are never matched across machines through the inventory.
    let current = FRESH_PVE.replace(&format!("UUID={CURRENT_ROOT_UUID}"), "/dev/sdX2");
    let r = run(
        &current,
        &old_backup().replace("/dev/sda3 none", "/dev/sdX2 none"),
        Choice::None,
    );
    assert_eq!(r.default_choice, Choice::None);
    // PVE's LVM root, spelled two ways.
    let current = "/dev/pve/root / ext4 errors=remount-ro 0 1\n";
    let backup =
        "/dev/mapper/pve-root / ext4 errors=remount-ro 0 1\nserver:/x /mnt/x nfs defaults 0 0\n";
    let r = run(current, backup, Choice::None);
    assert_eq!(r.default_choice, Choice::All);
    // No root on one side: not comparable, nothing by default.
    let r = run(
        "proc /proc proc defaults 0 0\n",
        &old_backup(),
        Choice::None,
    );
    assert_eq!(r.root, RootMatch::NotComparable(FstabFile::Current));
    assert_eq!(r.default_choice, Choice::None);
}

#[test]
fn mountpoints_compare_after_normalisation_and_duplicates_come_once() {
    let current = "UUID=r / ext4 defaults 0 1\nserver:/a /mnt/my\\040share nfs defaults 0 0\n";
    let backup = "\
server:/b /mnt/my\\040share/ nfs defaults 0 0
server:/c /mnt/new/ nfs defaults 0 0
server:/d /mnt//new nfs defaults 0 0
/dev/sdz9 /mnt/dup ext4 defaults 0 0
server:/e /mnt/dup nfs defaults 0 0
server:/f /mnt/dup/ nfs defaults 0 0
";
    let r = run(current, backup, Choice::All);
    let mps: Vec<&str> = r.proposals.iter().map(|p| p.mountpoint.as_str()).collect();
    assert_eq!(mps, ["/mnt/new", "/mnt/dup"]);
    let reasons: Vec<(usize, &SkipReason)> = r
        .skipped
        .iter()
        .map(|s| (s.backup_line, &s.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (1, &SkipReason::MountpointInUse),
            (3, &SkipReason::Duplicate { line: 2 }),
            (4, &SkipReason::NoStableRef),
            (6, &SkipReason::Duplicate { line: 5 }),
        ]
    );
}

#[test]
fn options_get_nofail_and_netdev_once() {
    let backup = "\
server:/a /mnt/a nfs defaults,_netdev,nofail 0 0
server:/b /mnt/b nfs nofail 0 0
server:/c\t/mnt/c\tnfs
server:/d /mnt/d nfs # the NAS
UUID=here-1 /mnt/e ext4 nofail,noatime 0 2
UUID=here-2 /mnt/f ext4 _netdev 0 0
";
    let present = |r: &StableRef| r.to_string().starts_with("UUID=here");
    let r = merge(
        &Fstab::parse(""),
        &Fstab::parse(backup),
        &Inventory::new(),
        &present,
        "",
        Choice::All,
    )
    .unwrap();
    assert_eq!(
        r.text,
        "\
# --- proxsave: mounts restored from backup ---
server:/a /mnt/a nfs defaults,_netdev,nofail 0 0
server:/b /mnt/b nfs nofail,_netdev 0 0
server:/c\t/mnt/c\tnfs defaults,_netdev,nofail
server:/d /mnt/d nfs defaults,_netdev,nofail # the NAS
UUID=here-1 /mnt/e ext4 nofail,noatime 0 2
UUID=here-2 /mnt/f ext4 _netdev,nofail 0 0
# --- end proxsave ---
"
    );
}

#[test]
fn remap_takes_the_first_reference_present_here() {
    let backup = "/dev/sdb1 /srv/b ext4 defaults 0 2\n/dev/sda2 /srv/a ext4 defaults 0 2\n";
    let present = |r: &StableRef| r.key() == "PARTUUID=9f8e7d6c-5b4a-4321-8765-43210fedcba9";
    let r = merge(
        &Fstab::parse(""),
        &Fstab::parse(backup),
        &old_inventory(),
        &present,
        "h",
        Choice::All,
    )
    .unwrap();
    assert_eq!(r.proposals.len(), 1);
    assert_eq!(
        r.proposals[0].device,
        "PARTUUID=9f8e7d6c-5b4a-4321-8765-43210fedcba9"
    );
    assert_eq!(r.proposals[0].remapped_from.as_deref(), Some("/dev/sdb1"));
    let SkipReason::RemapNotPresent(refs) = &r.skipped[0].reason else {
        panic!("{:?}", r.skipped);
    };
    assert_eq!(refs.len(), 2);
    assert!(r.skipped[0].to_string().contains(
        "on the backed-up host it was UUID=1e2d3c4b-0000-4000-8000-000000000001 / PARTUUID=0d4c1a2b-02"
    ));
}

#[test]
fn devices_and_mounts_of_this_host_are_not_shadowed() {
    let current =
        format!("UUID={DATA_HERE} /data ext4 defaults 0 2\nserver:/x /srv/a/b nfs defaults 0 0\n");
    let backup = format!(
        "/dev/disk/by-uuid/{DATA_HERE} /mnt/data ext4 defaults 0 2\nserver:/y /srv/a nfs defaults 0 0\nserver:/z /srv/a/b/c nfs defaults 0 0\n"
    );
    let r = run(&current, &backup, Choice::All);
    assert_eq!(r.added, ["/srv/a/b/c"]);
    assert_eq!(
        r.skipped[0].reason,
        SkipReason::DeviceInUse {
            mountpoint: "/data".into()
        }
    );
    assert_eq!(
        r.skipped[1].reason,
        SkipReason::ParentOfExisting {
            below: "/srv/a/b".into()
        }
    );
}

#[test]
fn parents_come_before_what_is_mounted_below_them() {
    let backup = "server:/a /mnt/nas/sub nfs defaults 0 0\nserver:/b /mnt/nas nfs defaults 0 0\n";
    let r = run("", backup, Choice::All);
    assert_eq!(r.added, ["/mnt/nas", "/mnt/nas/sub"]);
}

#[test]
fn the_block_follows_the_files_line_ends() {
    let r = run(
        "UUID=r / ext4 defaults 0 1",
        "server:/a /mnt/a nfs defaults 0 0\n",
        Choice::All,
    );
    assert_eq!(
        r.text,
        "UUID=r / ext4 defaults 0 1\n\n# --- proxsave: mounts restored from backup oldhost/2024-05-01 ---\nserver:/a /mnt/a nfs defaults,_netdev,nofail 0 0\n# --- end proxsave ---\n"
    );
    let r = run(
        "UUID=r / ext4 defaults 0 1\r\n",
        "server:/a /mnt/a nfs defaults 0 0\r\n",
        Choice::All,
    );
    assert_eq!(
        r.text,
        "UUID=r / ext4 defaults 0 1\r\n\r\n# --- proxsave: mounts restored from backup oldhost/2024-05-01 ---\r\nserver:/a /mnt/a nfs defaults,_netdev,nofail 0 0\r\n# --- end proxsave ---\r\n"
    );
    // A hostile origin cannot break the marker line.
    let r = merge(
        &Fstab::parse(""),
        &Fstab::parse("server:/a /mnt/a nfs defaults 0 0\n"),
        &Inventory::new(),
        &|_| false,
        "evil\nUUID=x / ext4",
        Choice::All,
    )
    .unwrap();
    assert_eq!(Fstab::parse(&r.text).entries().count(), 1);
}

#[test]
fn warnings_name_file_and_line() {
    let r = run(
        "UUID=r / ext4 defaults 0 1\nbroken\n",
        "x /mnt/x\n",
        Choice::All,
    );
    let w: Vec<String> = r.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "this host's fstab, line 2: not a valid fstab entry (1 field, at least 3 needed (device, mountpoint, type)); kept as it is",
            "the backup's fstab, line 1: not a valid fstab entry (2 fields, at least 3 needed (device, mountpoint, type)); kept as it is",
        ]
    );
}

#[test]
fn other_sources_and_relative_mountpoints_are_skipped() {
    let backup = "/srv/x /mnt/bind none bind 0 0\nrpool/d /mnt/z zfs defaults 0 0\nserver:/a relative nfs defaults 0 0\nUUID=x /usr ext4 defaults 0 0\nUUID=x /var/ ext4 defaults 0 0\n";
    let r = run("", backup, Choice::All);
    assert!(r.proposals.is_empty());
    let reasons: Vec<&SkipReason> = r.skipped.iter().map(|s| &s.reason).collect();
    assert_eq!(
        reasons,
        [
            &SkipReason::Unsupported,
            &SkipReason::Unsupported,
            &SkipReason::NotAbsolute,
            &SkipReason::Critical,
            &SkipReason::Critical,
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// stable_ref_present

#[test]
fn presence_is_checked_inside_the_root_without_following_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    let by_uuid = root.join("dev/disk/by-uuid");
    std::fs::create_dir_all(&by_uuid).unwrap();
    std::fs::create_dir_all(root.join("dev/disk/by-label")).unwrap();
    std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
    std::fs::create_dir_all(root.join("dev/pve")).unwrap();
    std::fs::create_dir_all(outside.join("by-partuuid")).unwrap();
    // Dangling, as in a root whose /dev is not populated: the entry itself counts.
    symlink("../../sdb1", by_uuid.join(SDB1_UUID)).unwrap();
    symlink("../../sda1", by_uuid.join("4A1B-2C3D")).unwrap();
    symlink("../../sdc1", root.join("dev/disk/by-label/my\\x20disk")).unwrap();
    std::fs::write(root.join("dev/mapper/vg0-data"), b"").unwrap();
    symlink("../dm-3", root.join("dev/pve/data")).unwrap();
    // by-partuuid is a link leading out of the root.
    std::fs::write(outside.join("by-partuuid/p-outside"), b"").unwrap();
    symlink(
        outside.join("by-partuuid"),
        root.join("dev/disk/by-partuuid"),
    )
    .unwrap();

    let fd = proxsave_archive::dirfd::open_root(&root).unwrap();
    let p = |s: &str| stable_ref_present(fd.as_fd(), &StableRef::parse(s).unwrap());
    assert!(p(&format!("UUID={SDB1_UUID}")));
    assert!(p(&format!("/dev/disk/by-uuid/{SDB1_UUID}")));
    assert!(p("UUID=4a1b-2c3d"), "vfat UUIDs in either case");
    assert!(p("LABEL=my disk"));
    assert!(p("/dev/disk/by-label/my\\x20disk"));
    assert!(p("/dev/mapper/vg0-data"));
    assert!(p("/dev/pve/data"));
    assert!(!p(&format!("UUID={DATA_GONE}")));
    assert!(!p("LABEL=other"));
    assert!(!p("/dev/mapper/nope"));
    assert!(!p("/dev/vg1/data"));
    assert!(
        !p("PARTUUID=p-outside"),
        "a link out of the root is not followed"
    );
    // The same check answers on the live root too (whatever this machine has).
    let live = proxsave_archive::dirfd::open_root(Path::new("/")).unwrap();
    let _ = stable_ref_present(live.as_fd(), &StableRef::Tag(Tag::Uuid, "x".into()));
}

// ---------------------------------------------------------------------------------------------
// findmnt --verify

/// `findmnt --verify --tab-file` (util-linux 2.38) on a file with an NFS, a CIFS, a data disk,
/// a duplicate target and a bad line, captured on a machine without those disks.
const FINDMNT_STDOUT: &str = "\
/
   [E] unreachable on boot required source: UUID=1111-aaaa
/boot/efi
   [E] unreachable on boot required target: No such file or directory
   [E] unreachable on boot required source: UUID=2222
none
   [E] unreachable on boot required source: UUID=3333
/mnt/nas
   [E] unreachable on boot required target: No such file or directory
/mnt/data
   [E] unreachable on boot required target: No such file or directory
   [E] unreachable on boot required source: UUID=4444
/mnt/x
   [W] target specified more than once
   [E] unreachable on boot required target: No such file or directory
   [W] unreachable source: /dev/sdb1: No such file or directory
   [W] cannot detect on-disk filesystem type (No such file or directory)
/mnt/x
   [E] unreachable on boot required target: No such file or directory
   [W] unreachable source: /dev/sdb1: No such file or directory
   [W] cannot detect on-disk filesystem type (No such file or directory)
/proc
   [ ] target exists
   [ ] do not check proc source (pseudo/net)
   [W] your fstab has been modified, but systemd still uses the old version;
       use 'systemctl daemon-reload' to reload
";
const FINDMNT_STDERR: &str = "findmnt: /tmp/x/new: parse error at line 12 -- ignored

1 parse error, 12 errors, 6 warnings
";

#[test]
fn findmnt_output_is_read() {
    let r = VerifyReport::parse(FINDMNT_STDOUT, FINDMNT_STDERR);
    assert_eq!(r.findings.len(), 18);
    let blocking: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.blocks())
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        blocking,
        [
            "warning: /mnt/x: target specified more than once",
            "error: parse error at line 12",
        ]
    );
    let reload = &r.findings[16];
    assert_eq!(
        reload.message,
        "your fstab has been modified, but systemd still uses the old version; use 'systemctl daemon-reload' to reload"
    );
    assert!(reload.is_environment());
    assert_eq!(r.findings[15].level, Level::Info);
    assert_eq!(
        VerifyReport::parse("Success, no errors or warnings detected\n", ""),
        VerifyReport::default()
    );
    // A run that could not read its file refuses.
    let cannot = VerifyReport::parse(
        "",
        "findmnt: can't read /tmp/x: No such file or directory\n",
    );
    assert_eq!(
        blocking_findings(&VerifyReport::default(), &cannot).len(),
        1
    );
}

#[test]
fn only_new_findings_refuse() {
    let old = VerifyReport::parse(FINDMNT_STDOUT, FINDMNT_STDERR);
    assert!(blocking_findings(&old, &old).is_empty());
    let more = format!(
        "{FINDMNT_STDOUT}/srv/a\n   [E] wrong order: /srv/a/b specified before /srv/a\n/mnt/x\n   [W] target specified more than once\n"
    );
    let new = VerifyReport::parse(
        &more,
        "findmnt: other-name: parse error at line 12 -- ignored\nfindmnt: other-name: parse error at line 20 -- ignored\n",
    );
    let b: Vec<String> = blocking_findings(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        b,
        [
            "error: /srv/a: wrong order: /srv/a/b specified before /srv/a",
            "warning: /mnt/x: target specified more than once",
            "error: parse error at line 20",
        ]
    );
}

fn findmnt_verify(dir: &Path, name: &str, text: &str) -> VerifyReport {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("findmnt")
        .args(["--verify", "--tab-file"])
        .arg(&path)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    VerifyReport::parse(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn real_findmnt_accepts_the_merge_and_refuses_new_faults() {
    proxsave_testkit::require_tools!("findmnt");
    let tmp = tempfile::tempdir().unwrap();
    let old = findmnt_verify(tmp.path(), "old", FRESH_PVE);
    // On this machine the fresh PVE's disks do not exist: unreachable findings only.
    assert!(old.findings.iter().any(Finding::is_unreachable), "{old:?}");
    let merged = run(FRESH_PVE, &old_backup(), Choice::All);
    let new = findmnt_verify(tmp.path(), "new", &merged.text);
    assert!(new.findings.len() > old.findings.len(), "{new:?}");
    assert_eq!(blocking_findings(&old, &new), [], "{new:?}");

    // Faults the merge must never bring: a bad line, a duplicate target, a wrong order.
    let bad = format!(
        "{}server:/a /mnt/nas nfs defaults,nofail 0 0\nUUID=x /mnt/y ext4 defaults x 0\nserver:/b /mnt nfs defaults,nofail 0 0\n",
        merged.text
    );
    let new = findmnt_verify(tmp.path(), "bad", &bad);
    let mut b: Vec<String> = blocking_findings(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    b.sort();
    let bad_line = bad.lines().count() - 1;
    // The second /mnt/nas line is out of order too.
    assert_eq!(
        b,
        [
            "error: /mnt/data: wrong order: /mnt/data specified before /mnt".to_owned(),
            "error: /mnt/media: wrong order: /mnt/media specified before /mnt".to_owned(),
            "error: /mnt/nas: wrong order: /mnt/nas specified before /mnt".to_owned(),
            "error: /mnt/nas: wrong order: /mnt/nas specified before /mnt".to_owned(),
            format!("error: parse error at line {bad_line}"),
            "warning: /mnt/nas: target specified more than once".to_owned(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests

mod props {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn config() -> Config {
        Config {
            cases: 256,
            rng_seed: RngSeed::Fixed(0x0f57_ab00),
            failure_persistence: None,
            ..Config::default()
        }
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "UUID=[0-9a-f]{1,4}",
            "/dev/sd[a-c][0-9]?",
            "/mnt/[a-c]{1,3}/?",
            Just("none".to_owned()),
            Just("ext4".to_owned()),
            Just("nfs".to_owned()),
            "defaults(,nofail)?(,password=hunter2)?",
            "[0-2]",
            "#[a-z ]{0,5}",
            Just("a\\040b".to_owned()),
            Just("\\".to_owned()),
            "[a-z:/=]{1,6}",
        ]
    }

    fn fstab_like() -> impl Strategy<Value = String> {
        let line = (
            "[ \t]{0,2}",
            prop::collection::vec((field(), "[ \t]{1,3}"), 0..8),
            prop_oneof![Just("\n"), Just("\r\n"), Just(""), Just("\r")],
        )
            .prop_map(|(lead, fields, end)| {
                let mut s = lead;
                for (f, sep) in fields {
                    s.push_str(&f);
                    s.push_str(&sep);
                }
                s.push_str(end);
                s
            });
        prop::collection::vec(line, 0..12).prop_map(|l| l.concat())
    }

    const SPECS: &[&str] = &[
        "UUID=aaaa-1111",
        "UUID=bbbb-2222",
        "UUID=cccc-3333",
        "/dev/sdb1",
        "/dev/sdc1",
        "/dev/sdd1",
        "server:/export",
        "//nas/share",
        "proc",
        "tmpfs",
        "/dev/pve/root",
        "/dev/mapper/pve-root",
        "LABEL=data",
        "LABEL=my\\040data",
        "/srv/bind",
    ];
    const MOUNTPOINTS: &[&str] = &[
        "/",
        "/boot",
        "/boot/",
        "/boot/efi",
        "/usr",
        "/var",
        "/mnt/a",
        "/mnt/a/",
        "/mnt/a/b",
        "/mnt/b",
        "none",
        "/srv/x",
        "/mnt/a\\040b",
        "/mnt//c",
        "relative",
        "/mnt",
    ];
    const TYPES: &[&str] = &[
        "ext4", "xfs", "nfs", "cifs", "swap", "proc", "tmpfs", "none",
    ];
    const OPTIONS: &[&str] = &[
        "",
        " defaults",
        " defaults,nofail",
        " _netdev",
        " sw",
        " username=u,password=hunter2",
        " defaults 0 2",
        " bind 0 0 # c",
    ];

    fn merge_line() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => (
                prop::sample::select(SPECS),
                prop::sample::select(MOUNTPOINTS),
                prop::sample::select(TYPES),
                prop::sample::select(OPTIONS),
                "[ \t]{1,2}",
            )
                .prop_map(|(s, m, t, o, sep)| format!("{s}{sep}{m}{sep}{t}{o}\n")),
            1 => Just("# comment\n".to_owned()),
            1 => Just("\n".to_owned()),
            1 => Just("garbage /x\n".to_owned()),
        ]
    }

    fn merge_file() -> impl Strategy<Value = String> {
        (prop::collection::vec(merge_line(), 0..10), any::<bool>()).prop_map(|(l, cut)| {
            let mut s = l.concat();
            if cut {
                s.pop();
            }
            s
        })
    }

    fn inventory() -> Inventory {
        Inventory::from_blkid(
            "/dev/sdb1: UUID=\"bbbb-2222\" TYPE=\"ext4\"\n/dev/sdc1: UUID=\"cccc-3333\" LABEL=\"data\"\n",
        )
    }

    fn present(r: &StableRef) -> bool {
        let k = r.key();
        k.contains("aaaa") || k.contains("bbbb") || k == "LABEL=data" || k.contains("mapper")
    }

    fn do_merge(current: &str, backup: &str, choice: Choice) -> MergeResult {
        merge(
            &Fstab::parse(current),
            &Fstab::parse(backup),
            &inventory(),
            &present,
            "h/d",
            choice,
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            prop_assert_eq!(Fstab::parse(&s).to_string(), s);
        }

        #[test]
        fn fstab_characters_round_trip(s in "[ \t\r\n#a-zA-Z0-9/=\\\\,.:\"]{0,300}") {
            prop_assert_eq!(Fstab::parse(&s).to_string(), s);
        }

        #[test]
        fn fstab_like_text_round_trips(s in fstab_like()) {
            let f = Fstab::parse(&s);
            prop_assert_eq!(f.to_string(), s.clone());
            for w in f.warnings() {
                prop_assert!(!w.to_string().contains("hunter2"));
                prop_assert!(w.line >= 1 && w.line <= f.lines().len());
            }
        }

        #[test]
        fn merge_keeps_the_current_file_and_only_adds_safe_mounts(
            current in merge_file(),
            backup in merge_file(),
        ) {
            let r = do_merge(&current, &backup, Choice::All);
            prop_assert!(r.text.starts_with(&current));
            let before = Fstab::parse(&current);
            let existing: Vec<&str> = before.entries().map(|(_, e)| e.mountpoint()).collect();
            for p in &r.proposals {
                prop_assert!(p.mountpoint.starts_with('/'));
                prop_assert!(!CRITICAL_MOUNTPOINTS.contains(&p.mountpoint.as_str()), "{}", p);
                prop_assert!(!existing.contains(&p.mountpoint.as_str()), "{}", p);
                prop_assert!(!p.to_string().contains("hunter2"));
                let dbg = format!("{p:?}");
                prop_assert!(!dbg.contains("hunter2"));
            }
            for s in &r.skipped {
                prop_assert!(!s.to_string().contains("hunter2"));
            }
            // Each added mountpoint once, as an entry with nofail.
            let after = Fstab::parse(&r.text);
            for m in &r.added {
                let found: Vec<&Entry> = after
                    .entries()
                    .map(|(_, e)| e)
                    .filter(|e| e.mountpoint() == m)
                    .collect();
                prop_assert_eq!(found.len(), 1, "{}", m);
                prop_assert!(found[0].has_option("nofail"));
            }
            // No line of the current file reads differently (e.g. a last line without end).
            let old_entries: Vec<&Entry> = before.entries().map(|(_, e)| e).collect();
            let new_entries: Vec<&Entry> =
                after.entries().map(|(_, e)| e).take(old_entries.len()).collect();
            prop_assert_eq!(old_entries, new_entries);
            // Idempotent.
            let again = do_merge(&r.text, &backup, Choice::All);
            prop_assert_eq!(&again.text, &r.text);
            prop_assert!(again.added.is_empty());
            // None changes nothing; a chosen subset is accepted.
            prop_assert_eq!(do_merge(&current, &backup, Choice::None).text, current.clone());
            let some: Vec<String> = r.proposals.iter().step_by(2).map(|p| p.mountpoint.clone()).collect();
            let sub = do_merge(&current, &backup, Choice::Mountpoints(some.clone()));
            prop_assert_eq!(sub.added.len(), some.len());
        }
    }
}
