//! Reading inside a root directory as if it were `/`.
//!
//! Every path this crate reads is an absolute path of the *root* (a virtual `/`: the live system,
//! a staging tree or a test's temporary directory). Symbolic links are resolved inside the root,
//! the way `chroot` would: an absolute link target starts again at the root and `..` never climbs
//! above it, so a staged `/etc/network/interfaces.d/x -> /etc/foo` reads the stage's `/etc/foo`,
//! never the host's.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed while resolving one path, like the kernel's limit.
const MAX_LINKS: usize = 40;

/// A path resolved inside a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The path on this machine (`root` joined with `inner`).
    pub(crate) host: PathBuf,
    /// The absolute path as seen inside the root, symlinks resolved.
    pub(crate) inner: PathBuf,
}

/// Resolves `path` (absolute or relative to the root's `/`) inside `root`, following symlinks
/// inside the root. Components that do not exist are kept as they are (the result then names a
/// file that does not exist). `None` when the symlink limit is exceeded.
pub(crate) fn resolve(root: &Path, path: &Path) -> Option<Resolved> {
    let mut stack: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = components(path);
    pending.reverse();
    let mut links = 0usize;
    while let Some(part) = pending.pop() {
        if part == ".." {
            stack.pop();
            continue;
        }
        stack.push(part);
        let host = join(root, &stack);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let Ok(target) = std::fs::read_link(&host) else {
            continue;
        };
        stack.pop();
        if target.is_absolute() {
            stack.clear();
        }
        let mut more = components(&target);
        more.reverse();
        pending.extend(more);
    }
    let inner = stack
        .iter()
        .fold(PathBuf::from("/"), |acc, part| acc.join(part));
    Some(Resolved {
        host: join(root, &stack),
        inner,
    })
}

/// The normal components of `path` (`..` kept, `.` and the root dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    parts.iter().fold(root.to_path_buf(), |acc, p| acc.join(p))
}

/// Why a file inside the root could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The file does not exist.
    NotFound,
    /// The file is larger than the cap.
    TooLarge(u64),
    /// Not a regular file.
    NotRegular,
    /// Too many symbolic links.
    Loop,
    /// Any other I/O error.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::TooLarge(n) => write!(f, "file too large ({n} bytes)"),
            ReadError::NotRegular => f.write_str("not a regular file"),
            ReadError::Loop => f.write_str("too many levels of symbolic links"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads a regular file inside the root, at most `cap` bytes.
pub(crate) fn read_capped(root: &Path, path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let resolved = resolve(root, path).ok_or(ReadError::Loop)?;
    let meta = match std::fs::metadata(&resolved.host) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(e) => return Err(ReadError::Io(e)),
    };
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let file = std::fs::File::open(&resolved.host).map_err(ReadError::Io)?;
    let mut buf = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// The entries of a directory inside the root, sorted by name; `Ok(None)` when it does not exist.
pub(crate) fn list_dir(root: &Path, path: &Path) -> std::io::Result<Option<Vec<OsString>>> {
    let Some(resolved) = resolve(root, path) else {
        return Err(std::io::Error::other("too many levels of symbolic links"));
    };
    let rd = match std::fs::read_dir(&resolved.host) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in rd {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(Some(names))
}

/// True when `path` inside the root is (after resolving links) a directory.
pub(crate) fn is_dir(root: &Path, path: &Path) -> bool {
    resolve(root, path).is_some_and(|r| r.host.is_dir())
}

/// True when `path` inside the root is (after resolving links) a regular file.
pub(crate) fn is_file(root: &Path, path: &Path) -> bool {
    resolve(root, path).is_some_and(|r| r.host.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/network")).expect("mkdir");
        std::fs::write(root.join("etc/real"), b"inside").expect("write");
        std::os::unix::fs::symlink("/etc/real", root.join("etc/network/link")).expect("link");
        std::os::unix::fs::symlink("../../../../../etc/real", root.join("etc/network/up"))
            .expect("link");
        let r = resolve(root, Path::new("/etc/network/link")).expect("resolves");
        assert_eq!(r.inner, PathBuf::from("/etc/real"));
        assert_eq!(
            read_capped(root, Path::new("/etc/network/link"), 100).expect("read"),
            b"inside"
        );
        assert_eq!(
            read_capped(root, Path::new("/etc/network/up"), 100).expect("read"),
            b"inside"
        );
        assert!(matches!(
            read_capped(root, Path::new("/etc/real"), 3),
            Err(ReadError::TooLarge(6))
        ));
    }

    #[test]
    fn link_loops_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/b", dir.path().join("a")).expect("link");
        std::os::unix::fs::symlink("/a", dir.path().join("b")).expect("link");
        assert!(resolve(dir.path(), Path::new("/a")).is_none());
    }
}
