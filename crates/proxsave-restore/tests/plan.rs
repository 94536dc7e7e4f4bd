//! The plan is pure: analysis + host role + request → categories per tier, decisions needed,
//! services stopped. The scenarios of restore-engine.md §11.4 (1–7), with the defects of §10
//! fixed (SAFE/RECOVERY only for cluster backups; FULL never writes another role's files).

use proxsave_archive::manifest::Manifest;
use proxsave_archive::path::ArchivePath;
use proxsave_categories::{Analyzer, BackupType, HostRole, Mode, TypeSource};
use proxsave_restore::plan::{self, ClusterMode, Decision, PbsBehavior, PlanError, Request, Tier};

use proxsave_net as _;
use proxsave_pbs as _;
use proxsave_pve as _;

fn analysis(paths: &[&str], metadata: Option<&str>) -> proxsave_categories::Analysis {
    let mut a = Analyzer::new();
    for p in paths {
        a.observe(&ArchivePath::from_user(p).unwrap());
    }
    if let Some(m) = metadata {
        let p = ArchivePath::from_user("var/lib/proxsave-info/backup_metadata.txt").unwrap();
        a.observe(&p);
        assert!(a.wants_content(&p, proxsave_archive::entry::EntryKind::File, m.len() as u64));
        a.observe_metadata(m.as_bytes());
    }
    a.finish(&Manifest::default())
}

fn no_appliers(_: &str) -> bool {
    false
}

fn req(mode: Mode, cats: &[&str]) -> Request {
    Request {
        mode: Some(mode),
        categories: cats.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    }
}

fn tier_of(p: &plan::Plan, id: &str) -> Option<Tier> {
    p.categories
        .iter()
        .find(|c| c.category.id == id)
        .map(|c| c.tier)
}

#[test]
fn analysis_finds_categories_type_and_hostname() {
    let a = analysis(&["etc/hostname"], None);
    assert_eq!(
        a.available.iter().map(|c| c.id).collect::<Vec<_>>(),
        ["network"]
    );
    assert_eq!(a.backup_type, BackupType::Unknown);

    let a = analysis(&["etc/pve/storage.cfg"], None);
    assert!(a.has("pve_config_export") && a.has("storage_pve"));
    assert_eq!(
        (a.backup_type, a.type_source),
        (BackupType::Pve, TypeSource::Categories)
    );

    let a = analysis(&["etc/hosts"], Some("BACKUP_TYPE=pbs\nHOSTNAME=pbs-node\n"));
    assert_eq!(
        (a.backup_type, a.type_source),
        (BackupType::Pbs, TypeSource::InternalMetadata)
    );
    assert_eq!(a.hostname.as_deref(), Some("pbs-node"));
    assert!(!a.cluster_payload);
}

#[test]
fn oversized_metadata_is_ignored_with_a_warning() {
    let mut a = Analyzer::new();
    let p = ArchivePath::from_user("var/lib/proxsave-info/backup_metadata.txt").unwrap();
    a.observe(&p);
    assert!(!a.wants_content(&p, proxsave_archive::entry::EntryKind::File, 9 * 1024));
    let a = a.finish(&Manifest::default());
    assert!(a.metadata.is_none());
    assert!(a.warnings[0].contains("ignored"));
}

#[test]
fn safe_or_recovery_is_asked_only_for_cluster_backups() {
    let standalone = analysis(
        &["var/lib/pve-cluster/config.db"],
        Some("PVE_CLUSTER_MODE=standalone\n"),
    );
    assert!(standalone.cluster_payload);
    let p = plan::build(
        &standalone,
        HostRole::Pve,
        &req(Mode::Full, &[]),
        &no_appliers,
    )
    .unwrap();
    assert_eq!(p.cluster_mode, None);
    assert!(p.needs_cluster_restore);
    assert_eq!(
        p.services_to_stop,
        ["pve-cluster", "pvedaemon", "pveproxy", "pvestatd"]
    );

    let cluster = analysis(
        &["var/lib/pve-cluster/config.db"],
        Some("PVE_CLUSTER_MODE=cluster\n"),
    );
    let err =
        plan::build(&cluster, HostRole::Pve, &req(Mode::Full, &[]), &no_appliers).unwrap_err();
    assert_eq!(err, PlanError::Missing(Decision::ClusterMode));
    assert_eq!(
        plan::missing_decisions(&cluster, HostRole::Pve, &req(Mode::Full, &[])),
        [Decision::ClusterMode]
    );
    // SAFE moves the database to the export folder and stops nothing; RECOVERY writes it.
    let mut r = req(Mode::Full, &[]);
    r.cluster_mode = Some(ClusterMode::Safe);
    let safe = plan::build(&cluster, HostRole::Pve, &r, &no_appliers).unwrap();
    assert_eq!(tier_of(&safe, "pve_cluster"), Some(Tier::Export));
    assert!(!safe.needs_cluster_restore && safe.services_to_stop.is_empty());
    r.cluster_mode = Some(ClusterMode::Recovery);
    let rec = plan::build(&cluster, HostRole::Pve, &r, &no_appliers).unwrap();
    assert_eq!(tier_of(&rec, "pve_cluster"), Some(Tier::Normal));
    assert!(rec.needs_cluster_restore);
}

#[test]
fn modes_select_what_the_guide_says() {
    let paths = [
        "etc/pve/storage.cfg",
        "etc/proxmox-backup/datastore.cfg",
        "etc/proxmox-backup/sync.cfg",
        "etc/network/interfaces",
        "etc/ssh/sshd_config",
        "etc/fstab",
        "etc/zfs/zpool.cache",
        "etc/cron.d/x",
    ];
    let a = analysis(&paths, None);
    // FULL on a PVE host keeps everything; PBS categories are exported, never written.
    let mut r = req(Mode::Full, &[]);
    let full = plan::build(&a, HostRole::Pve, &r, &no_appliers).unwrap();
    assert_eq!(tier_of(&full, "pbs_config"), Some(Tier::Export));
    assert_eq!(tier_of(&full, "datastore_pbs"), Some(Tier::Export));
    assert_eq!(tier_of(&full, "storage_pve"), Some(Tier::Staged));
    assert_eq!(tier_of(&full, "crontabs"), Some(Tier::Normal));
    // STORAGE on a PBS host: datastore + jobs + mounts; the export-only pbs_config never.
    r.mode = Some(Mode::Storage);
    r.pbs_behavior = Some(PbsBehavior::Merge);
    let storage = plan::build(&a, HostRole::Pbs, &r, &no_appliers).unwrap();
    let ids: Vec<&str> = storage.categories.iter().map(|c| c.category.id).collect();
    assert_eq!(ids, ["datastore_pbs", "pbs_jobs", "filesystem", "zfs"]);
    // BASE: only the available base categories.
    let base = plan::build(&a, HostRole::Pve, &req(Mode::Base, &[]), &no_appliers).unwrap();
    let ids: Vec<&str> = base.categories.iter().map(|c| c.category.id).collect();
    assert_eq!(ids, ["filesystem", "network", "ssh"]);
    // fstab is staged, never written raw.
    assert_eq!(tier_of(&base, "filesystem"), Some(Tier::Staged));
}

#[test]
fn custom_split_and_pbs_services() {
    let a = analysis(
        &[
            "etc/network/interfaces",
            "etc/ssh/sshd_config",
            "etc/pve/user.cfg",
            "etc/proxmox-backup/proxy.pem",
        ],
        None,
    );
    let p = plan::build(
        &a,
        HostRole::Pve,
        &req(Mode::Custom, &["network", "ssh", "pve_config_export"]),
        &no_appliers,
    )
    .unwrap();
    assert_eq!(tier_of(&p, "network"), Some(Tier::Staged));
    assert_eq!(tier_of(&p, "ssh"), Some(Tier::Normal));
    assert_eq!(tier_of(&p, "pve_config_export"), Some(Tier::Export));
    // ssl on a PBS host touches etc/proxmox-backup: PBS services are stopped.
    let p = plan::build(
        &a,
        HostRole::Pbs,
        &req(Mode::Custom, &["ssl"]),
        &no_appliers,
    )
    .unwrap();
    assert!(p.needs_pbs_services);
    assert_eq!(
        p.services_to_stop,
        ["proxmox-backup-proxy", "proxmox-backup"]
    );
    // The same on a PVE host stops nothing.
    let p = plan::build(
        &a,
        HostRole::Pve,
        &req(Mode::Custom, &["ssl"]),
        &no_appliers,
    )
    .unwrap();
    assert!(!p.needs_pbs_services);
}

#[test]
fn single_paths_route_by_the_categories_holding_them() {
    let a = analysis(
        &[
            "etc/hosts",
            "etc/ssh/sshd_config",
            "opt/app/app.conf",
            "etc/pve/storage.cfg",
        ],
        None,
    );
    let p = plan::build(
        &a,
        HostRole::Pve,
        &req(
            Mode::Custom,
            &["/etc/ssh/sshd_config", "/opt/app/*", "/etc/pve/storage.cfg"],
        ),
        &no_appliers,
    )
    .unwrap();
    let route = |s: &str| p.route(&ArchivePath::from_user(s).unwrap());
    assert_eq!(route("etc/ssh/sshd_config"), [Tier::Normal]);
    // A file no category holds is restored where it was when named explicitly.
    assert_eq!(route("opt/app/app.conf"), [Tier::Normal]);
    // /etc/pve files: exported and staged, never the root.
    assert_eq!(route("etc/pve/storage.cfg"), [Tier::Staged, Tier::Export]);
    assert!(route("etc/hosts").is_empty());
}

#[test]
fn compatibility_levels() {
    use plan::Compatibility::*;
    assert_eq!(
        plan::compatibility(HostRole::Pve, BackupType::Pve),
        Compatible
    );
    assert_eq!(
        plan::compatibility(HostRole::Pve, BackupType::Unknown),
        Compatible
    );
    assert!(matches!(
        plan::compatibility(HostRole::Pbs, BackupType::Pve),
        Incompatible { .. }
    ));
    assert!(matches!(
        plan::compatibility(HostRole::Pve, BackupType::Dual),
        Partial { .. }
    ));
    assert!(matches!(
        plan::compatibility(HostRole::Unknown, BackupType::Pve),
        UnknownHost { .. }
    ));
}

#[test]
fn without_a_recorded_cluster_mode_a_corosync_configuration_makes_it_a_cluster_backup() {
    // Every PVE backup has the version file: it alone never asks SAFE/RECOVERY.
    let version_only = analysis(
        &[
            "var/lib/pve-cluster/info/pve_version.txt",
            "etc/pve/storage.cfg",
        ],
        None,
    );
    assert!(version_only.cluster_payload && !version_only.is_cluster_backup());
    assert!(
        plan::build(
            &version_only,
            HostRole::Pve,
            &req(Mode::Storage, &[]),
            &no_appliers
        )
        .is_ok()
    );
    // No metadata, no manifest mode, but corosync.conf: asked.
    let clustered = analysis(
        &[
            "var/lib/pve-cluster/config.db",
            "etc/corosync/corosync.conf",
        ],
        None,
    );
    assert!(clustered.is_cluster_backup());
    assert_eq!(
        plan::build(
            &clustered,
            HostRole::Pve,
            &req(Mode::Full, &[]),
            &no_appliers
        )
        .unwrap_err(),
        PlanError::Missing(Decision::ClusterMode)
    );
    // A recorded mode wins.
    let recorded = analysis(
        &["var/lib/pve-cluster/config.db", "etc/pve/corosync.conf"],
        Some("PVE_CLUSTER_MODE=standalone\n"),
    );
    assert!(!recorded.is_cluster_backup());
}

#[test]
fn exported_categories_read_by_an_applier_are_staged_too() {
    let a = analysis(
        &[
            "etc/pve/nodes/pve1/qemu-server/100.conf",
            "etc/pve/storage.cfg",
            "var/lib/pve-cluster/config.db",
        ],
        Some("PVE_CLUSTER_MODE=cluster\n"),
    );
    let mut r = req(Mode::Full, &[]);
    r.cluster_mode = Some(ClusterMode::Safe);
    let p = plan::build(&a, HostRole::Pve, &r, &no_appliers).unwrap();
    let before = |s: &str| p.route(&ArchivePath::from_user(s).unwrap());
    assert_eq!(
        before("etc/pve/nodes/pve1/qemu-server/100.conf"),
        [Tier::Export]
    );
    // Only export-tier categories are taken; others are ignored.
    let p = p.stage_exported(&["pve_config_export", "pve_cluster", "storage_pve"]);
    assert_eq!(p.exported_staged, ["pve_cluster", "pve_config_export"]);
    let route = |s: &str| p.route(&ArchivePath::from_user(s).unwrap());
    let path = |s: &str| ArchivePath::from_user(s).unwrap();
    assert_eq!(
        route("etc/pve/nodes/pve1/qemu-server/100.conf"),
        [Tier::Staged, Tier::Export]
    );
    assert_eq!(
        route("var/lib/pve-cluster/config.db"),
        [Tier::Staged, Tier::Export]
    );
    assert!(p.staged_only_as_export(&path("etc/pve/nodes/pve1/qemu-server/100.conf")));
    // storage.cfg is staged for its own applier as well: shown as staged.
    assert!(!p.staged_only_as_export(&path("etc/pve/storage.cfg")));
    assert!(!p.staged_only_as_export(&path("etc/hosts")));
}
