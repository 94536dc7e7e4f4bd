//! A main interfaces file and everything it includes (`source`, `source-directory`), read inside
//! a root.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::lint::{Finding, FindingCode, Severity};
use super::rename::check_collisions;
use super::{Document, Item, RenameError, RenameMap, Renamed};
use crate::rootfs;

/// Largest interfaces file read (1 MiB); real files are a few KiB.
pub const MAX_INTERFACES_BYTES: u64 = 1024 * 1024;

/// Deepest `source` nesting followed.
const MAX_DEPTH: usize = 16;

/// Which ifupdown implementation will read the files; decides include rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Classic ifupdown: relative `source` paths are relative to the including file's directory;
    /// `source-directory` includes files named `^[a-zA-Z0-9_-]+$`.
    Ifupdown,
    /// ifupdown2 (Proxmox): relative `source` globs are relative to the working directory (`/` for
    /// the networking service); `source-directory` is an error and is not followed.
    #[default]
    Ifupdown2,
}

/// One file of a [`ConfigSet`].
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Absolute path inside the root, symlinks resolved (e.g. `/etc/network/interfaces`).
    pub path: PathBuf,
    /// The parsed file.
    pub document: Document,
}

/// The main file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {reason}", path.display())]
pub struct LoadError {
    /// Path inside the root.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A main interfaces file and its includes, in the order ifupdown reads them.
#[derive(Debug, Clone)]
pub struct ConfigSet {
    /// The files; the first is the main file. Each file appears once.
    pub files: Vec<ConfigFile>,
    /// Problems met while following includes (missing source files, `source-directory` under
    /// ifupdown2, include loops), with file and line.
    pub findings: Vec<Finding>,
    /// The flavour used to resolve includes.
    pub flavor: Flavor,
}

impl ConfigSet {
    /// A set of one document that includes nothing (its `source` lines are not followed).
    pub fn single(path: impl Into<PathBuf>, document: Document, flavor: Flavor) -> ConfigSet {
        ConfigSet {
            files: vec![ConfigFile {
                path: path.into(),
                document,
            }],
            findings: Vec::new(),
            flavor,
        }
    }

    /// Reads `main` (an absolute path inside `root`, usually `/etc/network/interfaces`) and the
    /// files it includes, all inside `root` (a staged tree resolves `/etc/network/...` inside
    /// the stage).
    pub fn load(root: &Path, main: &Path, flavor: Flavor) -> Result<ConfigSet, LoadError> {
        let resolved = rootfs::resolve(root, main).ok_or_else(|| LoadError {
            path: main.to_path_buf(),
            reason: "too many levels of symbolic links".into(),
        })?;
        let bytes =
            rootfs::read_capped(root, main, MAX_INTERFACES_BYTES).map_err(|e| LoadError {
                path: main.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut set = ConfigSet {
            files: Vec::new(),
            findings: Vec::new(),
            flavor,
        };
        let mut seen = BTreeSet::new();
        seen.insert(resolved.inner.clone());
        set.add(root, resolved.inner, Document::parse(&bytes), 0, &mut seen);
        Ok(set)
    }

    fn add(
        &mut self,
        root: &Path,
        path: PathBuf,
        doc: Document,
        depth: usize,
        seen: &mut BTreeSet<PathBuf>,
    ) {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let includes: Vec<(usize, bool, Option<Vec<u8>>)> = doc
            .lines()
            .iter()
            .filter_map(|l| match &l.item {
                Item::Source { path } => {
                    Some((l.line, false, path.as_ref().map(|t| t.text.clone())))
                }
                Item::SourceDirectory { path } => {
                    Some((l.line, true, path.as_ref().map(|t| t.text.clone())))
                }
                _ => None,
            })
            .collect();
        self.files.push(ConfigFile {
            path: path.clone(),
            document: doc,
        });
        for (line, is_dir, target) in includes {
            let finding = |code, severity, message: String| Finding {
                file: path.clone(),
                line,
                severity,
                code,
                message,
            };
            let Some(target) = target else {
                self.findings.push(finding(
                    FindingCode::MalformedLine,
                    Severity::Error,
                    "include without a path".into(),
                ));
                continue;
            };
            let target_path = PathBuf::from(OsStr::from_bytes(&target));
            if is_dir && self.flavor == Flavor::Ifupdown2 {
                self.findings.push(finding(
                    FindingCode::SourceDirectoryUnsupported,
                    Severity::Error,
                    format!(
                        "ifupdown2 does not support `source-directory {}` (error processing line)",
                        target_path.display()
                    ),
                ));
                continue;
            }
            if depth + 1 > MAX_DEPTH {
                self.findings.push(finding(
                    FindingCode::IncludeLoop,
                    Severity::Error,
                    "includes nested too deeply".into(),
                ));
                continue;
            }
            let base = if target_path.is_absolute() {
                target_path.clone()
            } else if self.flavor == Flavor::Ifupdown {
                dir.join(&target_path)
            } else {
                Path::new("/").join(&target_path)
            };
            let files = if is_dir {
                source_directory(root, &base)
            } else {
                expand_glob(root, &base)
            };
            let is_glob = target.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
            if files.is_empty() && is_glob && !is_dir {
                continue; // an empty glob is fine for both implementations
            }
            if files.is_empty() {
                let what = if is_dir {
                    "source directory"
                } else {
                    "source file"
                };
                self.findings.push(finding(
                    FindingCode::MissingSource,
                    Severity::Warning,
                    format!("cannot find {what} {}", base.display()),
                ));
                continue;
            }
            for f in files {
                let Some(res) = rootfs::resolve(root, &f) else {
                    continue;
                };
                if !seen.insert(res.inner.clone()) {
                    self.findings.push(finding(
                        FindingCode::IncludeLoop,
                        Severity::Warning,
                        format!("{} is included more than once", res.inner.display()),
                    ));
                    continue;
                }
                match rootfs::read_capped(root, &f, MAX_INTERFACES_BYTES) {
                    Ok(bytes) => {
                        self.add(root, res.inner, Document::parse(&bytes), depth + 1, seen)
                    }
                    Err(rootfs::ReadError::NotRegular) => {}
                    Err(e) => self.findings.push(finding(
                        FindingCode::MissingSource,
                        Severity::Warning,
                        format!("cannot read {}: {e}", res.inner.display()),
                    )),
                }
            }
        }
    }

    /// Renames across all files at once (see [`Document::rename`]); the collision check covers
    /// stanzas in different files. Returns one [`Renamed`] per file, in [`ConfigSet::files`]
    /// order.
    pub fn rename(&self, map: &RenameMap) -> Result<Vec<Renamed>, RenameError> {
        let mut out = Vec::new();
        for f in &self.files {
            out.push(f.document.rename(map, &f.path.to_string_lossy())?);
        }
        let names: Vec<String> = self
            .files
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect();
        let before: Vec<(&str, &Document)> = names
            .iter()
            .zip(&self.files)
            .map(|(n, f)| (n.as_str(), &f.document))
            .collect();
        let after: Vec<(&str, &Document)> = names
            .iter()
            .zip(&out)
            .map(|(n, r)| (n.as_str(), &r.document))
            .collect();
        check_collisions(&before, &after)?;
        Ok(out)
    }
}

/// Files of a classic `source-directory`: regular entries named `^[a-zA-Z0-9_-]+$`, sorted.
fn source_directory(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(Some(names)) = rootfs::list_dir(root, dir) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter(|n| {
            let b = n.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        })
        .map(|n| dir.join(n))
        .filter(|p| rootfs::is_file(root, p))
        .collect()
}

/// Expands a glob (`*`, `?`, `[...]` in any component) inside the root; results sorted per
/// component. A pattern without wildcards yields the path when it exists.
pub(crate) fn expand_glob(root: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::from("/")];
    let comps: Vec<&OsStr> = pattern
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    for comp in comps {
        let b = comp.as_bytes();
        let wild = b.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        let mut next = Vec::new();
        for base in &current {
            if !wild {
                next.push(base.join(comp));
                continue;
            }
            let Ok(Some(names)) = rootfs::list_dir(root, base) else {
                continue;
            };
            for n in names {
                let nb = n.as_bytes();
                if nb.first() == Some(&b'.') && b.first() != Some(&b'.') {
                    continue;
                }
                if glob_match(b, nb) {
                    next.push(base.join(n));
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .filter(|p| rootfs::is_file(root, p) || rootfs::is_dir(root, p))
        .filter(|p| !rootfs::is_dir(root, p))
        .collect()
}

/// fnmatch-style matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`.
pub(crate) fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class_match(&pat[p..], name[n]) {
                        if matched {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// Matches a `[...]` class at the start of `pat`: `(matched, class length)`, `None` if unclosed.
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if pat[i] <= c && c <= pat[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pat[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"vmbr0"));
        assert!(glob_match(b"*.cfg", b"a.cfg"));
        assert!(!glob_match(b"*.cfg", b"a.cfgx"));
        assert!(glob_match(b"e?o[0-9]", b"eno1"));
        assert!(!glob_match(b"e[!n]o1", b"eno1"));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
    }
}
