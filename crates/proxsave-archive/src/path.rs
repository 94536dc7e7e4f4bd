//! Normalised archive paths.
//!
//! Tar member names are bytes, written by many tools: `./etc/hosts`, `etc/hosts`, `/etc/hosts`,
//! `etc//hosts/`. [`ArchivePath`] is the one normal form every other part of the crate uses:
//! relative, `/`-separated, no empty, `.` or `..` components, no NUL. Names are kept as bytes
//! (they need not be UTF-8) and only turned into text for display, with control characters
//! escaped so a hostile name cannot forge log lines.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// Longest path accepted, in bytes (Linux `PATH_MAX` minus the terminating NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest single component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a member name cannot be used as a path inside a root.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The name is empty (or only `/` and `.` components) where a file name is needed.
    #[error("empty name")]
    Empty,
    /// A `..` component would climb out of the root.
    #[error("name contains '..'")]
    DotDot,
    /// A NUL byte inside the name (only possible through PAX records).
    #[error("name contains a NUL byte")]
    Nul,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("name is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A component longer than [`MAX_COMPONENT_BYTES`].
    #[error("a name component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
}

/// A normalised, relative archive path (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArchivePath(Vec<u8>);

impl ArchivePath {
    /// Normalises a raw member name.
    ///
    /// Leading `/` and `./` are dropped (absolute names land inside the root, as GNU tar does),
    /// empty and `.` components are dropped, a trailing `/` is ignored. Returns `Ok(None)` for
    /// names that denote the root itself (`.`, `./`, `/`).
    ///
    /// # Errors
    /// [`PathError`] for `..` components, NUL bytes and over-long names.
    pub fn parse(raw: &[u8]) -> Result<Option<ArchivePath>, PathError> {
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => continue,
                b".." => return Err(PathError::DotDot),
                _ => {
                    if comp.len() > MAX_COMPONENT_BYTES {
                        return Err(PathError::ComponentTooLong);
                    }
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(comp);
                }
            }
        }
        if out.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if out.is_empty() {
            Ok(None)
        } else {
            Ok(Some(ArchivePath(out)))
        }
    }

    /// Like [`ArchivePath::parse`] for text given by a user (`etc/hosts`, `./etc/hosts`,
    /// `/etc/hosts`); the root is an error.
    ///
    /// # Errors
    /// [`PathError`] as for `parse`, and [`PathError::Empty`] for the root.
    pub fn from_user(text: &str) -> Result<ArchivePath, PathError> {
        ArchivePath::parse(text.as_bytes())?.ok_or(PathError::Empty)
    }

    /// The path bytes, e.g. `etc/pve/storage.cfg`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as an `OsStr` (relative).
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// The path as text if it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Components, first to last.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The parent path, `None` for a top-level name.
    pub fn parent(&self) -> Option<ArchivePath> {
        let pos = self.0.iter().rposition(|&b| b == b'/')?;
        Some(ArchivePath(self.0[..pos].to_vec()))
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(pos) => &self.0[pos + 1..],
            None => &self.0,
        }
    }

    /// Every proper ancestor, outermost first (`etc`, `etc/pve` for `etc/pve/x`).
    pub fn ancestors(&self) -> impl Iterator<Item = ArchivePath> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| ArchivePath(self.0[..i].to_vec()))
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &ArchivePath) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0[other.0.len()] == b'/')
    }

    /// `self/name`.
    pub fn join(&self, name: &[u8]) -> ArchivePath {
        let mut v = self.0.clone();
        v.push(b'/');
        v.extend_from_slice(name);
        ArchivePath(v)
    }

    /// The name as upstream archives store it (`./etc/hosts`), escaped for display.
    pub fn display_dotted(&self) -> String {
        format!("./{}", self)
    }
}

impl fmt::Display for ArchivePath {
    /// Text form with non-printable bytes escaped (`\n`, `\x1b`, invalid UTF-8 as `\xNN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_bytes(&self.0))
    }
}

/// Serialised as its display text (`etc/hosts`, unusual bytes escaped).
impl serde::Serialize for ArchivePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Debug for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArchivePath({:?})", escape_bytes(&self.0))
    }
}

/// Escapes raw name bytes for display: valid UTF-8 printable characters pass through, control
/// characters and invalid bytes become `\n`, `\t`, `\xNN`, and a backslash becomes `\\`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        ArchivePath::parse(s.as_bytes())
            .unwrap()
            .map(|p| p.to_string())
    }

    #[test]
    fn normalises_upstream_and_gnu_forms() {
        assert_eq!(p("./etc/hosts").as_deref(), Some("etc/hosts"));
        assert_eq!(p("etc/hosts").as_deref(), Some("etc/hosts"));
        assert_eq!(p("/etc/hosts").as_deref(), Some("etc/hosts"));
        assert_eq!(p("//etc//./hosts/").as_deref(), Some("etc/hosts"));
        assert_eq!(p("./"), None);
        assert_eq!(p("."), None);
        assert_eq!(p("////"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn refuses_traversal_nul_and_long_names() {
        for bad in ["../etc/passwd", "a/../../x", "./../x", "/../x", "a/.."] {
            assert_eq!(
                ArchivePath::parse(bad.as_bytes()),
                Err(PathError::DotDot),
                "{bad}"
            );
        }
        assert_eq!(ArchivePath::parse(b"etc/a\0b"), Err(PathError::Nul));
        let long_comp = "a".repeat(256);
        assert_eq!(
            ArchivePath::parse(long_comp.as_bytes()),
            Err(PathError::ComponentTooLong)
        );
        let long_path = vec!["abcdefgh"; 600].join("/");
        assert_eq!(
            ArchivePath::parse(long_path.as_bytes()),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn non_utf8_round_trips_and_displays_escaped() {
        let raw = b"etc/caf\xe9\n\x1b[31m";
        let path = ArchivePath::parse(raw).unwrap().unwrap();
        assert_eq!(path.as_bytes(), raw);
        assert_eq!(path.to_string(), "etc/caf\\xe9\\n\\x1b[31m");
    }

    #[test]
    fn ancestors_parent_and_prefix() {
        let path = ArchivePath::from_user("/etc/pve/priv/authkey.key").unwrap();
        let anc: Vec<String> = path.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(anc, ["etc", "etc/pve", "etc/pve/priv"]);
        assert_eq!(path.parent().unwrap().to_string(), "etc/pve/priv");
        assert_eq!(path.file_name(), b"authkey.key");
        let etc = ArchivePath::from_user("etc").unwrap();
        assert!(path.starts_with(&etc));
        assert!(
            !ArchivePath::from_user("etcetera")
                .unwrap()
                .starts_with(&etc)
        );
        assert_eq!(path.display_dotted(), "./etc/pve/priv/authkey.key");
    }
}
