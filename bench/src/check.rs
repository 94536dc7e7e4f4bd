//! "Never report a fast wrong result": an extracted tree is compared with the tree the archive
//! was made from — the same set of paths with the same type, size, mode, owner, file mtime
//! and symlink target, and byte-identical content (SHA-256) for a sample of files that
//! includes every large file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: char,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    link: Option<PathBuf>,
}

/// Every path below `root` (not `root` itself), relative.
fn scan(root: &Path) -> Result<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let node = node_of(&e.path())?;
            let kind = node.kind;
            if kind == 'd' {
                stack.push(r.clone());
            }
            out.insert(r, node);
        }
    }
    Ok(out)
}

fn sha256_file(p: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The outcome of comparing an extracted tree with the source tree.
#[derive(Clone, Debug, Serialize)]
pub struct TreeCheck {
    pub ok: bool,
    pub entries: usize,
    pub files: usize,
    pub files_hashed: usize,
    pub bytes_hashed: u64,
    /// SHA-256 over the hashes of the sampled files, in path order (short hex).
    pub sample_digest: String,
    pub mismatches: Vec<String>,
}

/// The reference: the scanned source tree, scanned once.
pub struct Reference {
    root: PathBuf,
    nodes: BTreeMap<PathBuf, Node>,
}

impl Reference {
    pub fn new(root: &Path) -> Result<Reference> {
        Ok(Reference {
            root: root.to_path_buf(),
            nodes: scan(root)?,
        })
    }

    pub fn entries(&self) -> usize {
        self.nodes.len()
    }

    /// Quick check: the same number of entries.
    pub fn count_only(&self, got: &Path) -> Result<TreeCheck> {
        let nodes = scan(got)?;
        let ok = nodes.len() == self.nodes.len();
        Ok(TreeCheck {
            ok,
            entries: nodes.len(),
            files: nodes.values().filter(|n| n.kind == 'f').count(),
            files_hashed: 0,
            bytes_hashed: 0,
            sample_digest: String::new(),
            mismatches: if ok {
                vec![]
            } else {
                vec![format!(
                    "{} entries, expected {}",
                    nodes.len(),
                    self.nodes.len()
                )]
            },
        })
    }

    /// Full check: metadata of every entry, content of a sample (every large file and every
    /// 25th file in path order).
    pub fn compare(&self, got: &Path) -> Result<TreeCheck> {
        let nodes = scan(got)?;
        let mut mismatches = Vec::new();
        for (p, want) in &self.nodes {
            match nodes.get(p) {
                None => mismatches.push(format!("missing: {}", p.display())),
                Some(n) if n != want => {
                    mismatches.push(format!("differs: {} want {want:?} got {n:?}", p.display()))
                }
                Some(_) => {}
            }
        }
        for p in nodes.keys() {
            if !self.nodes.contains_key(p) {
                mismatches.push(format!("unexpected: {}", p.display()));
            }
        }
        let mut digest = Sha256::new();
        let (mut hashed, mut bytes) = (0, 0);
        for (i, (p, n)) in self.nodes.iter().filter(|(_, n)| n.kind == 'f').enumerate() {
            if n.size < (1 << 20) && i % 25 != 0 {
                continue;
            }
            if nodes.get(p).map(|g| g.kind) != Some('f') {
                continue;
            }
            let a = sha256_file(&self.root.join(p))?;
            let b = sha256_file(&got.join(p))?;
            if a != b {
                mismatches.push(format!("content differs: {}", p.display()));
            }
            digest.update(b);
            hashed += 1;
            bytes += n.size;
        }
        let d = digest.finalize();
        let sample_digest: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        mismatches.truncate(20);
        Ok(TreeCheck {
            ok: mismatches.is_empty(),
            entries: nodes.len(),
            files: nodes.values().filter(|n| n.kind == 'f').count(),
            files_hashed: hashed,
            bytes_hashed: bytes,
            sample_digest,
            mismatches,
        })
    }
}

/// Every path at or below `rel` in `root`, keyed by its path relative to `root`.
fn scan_under(root: &Path, rel: &Path) -> Result<BTreeMap<PathBuf, Node>> {
    let top = root.join(rel);
    let Ok(meta) = top.symlink_metadata() else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    if meta.is_dir() {
        for (p, n) in scan(&top)? {
            out.insert(rel.join(p), n);
        }
    }
    out.insert(rel.to_path_buf(), node_of(&top)?);
    Ok(out)
}

/// How `scan` describes one entry.
fn node_of(p: &Path) -> Result<Node> {
    let m = p
        .symlink_metadata()
        .with_context(|| format!("lstat {}", p.display()))?;
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else {
        '?'
    };
    Ok(Node {
        kind,
        size: if kind == 'f' { m.len() } else { 0 },
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        // Directory times depend on the order things were written; file times do not.
        mtime: if kind == 'f' { m.mtime() } else { 0 },
        link: if kind == 'l' {
            Some(fs::read_link(p)?)
        } else {
            None
        },
    })
}

/// Where a part of the source tree is expected after a restore: below `got` (the restored
/// root, or the export folder), the entries at or below each of `prefixes`.
pub struct Part<'a> {
    pub got: PathBuf,
    pub prefixes: &'a [&'a str],
}

impl Reference {
    /// Source entries at or below `prefix`.
    fn under<'a>(&'a self, prefix: &'a Path) -> impl Iterator<Item = (&'a PathBuf, &'a Node)> {
        // Paths order by components, so a folder's descendants follow it directly.
        self.nodes
            .range(prefix.to_path_buf()..)
            .take_while(move |(p, _)| p.starts_with(prefix))
    }

    /// Compares the parts of a restored tree with the source: every source entry at or
    /// below a prefix must be there with the same type, size, mode, owner, file mtime and
    /// link target, and nothing else may be there except what the target root held before
    /// (`preexisting`). With `hash`, the content of every large file and every 25th file
    /// (in the order of the parts and their prefixes) is compared too.
    pub fn compare_parts(
        &self,
        parts: &[Part<'_>],
        preexisting: &BTreeSet<PathBuf>,
        hash: bool,
    ) -> Result<TreeCheck> {
        let mut mismatches = Vec::new();
        let (mut entries, mut files) = (0, 0);
        let mut digest = Sha256::new();
        let (mut hashed, mut bytes, mut nth) = (0, 0, 0usize);
        for part in parts {
            for prefix in part.prefixes {
                let prefix = Path::new(prefix);
                let got = scan_under(&part.got, prefix)?;
                for (p, want) in self.under(prefix) {
                    match got.get(p) {
                        None => mismatches.push(format!("missing: {}", part.got.join(p).display())),
                        Some(n) if n != want => mismatches.push(format!(
                            "differs: {} want {want:?} got {n:?}",
                            part.got.join(p).display()
                        )),
                        Some(_) => {
                            entries += 1;
                            if want.kind != 'f' {
                                continue;
                            }
                            files += 1;
                            nth += 1;
                            if !hash || (want.size < (1 << 20) && (nth - 1) % 25 != 0) {
                                continue;
                            }
                            let a = sha256_file(&self.root.join(p))?;
                            let b = sha256_file(&part.got.join(p))?;
                            if a != b {
                                mismatches.push(format!(
                                    "content differs: {}",
                                    part.got.join(p).display()
                                ));
                            }
                            digest.update(b);
                            hashed += 1;
                            bytes += want.size;
                        }
                    }
                }
                for p in got.keys() {
                    if !self.nodes.contains_key(p) && !preexisting.contains(p) {
                        mismatches.push(format!("unexpected: {}", part.got.join(p).display()));
                    }
                }
            }
        }
        let d = digest.finalize();
        let sample_digest: String = if hash {
            d[..8].iter().map(|b| format!("{b:02x}")).collect()
        } else {
            String::new()
        };
        let total = mismatches.len();
        mismatches.truncate(20);
        if total > 20 {
            mismatches.push(format!("… {} more", total - 20));
        }
        Ok(TreeCheck {
            ok: total == 0,
            entries,
            files,
            files_hashed: hashed,
            bytes_hashed: bytes,
            sample_digest,
            mismatches,
        })
    }

    /// How many source entries lie at or below the prefixes.
    pub fn count_under(&self, prefixes: &[&str]) -> usize {
        prefixes
            .iter()
            .map(|p| self.under(Path::new(p)).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("proxsave-bench-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(root: &Path, rel: &str, data: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }

    /// Copies with times, like an extraction that restores mtimes.
    fn cp(from: &Path, to: &Path) {
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn restored_parts_are_compared_with_the_source() {
        let d = scratch("parts");
        let src = d.join("src");
        put(&src, "home/u1/a.txt", "alpha\n");
        put(&src, "home/u1/b.txt", "beta\n");
        put(&src, "etc/pve/storage.cfg", "dir: local\n");
        put(&src, "var/log/syslog", "not compared\n");
        let reference = Reference::new(&src).unwrap();
        let root = d.join("root");
        let export = d.join("export");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(export.join("etc")).unwrap();
        cp(&src.join("home"), &root.join("home"));
        cp(&src.join("etc/pve"), &export.join("etc/pve"));
        put(&root, "home/.keep", "there before\n");
        let pre: BTreeSet<PathBuf> = [PathBuf::from("home/.keep")].into();
        let parts = [
            Part {
                got: root.clone(),
                prefixes: &["home"],
            },
            Part {
                got: export.clone(),
                prefixes: &["etc/pve"],
            },
        ];
        let ok = reference.compare_parts(&parts, &pre, true).unwrap();
        assert!(ok.ok, "{:?}", ok.mismatches);
        assert_eq!(
            ok.entries, 6,
            "home, home/u1, 2 files, etc/pve, storage.cfg"
        );
        assert_eq!(reference.count_under(&["home", "etc/pve"]), 6);

        // Something the root did not hold before and the backup does not have.
        put(&root, "home/u1/stray", "x");
        let bad = reference.compare_parts(&parts, &pre, false).unwrap();
        assert!(!bad.ok);
        assert!(
            bad.mismatches[0].starts_with("unexpected:"),
            "{:?}",
            bad.mismatches
        );
        fs::remove_file(root.join("home/u1/stray")).unwrap();

        // Same size and time, other bytes: found by the content sample (1st of every 25).
        let f = root.join("home/u1/a.txt");
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, "ALPHA\n").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let bad = reference.compare_parts(&parts, &pre, true).unwrap();
        assert!(!bad.ok);
        assert!(
            bad.mismatches[0].starts_with("content differs:"),
            "{:?}",
            bad.mismatches
        );

        // A missing export copy.
        fs::remove_file(export.join("etc/pve/storage.cfg")).unwrap();
        let bad = reference.compare_parts(&parts, &pre, false).unwrap();
        assert!(bad.mismatches.iter().any(|m| m.starts_with("missing:")));
        fs::remove_dir_all(&d).unwrap();
    }
}
