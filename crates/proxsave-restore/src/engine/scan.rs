//! The analysis read: verifies the backup, finds its categories and remembers its entries.
//!
//! The entry list is a [`SpillVec`]: compact records kept in memory up to a budget, then
//! appended to an unnamed file (mode 0600) in the run's private work directory, so a
//! backup with a million entries does not hold a million entries in memory.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use proxsave_archive::backup::Backup;
use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::{self, StreamOptions, StreamSummary};
use proxsave_archive::spill::{self, Record, SpillVec};
use proxsave_categories::Analyzer;

use crate::error::RestoreError;

/// Where the dedup manifest lives inside archives.
pub const DEDUP_MANIFEST: &str = "var/lib/proxsave-info/dedup_manifest.json";
/// Largest dedup manifest read.
pub const DEDUP_MANIFEST_LIMIT: u64 = 16 << 20;

/// One entry seen by the analysis read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Normalised path.
    pub path: ArchivePath,
    /// Type.
    pub kind: EntryKind,
    /// Link text of symlinks (needed to repair dedup links without another read).
    pub link: Option<Vec<u8>>,
    /// Data size of regular files (for the free-space check).
    pub size: u64,
    /// SHA-256 of a regular file's data, so the plan can say whether the root already
    /// holds the same content (new / replaced / unchanged) before anything is written.
    pub sha256: Option<[u8; 32]>,
}

impl Seen {
    /// The SHA-256 in lowercase hex, as shown and as [`crate::compare`] returns it.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.as_ref().map(|d| hex(d))
    }
}

fn hex(d: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn from_hex(h: &str) -> Option<[u8; 32]> {
    let b = h.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

fn kind_tag(k: EntryKind) -> (u8, u8) {
    match k {
        EntryKind::Directory => (0, 0),
        EntryKind::File => (1, 0),
        EntryKind::Symlink => (2, 0),
        EntryKind::Hardlink => (3, 0),
        EntryKind::CharDevice => (4, 0),
        EntryKind::BlockDevice => (5, 0),
        EntryKind::Fifo => (6, 0),
        EntryKind::Contiguous => (7, 0),
        EntryKind::Sparse => (8, 0),
        EntryKind::GlobalHeader => (9, 0),
        EntryKind::Other(b) => (10, b),
    }
}

fn kind_of(tag: u8, extra: u8) -> io::Result<EntryKind> {
    Ok(match tag {
        0 => EntryKind::Directory,
        1 => EntryKind::File,
        2 => EntryKind::Symlink,
        3 => EntryKind::Hardlink,
        4 => EntryKind::CharDevice,
        5 => EntryKind::BlockDevice,
        6 => EntryKind::Fifo,
        7 => EntryKind::Contiguous,
        8 => EntryKind::Sparse,
        9 => EntryKind::GlobalHeader,
        10 => EntryKind::Other(extra),
        _ => return Err(bad_record()),
    })
}

fn bad_record() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "bad entry record")
}

/// Flag bits of an encoded [`Seen`].
const HAS_LINK: u8 = 1;
const HAS_SHA: u8 = 2;
const HAS_SIZE: u8 = 4;

impl Record for Seen {
    fn encode(&self, out: &mut Vec<u8>) {
        let (tag, extra) = kind_tag(self.kind);
        let flags = if self.link.is_some() { HAS_LINK } else { 0 }
            | if self.sha256.is_some() { HAS_SHA } else { 0 }
            | if self.size != 0 { HAS_SIZE } else { 0 };
        out.extend_from_slice(&[tag, extra, flags]);
        spill::put_bytes(out, self.path.as_bytes());
        if let Some(l) = &self.link {
            spill::put_bytes(out, l);
        }
        if self.size != 0 {
            spill::put_u64(out, self.size);
        }
        if let Some(d) = &self.sha256 {
            out.extend_from_slice(d);
        }
    }

    fn decode(input: &mut dyn Read) -> io::Result<Self> {
        let mut head = [0u8; 3];
        input.read_exact(&mut head)?;
        let [tag, extra, flags] = head;
        let kind = kind_of(tag, extra)?;
        let path = ArchivePath::parse(&spill::get_bytes(input)?)
            .ok()
            .flatten()
            .ok_or_else(bad_record)?;
        let link = if flags & HAS_LINK != 0 {
            Some(spill::get_bytes(input)?)
        } else {
            None
        };
        let size = if flags & HAS_SIZE != 0 {
            spill::get_u64(input)?
        } else {
            0
        };
        let sha256 = if flags & HAS_SHA != 0 {
            let mut d = [0u8; 32];
            input.read_exact(&mut d)?;
            Some(d)
        } else {
            None
        };
        Ok(Seen {
            path,
            kind,
            link,
            size,
            sha256,
        })
    }
}

/// The result of the analysis read (which also verified the whole backup).
pub struct Scan {
    /// Categories, backup type, cluster mode, host name.
    pub analysis: proxsave_categories::Analysis,
    /// Every usable entry, in archive order (see [`Scan::entries`]).
    list: SpillVec<Seen>,
    /// Where `list` spills (and lists derived from it may spill).
    spill_dir: PathBuf,
    /// The dedup manifest's bytes, if the archive has one.
    pub dedup_manifest: Option<Vec<u8>>,
    /// What the read proved (checksum etc.).
    pub stream: StreamSummary,
    /// Every entry of the tar stream, the root folder `./` and unusable names included: the
    /// number `verify` and `extract` report.
    pub tar_entries: u64,
    /// The verified tar stream, kept by [`scan_in`] so the extraction pass need not decrypt
    /// and decompress the backup again.
    kept_tar: Option<read::VerifiedTar>,
}

impl Scan {
    /// The tar stream this read verified, kept in an unnamed private file, if it was kept
    /// (see [`scan_in`]).
    pub fn kept_tar(&self) -> Option<&read::VerifiedTar> {
        self.kept_tar.as_ref()
    }

    /// Opens the extraction pass over the backup: the kept tar stream when there is one,
    /// else a new read of the backup (decrypted, decompressed and checked again).
    ///
    /// # Errors
    /// As [`read::open_stream`].
    pub fn reopen<'b>(
        &self,
        backup: &'b Backup,
        opts: &StreamOptions<'_>,
    ) -> Result<read::ArchiveStream<'b>, RestoreError> {
        match &self.kept_tar {
            Some(k) => Ok(k.open(backup, opts.progress.clone())),
            None => Ok(read::open_stream(backup, opts)?),
        }
    }

    /// Every usable entry, in archive order. Reading a spilled list can fail (an I/O error
    /// of the private work directory).
    pub fn entries(&self) -> impl Iterator<Item = Result<Seen, RestoreError>> + '_ {
        self.list
            .iter()
            .map(|r| r.map_err(|e| RestoreError::io(&self.spill_dir, e)))
    }

    /// Number of usable entries.
    pub fn len(&self) -> u64 {
        self.list.len()
    }

    /// True when the backup has no usable entry.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// True once part of the entry list lives in the spill file.
    pub fn is_spilled(&self) -> bool {
        self.list.is_spilled()
    }

    /// The private directory the entry list spills into; lists derived from the scan
    /// spill there too.
    pub fn spill_dir(&self) -> &Path {
        &self.spill_dir
    }
}

/// Reads the whole backup once: verifies it, finds the available categories and the
/// backup's type, and remembers the entry list (spilled past
/// [`spill::LIST_BUDGET`] into an unnamed file of the system's temporary directory; see
/// [`scan_in`] to name the run's private work directory).
///
/// # Errors
/// Any read-path error.
pub fn scan(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<Scan, RestoreError> {
    scan_with(
        backup,
        opts,
        cancel,
        &std::env::temp_dir(),
        spill::LIST_BUDGET,
        false,
    )
}

/// The share of the work directory's free space the kept tar stream may use (a quarter):
/// past it, the extraction pass reads the backup again instead.
const KEEP_SHARE: u64 = 4;

fn keep_limit(dir: &Path) -> u64 {
    match rustix::fs::statvfs(dir) {
        Ok(v) => v.f_bavail.saturating_mul(v.f_frsize) / KEEP_SHARE,
        Err(_) => 0,
    }
}

/// [`scan`], keeping at most `budget` bytes of the entry list in memory and spilling the
/// rest into an unnamed file (mode 0600) in `spill_dir` (the run's private work directory).
///
/// The verified tar stream is kept too, in another unnamed file of `spill_dir`, as long as
/// it stays within a quarter of that filesystem's free space ([`Scan::kept_tar`]): the
/// restore's extraction pass then reads it instead of decrypting and decompressing the
/// backup a second time, and restores exactly the bytes this read verified.
///
/// # Errors
/// Any read-path error; the spill file cannot be written.
pub fn scan_in(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
    spill_dir: &Path,
    budget: usize,
) -> Result<Scan, RestoreError> {
    scan_with(backup, opts, cancel, spill_dir, budget, true)
}

fn scan_with(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
    spill_dir: &Path,
    budget: usize,
    keep_tar: bool,
) -> Result<Scan, RestoreError> {
    let limit = if keep_tar { keep_limit(spill_dir) } else { 0 };
    let spool = (limit > 0)
        .then(|| tempfile::tempfile_in(spill_dir).ok())
        .flatten();
    let mut stream = match spool {
        Some(f) => read::open_stream_keeping_tar(backup, opts, f, limit)?,
        None => read::open_stream(backup, opts)?,
    };
    let mut analyzer = Analyzer::new();
    let mut list = SpillVec::new(spill_dir, budget);
    let mut dedup_manifest = None;
    let mut tar_entries = 0u64;
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        tar_entries += 1;
        let Ok(Some(path)) = ArchivePath::parse(&h.raw_path) else {
            continue;
        };
        proxsave_archive::checkpoint::checkpoint("scan", &path);
        analyzer.observe(&path);
        let wants_meta = analyzer.wants_content(&path, h.kind, h.size);
        let wants_dedup = h.kind == EntryKind::File
            && path.as_bytes() == DEDUP_MANIFEST.as_bytes()
            && h.size <= DEDUP_MANIFEST_LIMIT;
        let mut sha256 = None;
        if wants_meta || wants_dedup {
            let mut buf = Vec::with_capacity(h.size as usize);
            std::io::Read::read_to_end(stream.data(), &mut buf)
                .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
            if h.kind == EntryKind::File {
                use sha2::Digest;
                sha256 = Some(sha2::Sha256::digest(&buf).into());
            }
            if wants_meta {
                analyzer.observe_metadata(&buf);
            }
            if wants_dedup {
                dedup_manifest = Some(buf);
            }
        } else if h.kind == EntryKind::File {
            let (hex, _) = proxsave_archive::checksum::sha256_of(stream.data())
                .map_err(|e| stream.explain(proxsave_archive::Error::Read(e)))?;
            sha256 = from_hex(&hex);
        }
        let link = (h.kind == EntryKind::Symlink)
            .then(|| h.link_target.clone())
            .flatten();
        list.push(&Seen {
            path,
            kind: h.kind,
            link,
            size: if h.kind == EntryKind::File { h.size } else { 0 },
            sha256,
        })
        .map_err(|e| RestoreError::io(spill_dir, e))?;
    }
    let (summary, kept_tar) = stream.finish_keeping_tar()?;
    let analysis = analyzer.finish(&backup.manifest);
    Ok(Scan {
        analysis,
        list,
        spill_dir: spill_dir.to_path_buf(),
        dedup_manifest,
        stream: summary,
        tar_entries,
        kept_tar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_records_round_trip() {
        let mut out = Vec::new();
        let all = [
            Seen {
                path: ArchivePath::from_user("etc/hosts").expect("path"),
                kind: EntryKind::File,
                link: None,
                size: 12,
                sha256: Some([7u8; 32]),
            },
            Seen {
                path: ArchivePath::from_user("usr/bin/x").expect("path"),
                kind: EntryKind::Symlink,
                link: Some(b"../y".to_vec()),
                size: 0,
                sha256: None,
            },
            Seen {
                path: ArchivePath::from_user("dev/odd").expect("path"),
                kind: EntryKind::Other(b'Z'),
                link: None,
                size: 0,
                sha256: None,
            },
        ];
        for s in &all {
            s.encode(&mut out);
        }
        let mut r = &out[..];
        for s in &all {
            assert_eq!(&Seen::decode(&mut r).expect("decode"), s);
        }
        assert!(r.is_empty());
        assert_eq!(
            from_hex(&hex(&[0xab; 32])).expect("hex"),
            [0xab; 32],
            "hex round trip"
        );
    }
}
