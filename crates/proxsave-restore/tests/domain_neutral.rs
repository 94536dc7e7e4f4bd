//! `proxsave-restore` is domain-neutral: the units a Proxmox host runs, its paths and files
//! are known only by the domain crates (`proxsave-pve`, `proxsave-pbs`) that register them
//! (`proxsave_restore::domain`). This reads the crate's own sources and fails on any of them.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "pve-cluster",
    "pvedaemon",
    "pveproxy",
    "pvestatd",
    "proxmox-backup",
    "etc/pve",
    "pmxcfs",
    "var/lib/pve",
    "usr/sbin/qm",
    "usr/sbin/pct",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            scan(&p, hits);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            for (i, line) in text.lines().enumerate() {
                let l = line.to_ascii_lowercase();
                if let Some(f) = FORBIDDEN.iter().find(|f| l.contains(*f)) {
                    hits.push(format!("{}:{}: {f}: {}", p.display(), i + 1, line.trim()));
                }
            }
        }
    }
}

#[test]
fn no_proxmox_service_or_path_is_known_to_the_engine() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut hits = Vec::new();
    scan(&src, &mut hits);
    assert!(
        hits.is_empty(),
        "domain knowledge belongs in proxsave-pve / proxsave-pbs:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_domain_crates_supply_it() {
    use proxsave_archive::path::ArchivePath;
    use proxsave_pbs as _;
    use proxsave_pve as _;
    let names: Vec<&str> = proxsave_restore::domain::domains()
        .iter()
        .map(|d| d.name())
        .collect();
    assert_eq!(names, ["pbs", "pve"]);
    let pve_db = ArchivePath::from_user("etc/pve/storage.cfg").expect("path");
    assert!(proxsave_restore::domain::guard(&pve_db).is_some());
    let units = proxsave_restore::domain::restart_order(
        vec![
            "proxmox-backup-proxy",
            "pvedaemon",
            "proxmox-backup",
            "pve-cluster",
        ],
        |u| u,
    );
    assert_eq!(
        units,
        [
            "pve-cluster",
            "pvedaemon",
            "proxmox-backup",
            "proxmox-backup-proxy"
        ]
    );
}
