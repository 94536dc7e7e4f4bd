//! Which directories PVE creates for a storage, from its `storage.cfg` section (pure; the
//! storage applier does the creating and the mount checks).
//!
//! PVE (pve-storage `Plugin.pm` / `DirPlugin.pm`) creates, when it activates a path-based
//! storage (`dir`, `nfs`, `cifs`, `cephfs`, `glusterfs`, `btrfs`):
//!
//! * the base `path`, unless `create-base-path` (or the deprecated `mkdir`) is `0`; for the
//!   network types only while the share is not mounted, as the mount point;
//! * one content directory per content type of the storage, unless `create-subdirs` (or
//!   `mkdir`) is `0`: `images` → `images`, `rootdir` → `private`, `iso` → `template/iso`,
//!   `vztmpl` → `template/cache`, `backup` → `dump`, `snippets` → `snippets`, `import` →
//!   `import`; `rootdir` also gets `dump` (container migration uses it). `content-dirs`
//!   (`vtype=relative/path,…`) overrides a directory. Without a `content` line the type's
//!   default applies (`dir`, `btrfs`: `images,rootdir`; `nfs`, `cifs`, `glusterfs`: `images`;
//!   `cephfs`: `backup`); `none` means no content.
//! * nothing for a disabled storage (PVE does not activate it), and for `dir`/`btrfs` with
//!   `is_mountpoint` nothing unless that mount point is mounted.
//!
//! On top of PVE, every path is checked by [`validate_path`]: a backup must not make us
//! create folders in system locations.
//!
//! ```
//! use proxsave_formats::section::Section;
//! use proxsave_pve::storage_dirs::storage_dirs;
//!
//! let s = Section::new("dir", "vmstore")
//!     .with("path", Some("/srv/vmstore"))
//!     .with("content", Some("images,rootdir,iso"));
//! let d = storage_dirs(&s).unwrap().unwrap();
//! assert_eq!(
//!     d.to_create(),
//!     ["/srv/vmstore", "/srv/vmstore/dump", "/srv/vmstore/images",
//!      "/srv/vmstore/template/iso", "/srv/vmstore/private"]
//! );
//! ```

use proxsave_formats::section::Section;

/// Storage types with a `path` that PVE fills with content directories.
pub const PATH_TYPES: [&str; 6] = ["dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs"];

/// Types whose `path` is the mount point of a share PVE mounts itself.
pub const NETWORK_TYPES: [&str; 4] = ["nfs", "cifs", "cephfs", "glusterfs"];

/// Folders no storage directory may be, or be under (`/run/media/…` excepted: removable
/// media are mounted there).
pub const SYSTEM_PATHS: [&str; 13] = [
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys", "/run",
    "/root", "/",
];

/// Content types and their directories, in PVE's order (sorted by content type).
pub const CONTENT_SUBDIRS: [(&str, &str); 7] = [
    ("backup", "dump"),
    ("images", "images"),
    ("import", "import"),
    ("iso", "template/iso"),
    ("rootdir", "private"),
    ("snippets", "snippets"),
    ("vztmpl", "template/cache"),
];

/// What PVE creates for one storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageDirs {
    /// Storage id.
    pub id: String,
    /// Storage type (lower case).
    pub ty: String,
    /// The base path (validated).
    pub path: String,
    /// PVE creates the base path (`create-base-path`, else `mkdir`, default yes).
    pub create_base: bool,
    /// The content directories (absolute, validated), in PVE's order; empty when
    /// `create-subdirs` / `mkdir` is off or there is no content.
    pub subdirs: Vec<String>,
    /// A path that must be a mounted file system before anything is created: the
    /// `is_mountpoint` of a `dir`/`btrfs` storage (`yes` means `path` itself), or `path` for a
    /// network type (PVE mounts the share there; creating the content directories on the
    /// root file system instead would be wrong).
    pub mount_point: Option<String>,
    /// A network type (`nfs`, `cifs`, `cephfs`, `glusterfs`): PVE mounts it at `path`.
    pub network: bool,
    /// The storage is disabled: PVE creates nothing for it.
    pub disabled: bool,
}

impl StorageDirs {
    /// The directories to create, parents first: the base path (when PVE creates it), then
    /// the content directories. Empty for a disabled storage.
    ///
    /// For a network type the content directories belong *inside the mounted share*, and for
    /// a [`StorageDirs::mount_point`] nothing should be created unless it is mounted: the
    /// caller checks that (it does the I/O).
    pub fn to_create(&self) -> Vec<&str> {
        if self.disabled {
            return Vec::new();
        }
        let mut out: Vec<&str> = Vec::new();
        if self.create_base {
            out.push(&self.path);
        }
        out.extend(self.subdirs.iter().map(String::as_str));
        out
    }
}

/// Why a storage's directories cannot be worked out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirsError {
    /// A `dir` or `btrfs` storage without `path`.
    #[error("storage '{id}': no `path`")]
    NoPath {
        /// Storage id.
        id: String,
    },
    /// A path that is not acceptable ([`validate_path`]).
    #[error("storage '{id}': refusing directory {path:?}: {reason}")]
    BadPath {
        /// Storage id.
        id: String,
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// PVE's boolean words (`1`, `on`, `yes`, `true` / `0`, `off`, `no`, `false`, any case).
pub fn parse_boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// PVE's `split_list`: NUL-separated if there is a NUL, else separated by `,`, `;` and
/// whitespace.
pub fn split_list(s: &str) -> Vec<&str> {
    if s.contains('\0') {
        return s.split('\0').filter(|x| !x.is_empty()).collect();
    }
    s.split(|c: char| c == ',' || c == ';' || c.is_ascii_whitespace())
        .filter(|x| !x.is_empty())
        .collect()
}

/// A boolean option of the section: `None` when absent (or not a boolean word); a bare flag is
/// true.
fn flag(section: &Section, key: &str) -> Option<bool> {
    section.effective(key).and_then(parse_boolean)
}

/// The content types PVE assumes when a storage of type `ty` has no `content` line.
pub fn default_content(ty: &str) -> &'static [&'static str] {
    match ty {
        "dir" | "btrfs" => &["images", "rootdir"],
        "cephfs" => &["backup"],
        _ => &["images"],
    }
}

/// Checks a directory a storage would have us create: absolute; no `..` component; no
/// control character; not `/`; not equal to or under `/etc`, `/usr`, `/bin`, `/sbin`,
/// `/lib`, `/lib64`, `/boot`, `/dev`, `/proc`, `/sys`, `/run` (except below `/run/media/`)
/// or `/root`. `.` components and repeated slashes are ignored for the comparison
/// (`//etc/./x` is under `/etc`). The error is the reason.
pub fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("not an absolute path".to_string());
    }
    if path.chars().any(char::is_control) {
        return Err("contains a control character".to_string());
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("contains a `..` component".to_string());
    }
    let Some(first) = parts.first() else {
        return Err("is the root folder `/`".to_string());
    };
    if *first == "run" && parts.get(1) == Some(&"media") && parts.len() > 2 {
        return Ok(());
    }
    if let Some(system) = SYSTEM_PATHS
        .iter()
        .find(|s| s.len() > 1 && s[1..] == **first)
    {
        return Err(format!("{system} is a system folder"));
    }
    Ok(())
}

/// `base/sub` with repeated slashes collapsed (PVE joins with `/`).
fn join(base: &str, sub: &str) -> String {
    let mut out = String::from("/");
    let parts = base
        .split('/')
        .chain(sub.split('/'))
        .filter(|p| !p.is_empty());
    out.push_str(&parts.collect::<Vec<_>>().join("/"));
    out
}

/// The directories PVE creates for the storage `section` of `storage.cfg`; `Ok(None)` for
/// a type without a path (`lvm`, `lvmthin`, `zfspool`, `rbd`, `pbs`, `iscsi`, …).
///
/// A network type without `path` uses `/mnt/pve/<id>` (what PVE sets on creation). The
/// base path and every content directory are checked with [`validate_path`].
///
/// # Errors
/// [`DirsError::NoPath`] for a `dir`/`btrfs` storage without `path`; [`DirsError::BadPath`]
/// naming the storage, the path and the reason.
pub fn storage_dirs(section: &Section) -> Result<Option<StorageDirs>, DirsError> {
    let ty = section.ty.to_ascii_lowercase();
    if !PATH_TYPES.contains(&ty.as_str()) {
        return Ok(None);
    }
    let id = section.id.clone();
    let network = NETWORK_TYPES.contains(&ty.as_str());
    let path = match section.get("path") {
        Some(p) => p.to_string(),
        None if network => format!("/mnt/pve/{id}"),
        None => return Err(DirsError::NoPath { id }),
    };
    let bad = |path: &str, reason: String| DirsError::BadPath {
        id: id.clone(),
        path: path.to_string(),
        reason,
    };
    validate_path(&path).map_err(|r| bad(&path, r))?;
    let mkdir = flag(section, "mkdir");
    let create_base = flag(section, "create-base-path").or(mkdir).unwrap_or(true);
    let create_subdirs = flag(section, "create-subdirs").unwrap_or(true) && mkdir.unwrap_or(true);

    let content: Vec<&str> = match section.get("content") {
        Some(c) => split_list(c),
        None => default_content(&ty).to_vec(),
    };
    let overrides: Vec<(&str, &str)> = section
        .get("content-dirs")
        .map(split_list)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| d.split_once('='))
        .collect();
    let mut subdirs = Vec::new();
    if create_subdirs && !content.contains(&"none") {
        for (vtype, default) in CONTENT_SUBDIRS {
            let wanted =
                content.contains(&vtype) || (vtype == "backup" && content.contains(&"rootdir"));
            if !wanted {
                continue;
            }
            let sub = overrides
                .iter()
                .find(|(t, _)| *t == vtype)
                .map_or(default, |(_, p)| *p);
            let dir = join(&path, sub);
            validate_path(&dir).map_err(|r| bad(&dir, r))?;
            if !subdirs.contains(&dir) {
                subdirs.push(dir);
            }
        }
    }
    let mount_point = if network {
        Some(path.clone())
    } else {
        match section.effective("is_mountpoint") {
            None => None,
            Some(v) => match parse_boolean(v) {
                Some(true) => Some(path.clone()),
                Some(false) => None,
                None => Some(v.to_string()),
            },
        }
    };
    let disabled = flag(section, "disable").unwrap_or(false);
    Ok(Some(StorageDirs {
        id,
        ty,
        path,
        create_base,
        subdirs,
        mount_point,
        network,
        disabled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_one(text: &str) -> Section {
        let (cfg, diags) = proxsave_formats::section::parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        cfg.sections.into_iter().next().unwrap()
    }

    #[test]
    fn scenario_31() {
        let d = storage_dirs(&parse_one(
            "dir: vmstore\n\tpath /srv/vmstore\n\tcontent images,rootdir,iso,vztmpl,backup,snippets,import\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            d.to_create(),
            [
                "/srv/vmstore",
                "/srv/vmstore/dump",
                "/srv/vmstore/images",
                "/srv/vmstore/import",
                "/srv/vmstore/template/iso",
                "/srv/vmstore/private",
                "/srv/vmstore/snippets",
                "/srv/vmstore/template/cache",
            ]
        );
        assert_eq!(d.mount_point, None);
        assert!(!d.network);

        let nfs = storage_dirs(&parse_one(
            "nfs: nas\n\texport /volume1/pve\n\tpath /mnt/pve/nas\n\tserver 10.0.0.1\n\tcontent backup\n",
        ))
        .unwrap()
        .unwrap();
        assert!(nfs.network);
        assert_eq!(nfs.mount_point.as_deref(), Some("/mnt/pve/nas"));
        assert_eq!(nfs.to_create(), ["/mnt/pve/nas", "/mnt/pve/nas/dump"]);

        let evil = storage_dirs(&parse_one("dir: evil\n\tpath /etc/evil\n")).unwrap_err();
        assert_eq!(
            evil.to_string(),
            "storage 'evil': refusing directory \"/etc/evil\": /etc is a system folder"
        );

        let pbs = parse_one("pbs: pbs01\n\tdatastore s\n\tserver 10.0.0.2\n\tfingerprint a:b\n");
        assert_eq!(storage_dirs(&pbs).unwrap(), None);
    }

    #[test]
    fn options() {
        // Defaults per type; `none`; disabled; mkdir / create-* switches; is_mountpoint.
        let d = |t: &str| storage_dirs(&parse_one(t)).unwrap().unwrap();
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n").to_create(),
            ["/srv/a", "/srv/a/dump", "/srv/a/images", "/srv/a/private"]
        );
        assert_eq!(
            d("cephfs: c\n\tfs-name x\n").to_create(),
            ["/mnt/pve/c", "/mnt/pve/c/dump"]
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n\tcontent none\n").to_create(),
            ["/srv/a"]
        );
        let disabled =
            d("dir: usb\n\tpath /mnt/usb\n\tcontent backup\n\tdisable\n\tis_mountpoint 1\n");
        assert!(disabled.disabled);
        assert!(disabled.to_create().is_empty());
        assert_eq!(disabled.mount_point.as_deref(), Some("/mnt/usb"));
        assert_eq!(
            d("dir: a\n\tpath /srv/a/b\n\tis_mountpoint /srv/a\n")
                .mount_point
                .as_deref(),
            Some("/srv/a")
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n\tis_mountpoint no\n").mount_point,
            None
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n\tmkdir 0\n").to_create(),
            Vec::<&str>::new()
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n\tcreate-base-path 0\n\tcontent iso\n").to_create(),
            ["/srv/a/template/iso"]
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a\n\tcreate-subdirs 0\n\tcontent iso\n").to_create(),
            ["/srv/a"]
        );
        assert_eq!(
            d("dir: a\n\tpath /srv/a/\n\tcontent iso;backup\n\tcontent-dirs iso=isos/x,backup=/bk\n")
                .to_create(),
            ["/srv/a/", "/srv/a/bk", "/srv/a/isos/x"]
        );
        assert_eq!(
            storage_dirs(&parse_one("btrfs: b\n\tcontent images\n")).unwrap_err(),
            DirsError::NoPath { id: "b".into() }
        );
        assert!(storage_dirs(&parse_one("DIR: a\n\tpath relative\n")).is_err());
    }

    #[test]
    fn validator_examples() {
        for ok in [
            "/srv/x",
            "/var/lib/vz",
            "/mnt/pve/nas",
            "/run/media/u/disk",
            "/home/x",
            "/etcx",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "srv",
            "/",
            "//",
            "/./",
            "/etc",
            "/etc/",
            "//etc/./pve",
            "/usr/local/x",
            "/run",
            "/run/media",
            "/root/x",
            "/srv/../etc",
            "/srv/a\nb",
            "/lib64",
            "/boot/efi",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,10}".prop_filter("not . or ..", |c| c != "." && c != "..")
    }

    proptest! {
        #[test]
        fn system_paths_and_below_are_refused(
            system in proptest::sample::select(SYSTEM_PATHS[..12].to_vec()),
            rest in proptest::collection::vec(component(), 0..4),
            slashes in "/{1,3}",
        ) {
            let path = format!("{system}{slashes}{}", rest.join("/"));
            let allowed = system == "/run" && rest.len() >= 2 && rest[0] == "media";
            prop_assert_eq!(validate_path(&path).is_ok(), allowed, "{}", path);
        }

        #[test]
        fn dot_dot_is_refused(
            before in proptest::collection::vec(component(), 0..3),
            after in proptest::collection::vec(component(), 0..3),
        ) {
            let mut parts = before;
            parts.push("..".to_string());
            parts.extend(after);
            let path = format!("/{}", parts.join("/"));
            prop_assert!(validate_path(&path).is_err(), "{}", path);
        }

        #[test]
        fn ordinary_paths_are_accepted(
            top in proptest::sample::select(vec!["srv", "mnt", "data", "var", "home", "media", "tank"]),
            rest in proptest::collection::vec(component(), 0..4),
        ) {
            let path = format!("/{top}/{}", rest.join("/"));
            prop_assert_eq!(validate_path(&path), Ok(()));
        }

        #[test]
        fn relative_paths_are_refused(p in "[^/][^\\n]{0,20}") {
            prop_assert!(validate_path(&p).is_err());
        }

        #[test]
        fn validator_never_panics(p in "\\PC{0,40}") {
            let _ = validate_path(&p);
        }

        #[test]
        fn every_created_dir_is_valid_and_under_the_base(
            rest in proptest::collection::vec(component(), 1..3),
            content in proptest::collection::vec(
                proptest::sample::select(vec!["images", "rootdir", "iso", "vztmpl", "backup", "snippets", "import", "bogus"]),
                0..5,
            ),
            ty in proptest::sample::select(PATH_TYPES.to_vec()),
        ) {
            let base = format!("/srv/{}", rest.join("/"));
            let mut s = Section::new(ty, "s").with("path", Some(&base));
            if !content.is_empty() {
                s.push_prop("content", Some(&content.join(",")));
            }
            let d = storage_dirs(&s).unwrap().unwrap();
            for dir in d.to_create() {
                prop_assert!(validate_path(dir).is_ok());
                prop_assert!(dir.starts_with(&base));
            }
        }
    }
}
