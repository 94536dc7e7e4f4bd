//! The storage-directory layout (pure): which folders PVE makes for a path-based storage.

/// The directories of a storage: its base and the subfolders of its content types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirPlan {
    /// The storage's path.
    pub base: String,
    /// Absolute subfolders, in PVE's order.
    pub subdirs: Vec<String>,
}

/// Content type ⇒ subfolder (pve-storage `vtype_subdirs`).
const SUBDIRS: &[(&str, &str)] = &[
    ("images", "images"),
    ("rootdir", "private"),
    ("iso", "template/iso"),
    ("vztmpl", "template/cache"),
    ("backup", "dump"),
    ("snippets", "snippets"),
    ("import", "import"),
];

/// Folders a storage must never be created in or under.
const SYSTEM: &[&str] = &[
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/root",
    "/var/lib/pve-cluster",
];

/// The layout of a path-based storage (`Ok(None)` for a type without a path); `Err` for a
/// path that is not absolute, has `..`, is `/` or is (under) a system folder.
pub fn layout(
    ty: &str,
    id: &str,
    path: Option<&str>,
    content: Option<&str>,
) -> Result<Option<DirPlan>, String> {
    let base = match (ty, path) {
        ("dir" | "btrfs", Some(p)) => p.to_string(),
        ("nfs" | "cifs" | "cephfs" | "glusterfs", p) => p
            .map(str::to_string)
            .unwrap_or_else(|| format!("/mnt/pve/{id}")),
        _ => return Ok(None),
    };
    let clean = base.trim_end_matches('/');
    if !base.starts_with('/') || clean.is_empty() {
        return Err(format!("`{base}` is not an absolute path below /"));
    }
    if clean.split('/').any(|c| c == "..") {
        return Err(format!("`{base}` has a `..` component"));
    }
    if SYSTEM.iter().any(|s| {
        (clean == *s || clean.starts_with(&format!("{s}/"))) && !clean.starts_with("/run/media/")
    }) {
        return Err(format!("`{base}` is a system folder"));
    }
    let mut subdirs = Vec::new();
    for c in content
        .unwrap_or_default()
        .split([',', ';', ' '])
        .filter(|c| !c.is_empty())
    {
        if let Some((_, sub)) = SUBDIRS.iter().find(|(t, _)| *t == c) {
            let full = format!("{clean}/{sub}");
            if !subdirs.contains(&full) {
                subdirs.push(full);
            }
        }
    }
    Ok(Some(DirPlan {
        base: clean.to_string(),
        subdirs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let p = layout(
            "dir",
            "vm",
            Some("/srv/vmstore"),
            Some("images,rootdir,iso,vztmpl,backup,snippets,import"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.base, "/srv/vmstore");
        assert_eq!(
            p.subdirs,
            [
                "/srv/vmstore/images",
                "/srv/vmstore/private",
                "/srv/vmstore/template/iso",
                "/srv/vmstore/template/cache",
                "/srv/vmstore/dump",
                "/srv/vmstore/snippets",
                "/srv/vmstore/import"
            ]
        );
        assert!(layout("dir", "x", Some("/etc/evil"), None).is_err());
        assert!(layout("dir", "x", Some("/"), None).is_err());
        assert!(layout("dir", "x", Some("/srv/../etc"), None).is_err());
        assert_eq!(layout("pbs", "x", None, Some("backup")).unwrap(), None);
        assert_eq!(
            layout("nfs", "nas", None, Some("backup"))
                .unwrap()
                .unwrap()
                .base,
            "/mnt/pve/nas"
        );
    }
}
