//! Datastore safety: for each datastore of the backup, before anything is written, whether
//! its definition is applied or deferred, and why.
//!
//! A datastore is **applied** when its path is valid, it is either mounted or not a mount
//! location, and the folder is missing (it will be created), empty, or already a PBS
//! datastore (`.chunks` present: never touched). It is **deferred** when:
//!
//! * the path is not absolute, has a `..` component, is `/`, or lies in a system folder
//!   (`/etc`, `/usr`, `/bin`, `/sbin`, `/lib`, `/lib64`, `/boot`, `/dev`, `/proc`, `/sys`,
//!   `/run` except `/run/media/…`, `/root`);
//! * it is under a mount location (`/mnt/<x>`, `/media/<x>`, `/run/media/<user>/<x>`) and no
//!   filesystem is mounted on that location or below it down to the path (the data disk is
//!   not there: creating anything would write onto the root disk);
//! * the folder holds something other than PBS's files (foreign content), or is not a folder;
//! * it cannot be inspected (a symbolic link on the way, a permission error, …).
//!
//! Every path is looked at inside the target root (no symlink followed), and mounts through
//! the host's [`MountProbe`](proxsave_restore::host::MountProbe), given here as a function.

use std::fmt;

use proxsave_archive::path::ArchivePath;
use proxsave_restore::roothandle::RootHandle;
use rustix::fs::FileType;

/// Folders no datastore may be in (`/run/media/…` excepted).
pub const SYSTEM_DIRS: [&str; 12] = [
    "etc", "usr", "bin", "sbin", "lib", "lib64", "boot", "dev", "proc", "sys", "run", "root",
];

/// What is in a datastore's folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathState {
    /// The folder does not exist: it is created with a chunk store.
    Missing,
    /// The folder exists and is empty (or holds only `lost+found` / an empty `.lock`): a
    /// chunk store is created in it.
    Empty,
    /// A PBS datastore is there (`.chunks`): only its definition is restored.
    Existing,
}

/// The decision for one datastore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its definition is applied.
    Apply(PathState),
    /// It is kept aside in `datastore.cfg.deferred`, with the reason.
    Defer(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Apply(PathState::Missing) => {
                f.write_str("apply (the folder is missing: it is created with a chunk store)")
            }
            Verdict::Apply(PathState::Empty) => {
                f.write_str("apply (the folder is empty: a chunk store is created in it)")
            }
            Verdict::Apply(PathState::Existing) => f.write_str(
                "apply (a PBS datastore is already there: only its definition is restored)",
            ),
            Verdict::Defer(why) => write!(f, "defer: {why}"),
        }
    }
}

/// Checks a datastore path lexically: the path inside the root, or why it is refused.
///
/// # Errors
/// The reason (relative, `..`, `/`, a system folder, a control character).
pub fn validate_path(path: &str) -> Result<ArchivePath, String> {
    if !path.starts_with('/') {
        return Err(format!("the path {path:?} is not absolute"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("the path {path:?} contains a control character"));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("the path {path:?} contains a `..` component"));
    }
    let Some(first) = parts.first() else {
        return Err(format!("the path {path:?} is the root folder `/`"));
    };
    let removable = *first == "run" && parts.get(1) == Some(&"media") && parts.len() > 2;
    if !removable && SYSTEM_DIRS.contains(first) {
        return Err(format!(
            "the path {path:?} is in the system folder /{first}"
        ));
    }
    ArchivePath::from_user(path).map_err(|e| format!("the path {path:?} is not usable: {e}"))
}

/// The mount location a path is under: `/mnt/<a>`, `/media/<a>`, `/run/media/<user>/<a>`
/// (`/run/media/<user>` when that is all there is); `None` otherwise (also for `/mnt`).
pub fn mount_location(path: &ArchivePath) -> Option<ArchivePath> {
    let parts: Vec<&[u8]> = path.components().collect();
    let depth = match parts.as_slice() {
        [b"mnt" | b"media", _, ..] => 2,
        [b"run", b"media", _, _, ..] => 4,
        [b"run", b"media", _] => 3,
        _ => return None,
    };
    ArchivePath::parse(&parts[..depth].join(&b'/'))
        .ok()
        .flatten()
}

/// Entries allowed in a folder that counts as empty.
const EMPTY_OK: [&[u8]; 2] = [b"lost+found", b".lock"];

/// Decides for the datastore at `path`; `is_mounted` tells whether a path inside the root
/// is a mount point (the host's mount probe).
pub fn assess(root: &RootHandle, path: &str, is_mounted: &dyn Fn(&ArchivePath) -> bool) -> Verdict {
    let rel = match validate_path(path) {
        Ok(p) => p,
        Err(why) => return Verdict::Defer(why),
    };
    if let Some(loc) = mount_location(&rel) {
        let mounted = std::iter::once(rel.clone())
            .chain(rel.ancestors())
            .filter(|a| a.starts_with(&loc))
            .any(|a| is_mounted(&a));
        if !mounted {
            return Verdict::Defer(format!(
                "/{loc} is a mount location and no filesystem is mounted there (nor below it down to {path}): the data disk is missing, and creating the datastore would write onto the root filesystem"
            ));
        }
    }
    let meta = match root.stat(&rel) {
        Ok(m) => m,
        Err(e) => return Verdict::Defer(format!("{path} cannot be inspected: {e}")),
    };
    let Some(meta) = meta else {
        return Verdict::Apply(PathState::Missing);
    };
    if meta.kind != FileType::Directory {
        return Verdict::Defer(format!("{path} exists and is not a folder"));
    }
    let names = match list(root, &rel) {
        Ok(n) => n,
        Err(e) => return Verdict::Defer(format!("{path} cannot be inspected: {e}")),
    };
    if names.iter().any(|n| n == b".chunks") {
        return match root.stat(&rel.join(b".chunks")) {
            Ok(Some(m)) if m.kind == FileType::Directory => Verdict::Apply(PathState::Existing),
            Ok(_) => Verdict::Defer(format!("{path}/.chunks is not a folder")),
            Err(e) => Verdict::Defer(format!("{path} cannot be inspected: {e}")),
        };
    }
    let foreign: Vec<String> = names
        .iter()
        .filter(|n| !EMPTY_OK.contains(&n.as_slice()))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    if !foreign.is_empty() {
        let mut shown = foreign
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if foreign.len() > 5 {
            shown.push_str(", …");
        }
        return Verdict::Defer(format!(
            "{path} is not empty and is not a PBS datastore (no .chunks; found {shown})"
        ));
    }
    if names.iter().any(|n| n == b".lock") {
        match root.stat(&rel.join(b".lock")) {
            Ok(Some(m)) if m.kind == FileType::RegularFile && m.size == 0 => {}
            Ok(_) => {
                return Verdict::Defer(format!(
                    "{path}/.lock is not an empty file (and there is no .chunks)"
                ));
            }
            Err(e) => return Verdict::Defer(format!("{path} cannot be inspected: {e}")),
        }
    }
    Verdict::Apply(PathState::Empty)
}

/// The names in the folder `rel` of the root (no link followed).
fn list(root: &RootHandle, rel: &ArchivePath) -> std::io::Result<Vec<Vec<u8>>> {
    use std::os::fd::AsFd;
    let dir = proxsave_archive::dirfd::walk(root.dir().as_fd(), rel)?;
    let mut names = Vec::new();
    let mut rd = rustix::fs::Dir::read_from(&dir)?;
    while let Some(entry) = rd.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated_like_the_reference() {
        for ok in [
            "/mnt/datastore/backups",
            "/var/lib/proxmox-backup",
            "/tank/pbs",
            "/srv/pve/dump",
            "/data/store",
            "/run/media/user/disk",
        ] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "relative/path",
            "",
            "../escape",
            "/mnt/../etc",
            "/",
            "/etc",
            "/etc/proxmox-backup",
            "/usr/bin",
            "/proc/1",
            "/dev/shm",
            "/root/.ssh",
            "/boot/efi",
            "/run/systemd/foo",
            "/run",
            "/run/media",
        ] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_locations() {
        let loc = |p: &str| {
            mount_location(&ArchivePath::from_user(p).expect("path")).map(|l| format!("/{l}"))
        };
        assert_eq!(
            loc("/mnt/datastore/Data1").as_deref(),
            Some("/mnt/datastore")
        );
        assert_eq!(loc("/media/USB/PBS").as_deref(), Some("/media/USB"));
        assert_eq!(loc("/run/media/root").as_deref(), Some("/run/media/root"));
        assert_eq!(
            loc("/run/media/root/USB/PBS").as_deref(),
            Some("/run/media/root/USB")
        );
        assert_eq!(loc("/srv/pbs"), None);
        assert_eq!(loc("/mnt"), None);
    }

    #[test]
    fn verdicts_on_a_real_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("mnt/full/ds")).expect("mkdir");
        std::fs::write(r.join("mnt/full/ds/notes.txt"), "x").expect("write");
        std::fs::create_dir_all(r.join("mnt/pbs/ds/.chunks")).expect("mkdir");
        std::fs::create_dir_all(r.join("mnt/empty/lost+found")).expect("mkdir");
        std::fs::create_dir_all(r.join("srv")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", r.join("srv/link")).expect("symlink");
        let root = RootHandle::open(r).expect("root");
        let mounted = |p: &ArchivePath| {
            ["mnt/full", "mnt/pbs", "mnt/empty"].contains(&p.to_str().unwrap_or(""))
        };
        assert_eq!(
            assess(&root, "/mnt/pbs/ds", &mounted),
            Verdict::Apply(PathState::Existing)
        );
        assert_eq!(
            assess(&root, "/mnt/empty", &mounted),
            Verdict::Apply(PathState::Empty)
        );
        assert_eq!(
            assess(&root, "/mnt/empty/new", &mounted),
            Verdict::Apply(PathState::Missing)
        );
        assert_eq!(
            assess(&root, "/srv/new/ds", &mounted),
            Verdict::Apply(PathState::Missing)
        );
        let defer = |p: &str| match assess(&root, p, &mounted) {
            Verdict::Defer(why) => why,
            v => panic!("{p}: {v:?}"),
        };
        assert!(defer("/mnt/full/ds").contains("notes.txt"));
        assert!(defer("/mnt/gone/ds").contains("/mnt/gone is a mount location"));
        assert!(defer("/srv/link/x").contains("cannot be inspected"));
        assert!(defer("/etc/pbs").contains("system folder"));
        assert!(defer("ds").contains("not absolute"));
        assert!(!r.join("mnt/gone").exists());
    }
}
