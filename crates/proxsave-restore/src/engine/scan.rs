//! The analysis read: verifies the backup, finds its categories and remembers its entries.

use proxsave_archive::backup::Backup;
use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::{self, StreamOptions, StreamSummary};
use proxsave_categories::Analyzer;

use crate::error::RestoreError;

/// Where the dedup manifest lives inside archives.
pub const DEDUP_MANIFEST: &str = "var/lib/proxsave-info/dedup_manifest.json";
/// Largest dedup manifest read.
pub const DEDUP_MANIFEST_LIMIT: u64 = 16 << 20;

/// One entry seen by the analysis read.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Normalised path.
    pub path: ArchivePath,
    /// Type.
    pub kind: EntryKind,
    /// Link text of symlinks (needed to repair dedup links without another read).
    pub link: Option<Vec<u8>>,
    /// Data size of regular files (for the free-space check).
    pub size: u64,
    /// SHA-256 (hex) of a regular file's data, so the plan can say whether the root already
    /// holds the same content (new / replaced / unchanged) before anything is written.
    pub sha256: Option<String>,
}

/// The result of the analysis read (which also verified the whole backup).
pub struct Scan {
    /// Categories, backup type, cluster mode, host name.
    pub analysis: proxsave_categories::Analysis,
    /// Every usable entry path, in archive order.
    pub entries: Vec<Seen>,
    /// The dedup manifest's bytes, if the archive has one.
    pub dedup_manifest: Option<Vec<u8>>,
    /// What the read proved (checksum etc.).
    pub stream: StreamSummary,
    /// Every entry of the tar stream, the root folder `./` and unusable names included: the
    /// number `verify` and `extract` report.
    pub tar_entries: u64,
}

/// Reads the whole backup once: verifies it, finds the available categories and the
/// backup's type, and remembers the entry list.
///
/// # Errors
/// Any read-path error.
pub fn scan(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<Scan, RestoreError> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut analyzer = Analyzer::new();
    let mut entries = Vec::new();
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
                sha256 = Some(hex_sha256(&buf));
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
            sha256 = Some(hex);
        }
        let link = (h.kind == EntryKind::Symlink)
            .then(|| h.link_target.clone())
            .flatten();
        entries.push(Seen {
            path,
            kind: h.kind,
            link,
            size: if h.kind == EntryKind::File { h.size } else { 0 },
            sha256,
        });
    }
    let summary = stream.finish()?;
    let analysis = analyzer.finish(&backup.manifest);
    Ok(Scan {
        analysis,
        entries,
        dedup_manifest,
        stream: summary,
        tar_entries,
    })
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
