//! The outer `.bundle.tar`: listing and classifying its members without reading the archive.
//!
//! A bundle is a plain tar of basenames: `<archive>.metadata`, `<archive>.sha256` and
//! `<archive>` (since upstream v0.12.5 in that order; older bundles put the archive first).
//! Members are found by reading headers and seeking over data, so opening a bundle costs a
//! few kilobytes of I/O whatever its size, and the archive is later read straight out of the
//! bundle file (no copy into a work directory, unlike upstream).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::entry::EntryKind;
use crate::error::{Error, Result};
use crate::path::{ArchivePath, escape_bytes};
use crate::tar::{TarError, TarReader};

/// Most members a bundle may have (upstream writes three or four).
pub const MAX_MEMBERS: usize = 64;

/// One member of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Base name (display-escaped if not UTF-8).
    pub name: String,
    /// Entry type.
    pub kind: EntryKind,
    /// Offset of the member's data in the bundle file.
    pub offset: u64,
    /// Size of the member's data.
    pub size: u64,
}

/// The classified members of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleLayout {
    /// The compressed (and maybe encrypted) archive.
    pub archive: Member,
    /// `<archive>.metadata` (or `.manifest.json`), the JSON manifest.
    pub metadata: Option<Member>,
    /// `<archive>.sha256`.
    pub checksum: Option<Member>,
    /// Anything else that was ignored (e.g. a Bash-era `.metadata.sha256`).
    pub ignored: Vec<Member>,
    /// Remarks worth showing (odd names, ignored members).
    pub warnings: Vec<String>,
}

fn seek_skip(r: &mut BufReader<File>, n: u64) -> std::io::Result<()> {
    let n = i64::try_from(n).map_err(|_| std::io::Error::other("member too large"))?;
    r.seek_relative(n)
}

/// Lists the members of the bundle at `path`.
///
/// # Errors
/// [`Error::Io`] and [`Error::Bundle`] for unreadable, malformed or truncated bundles.
pub fn list_members(path: &Path) -> Result<Vec<Member>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let bad = |reason: String| Error::Bundle {
        path: path.to_path_buf(),
        reason,
    };
    let mut tar = TarReader::new(BufReader::with_capacity(16 << 10, file)).with_skipper(seek_skip);
    let mut members = Vec::new();
    loop {
        let header = match tar.next_entry() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(TarError::Io { source, .. }) => return Err(Error::io(path, source)),
            Err(e) => return Err(bad(format!("not a readable bundle: {e}"))),
        };
        let offset = tar.position();
        if offset.saturating_add(header.size) > len {
            return Err(bad(format!(
                "the bundle is truncated: member {} needs {} bytes but the file ends {} bytes after its start",
                header.display_name(),
                header.size,
                len.saturating_sub(offset)
            )));
        }
        if members.len() >= MAX_MEMBERS {
            return Err(bad(format!(
                "more than {MAX_MEMBERS} members: not a proxsave bundle"
            )));
        }
        let name = match ArchivePath::parse(&header.raw_path) {
            Ok(Some(p)) => escape_bytes(p.file_name()),
            Ok(None) => continue,
            Err(e) => {
                return Err(bad(format!(
                    "member {} has an unsafe name ({e})",
                    header.display_name()
                )));
            }
        };
        members.push(Member {
            name,
            kind: header.kind,
            offset,
            size: header.size,
        });
    }
    Ok(members)
}

/// Opens and classifies the bundle at `path`.
///
/// # Errors
/// As [`list_members`], plus [`Error::Bundle`] when there is no archive member, more than one,
/// or duplicated sidecars.
pub fn open(path: &Path) -> Result<BundleLayout> {
    classify(path, list_members(path)?)
}

/// Classifies listed members by suffix (see the module docs).
///
/// # Errors
/// [`Error::Bundle`] when the members do not form one backup.
pub fn classify(path: &Path, members: Vec<Member>) -> Result<BundleLayout> {
    let bad = |reason: String| Error::Bundle {
        path: path.to_path_buf(),
        reason,
    };
    let mut names = std::collections::HashSet::new();
    let mut metadata: Option<Member> = None;
    let mut manifest_json: Option<Member> = None;
    let mut checksum: Option<Member> = None;
    let mut archives: Vec<Member> = Vec::new();
    let mut ignored = Vec::new();
    let mut warnings = Vec::new();
    for m in members {
        if m.kind == EntryKind::Directory {
            continue;
        }
        if !names.insert(m.name.clone()) {
            return Err(bad(format!("member {} appears twice", m.name)));
        }
        if m.kind != EntryKind::File {
            return Err(bad(format!(
                "member {} is a {}, not a file",
                m.name, m.kind
            )));
        }
        let slot = if m.name.ends_with(".metadata.sha256") {
            warnings.push(format!("ignored legacy member {}", m.name));
            ignored.push(m);
            continue;
        } else if m.name.ends_with(".metadata") {
            &mut metadata
        } else if m.name.ends_with(".manifest.json") {
            &mut manifest_json
        } else if m.name.ends_with(".sha256") {
            &mut checksum
        } else {
            archives.push(m);
            continue;
        };
        if let Some(prev) = slot {
            return Err(bad(format!(
                "two members of the same kind: {} and {}",
                prev.name, m.name
            )));
        }
        *slot = Some(m);
    }
    let archive = match archives.len() {
        0 => return Err(bad("the bundle holds no archive member".into())),
        1 => archives.remove(0),
        _ => {
            let list: Vec<_> = archives.iter().map(|m| m.name.as_str()).collect();
            return Err(bad(format!(
                "the bundle holds more than one archive: {}",
                list.join(", ")
            )));
        }
    };
    let metadata = metadata.or(manifest_json);
    for (sidecar, suffixes) in [
        (&metadata, &[".metadata", ".manifest.json"][..]),
        (&checksum, &[".sha256"][..]),
    ] {
        if let Some(m) = sidecar
            && !suffixes
                .iter()
                .any(|s| m.name == format!("{}{s}", archive.name))
        {
            warnings.push(format!(
                "member {} does not carry the archive's name {}",
                m.name, archive.name
            ));
        }
    }
    Ok(BundleLayout {
        archive,
        metadata,
        checksum,
        ignored,
        warnings,
    })
}

/// Reads a small member's bytes (sidecars), at most `limit` bytes.
///
/// # Errors
/// [`Error::Io`], or [`Error::Bundle`] when the member is larger than `limit`.
pub fn read_member(path: &Path, member: &Member, limit: u64) -> Result<Vec<u8>> {
    if member.size > limit {
        return Err(Error::Bundle {
            path: path.to_path_buf(),
            reason: format!(
                "member {} is {} bytes, more than the {limit} allowed for a sidecar",
                member.name, member.size
            ),
        });
    }
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(member.offset))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = Vec::with_capacity(member.size as usize);
    file.take(member.size)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 != member.size {
        return Err(Error::Bundle {
            path: path.to_path_buf(),
            reason: format!("member {} is truncated", member.name),
        });
    }
    Ok(buf)
}
