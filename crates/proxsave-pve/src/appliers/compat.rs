//! Small pure helpers the appliers need until the shared formats module provides them:
//! `datacenter.cfg` reading and the storage-directory layout.

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub message: String,
}

/// `datacenter.cfg`: the description (its `#` lines, decoded) and the options in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatacenterCfg {
    /// The `#` lines, decoded and joined with line feeds.
    pub description: String,
    /// `key: value` lines.
    pub entries: Vec<(String, String)>,
}

/// Reads `datacenter.cfg` as PVE does (`key: value` lines, `#` lines are the description).
pub fn parse_datacenter(text: &str) -> (DatacenterCfg, Vec<Diag>) {
    let mut cfg = DatacenterCfg::default();
    let mut diags = Vec::new();
    let mut desc: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(d) = line.strip_prefix('#') {
            desc.push(super::api::decode_text(d));
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                cfg.entries.push((k.to_string(), v.trim().to_string()));
            }
            _ => diags.push(Diag {
                line: n + 1,
                message: format!("not a `key: value` line: `{line}`"),
            }),
        }
    }
    cfg.description = desc.join("\n");
    (cfg, diags)
}

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
    fn datacenter_description_and_entries() {
        let (cfg, d) = parse_datacenter(
            "#Prod%20DC\n#second\nkeyboard: de\nmigration: network=10.0.0.0/24,type=secure\nbogus\n",
        );
        assert_eq!(cfg.description, "Prod DC\nsecond");
        assert_eq!(
            cfg.entries,
            vec![
                ("keyboard".to_string(), "de".to_string()),
                (
                    "migration".to_string(),
                    "network=10.0.0.0/24,type=secure".to_string()
                )
            ]
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 5);
    }

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
