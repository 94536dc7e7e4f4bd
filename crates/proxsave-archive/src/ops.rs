//! Whole-backup operations built on the read pipeline: verify, list, read one file, extract,
//! decrypt. The CLI's read-only commands are thin layers over these.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::Backup;
use crate::entry::{EntryHeader, EntryKind, Timestamp};
use crate::error::{Error, Result};
use crate::extract::{ExtractOptions, ExtractReport, Extractor, Selection};
use crate::path::ArchivePath;
use crate::pathmatch::Selector;
use crate::progress::CancelToken;
use crate::read::{self, StreamOptions, StreamSummary};
use crate::write;

/// The result of [`verify`].
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// What the full read proved.
    pub stream: StreamSummary,
    /// What extraction into an empty root would do with each entry.
    pub entries: ExtractReport,
}

impl VerifyReport {
    /// Sound: the read succeeded (checksum included) and no entry would be refused.
    pub fn is_sound(&self) -> bool {
        self.entries.refused == 0 && self.entries.failed == 0
    }
}

/// Reads the whole backup, applying every extraction rule in report-only mode.
///
/// # Errors
/// Any read-path error (checksum, key, decompression, tar structure). Refused entries are
/// not errors; see [`VerifyReport::is_sound`].
pub fn verify(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<VerifyReport> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut extractor = Extractor::report_only(ExtractOptions {
        cancel: cancel.clone(),
        ..ExtractOptions::default()
    });
    while let Some(header) = stream.next_entry()? {
        if let Err(e) = extractor.add(&header, stream.data(), Selection::Include) {
            return Err(stream.explain(e));
        }
    }
    let summary = stream.finish()?;
    let entries = extractor.commit()?;
    Ok(VerifyReport {
        stream: summary,
        entries,
    })
}

/// One line of `ls`.
#[derive(Clone, Debug, Serialize)]
pub struct ListedEntry {
    /// Member name as stored, escaped.
    pub name: String,
    /// Type.
    pub kind: EntryKind,
    /// Mode bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uname: Option<String>,
    /// Group name, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gname: Option<String>,
    /// Data size.
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Link target for links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl ListedEntry {
    fn of(h: &EntryHeader) -> ListedEntry {
        ListedEntry {
            name: h.display_name(),
            kind: h.kind,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            uname: h.uname.clone(),
            gname: h.gname.clone(),
            size: h.size,
            mtime: h.mtime,
            link: h.display_link(),
        }
    }
}

fn selected(selector: &Selector, h: &EntryHeader) -> bool {
    match ArchivePath::parse(&h.raw_path) {
        Ok(Some(p)) => selector.matches(&p),
        Ok(None) => selector.is_empty(),
        Err(_) => selector.is_empty(),
    }
}

/// Lists the entries matching `selector`. The list is returned only after the whole backup
/// was verified.
///
/// # Errors
/// Any read-path error.
pub fn list(
    backup: &Backup,
    selector: &Selector,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<(Vec<ListedEntry>, StreamSummary)> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut out = Vec::new();
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        if selected(selector, &h) {
            out.push(ListedEntry::of(&h));
        }
    }
    let summary = stream.finish()?;
    Ok((out, summary))
}

/// Content buffered until the backup is verified: in memory up to a limit, then in an
/// anonymous temporary file (never a named file).
pub struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
    /// Read buffer of [`Spool::fill`], kept across calls: a restore fills the spool once per
    /// file, and a fresh zeroed 256 KiB buffer per (mostly tiny) file cost more than the
    /// file's own I/O.
    buf: Vec<u8>,
}

/// Bytes kept in memory before [`Spool`] moves to an anonymous file.
pub const SPOOL_MEMORY: usize = 8 << 20;

impl Default for Spool {
    fn default() -> Self {
        Spool::new()
    }
}

impl Spool {
    /// An empty spool.
    pub fn new() -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            len: 0,
            buf: Vec::new(),
        }
    }

    /// Empties the spool (keeping its buffers).
    pub fn clear(&mut self) -> io::Result<()> {
        self.mem.clear();
        if let Some(f) = &mut self.file {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
        }
        self.len = 0;
        Ok(())
    }

    /// Appends everything `r` yields, checking `cancel` between buffers.
    ///
    /// # Errors
    /// Read errors of `r` (as [`Error::Read`]), spool write errors, [`Error::Cancelled`].
    pub fn fill(&mut self, r: &mut dyn io::Read, cancel: &CancelToken) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            buf = vec![0u8; 256 << 10];
        }
        let result = loop {
            if let Err(e) = cancel.check() {
                break Err(e);
            }
            let n = match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(Error::Read(e)),
            };
            if let Err(e) = self.write_all(&buf[..n]) {
                break Err(Error::io(std::env::temp_dir(), e));
            }
        };
        self.buf = buf;
        result
    }

    /// A reader over the content from its start.
    ///
    /// # Errors
    /// Seek errors of the backing file.
    pub fn reader(&mut self) -> io::Result<Box<dyn io::Read + '_>> {
        match &mut self.file {
            Some(f) => {
                f.seek(SeekFrom::Start(0))?;
                Ok(Box::new((&*f).take(self.len)))
            }
            None => Ok(Box::new(&self.mem[..])),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.mem.len() + data.len() > SPOOL_MEMORY {
            let mut f = tempfile::tempfile()?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => f.write_all(data)?,
            None => self.mem.extend_from_slice(data),
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the content to `out`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<u64> {
        match &mut self.file {
            Some(f) => {
                f.seek(SeekFrom::Start(0))?;
                io::copy(f, out)
            }
            None => {
                out.write_all(&self.mem)?;
                Ok(self.mem.len() as u64)
            }
        }
    }
}

/// Reads one regular file's content. It is handed out only after the whole backup was
/// verified; when the archive holds the path several times, the last one wins (as for
/// extraction).
///
/// # Errors
/// Read-path errors, and [`Error::NotFound`] / [`Error::NotAFile`] for the path.
pub fn read_file(
    backup: &Backup,
    path: &ArchivePath,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
) -> Result<(Spool, StreamSummary)> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut found: Option<std::result::Result<Spool, String>> = None;
    let mut buf = vec![0u8; 256 << 10];
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        if ArchivePath::parse(&h.raw_path).ok().flatten().as_ref() != Some(path) {
            continue;
        }
        match h.kind {
            EntryKind::File => {
                let mut spool = Spool::new();
                loop {
                    let n = match stream.data().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(stream.explain(Error::Read(e))),
                    };
                    spool
                        .write_all(&buf[..n])
                        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                }
                found = Some(Ok(spool));
            }
            EntryKind::Symlink => {
                found = Some(Err(format!(
                    "is a symbolic link to {}",
                    h.display_link().unwrap_or_default()
                )));
            }
            EntryKind::Hardlink => {
                found = Some(Err(format!(
                    "is a hard link to {}; ask for that path",
                    h.display_link().unwrap_or_default()
                )));
            }
            other => found = Some(Err(format!("is a {other}"))),
        }
    }
    let summary = stream.finish()?;
    match found {
        Some(Ok(spool)) => Ok((spool, summary)),
        Some(Err(what)) => Err(Error::NotAFile {
            path: path.to_string(),
            what,
        }),
        None => Err(Error::NotFound {
            path: path.to_string(),
        }),
    }
}

/// Extracts the entries matching `selector` into the existing directory `root`. Nothing is
/// written before the whole backup has been verified.
///
/// # Errors
/// Read-path errors (nothing written), [`Error::Refused`] in strict mode, I/O errors of the
/// staging area. Per-entry commit failures are in the report.
pub fn extract(
    backup: &Backup,
    root: &Path,
    selector: &Selector,
    opts: &StreamOptions<'_>,
    extract_opts: ExtractOptions,
) -> Result<(StreamSummary, ExtractReport)> {
    let mut stream = read::open_stream(backup, opts)?;
    let mut extractor = Extractor::new(root, extract_opts)?;
    while let Some(h) = stream.next_entry()? {
        let selection = if selected(selector, &h) {
            Selection::Include
        } else {
            Selection::Skip("not selected".into())
        };
        if let Err(e) = extractor.add(&h, stream.data(), selection) {
            return Err(stream.explain(e));
        }
    }
    let summary = stream.finish()?;
    let report = extractor.commit()?;
    Ok((summary, report))
}

/// Decrypts `backup` into `<out_dir>/<plain name>.decrypted.bundle.tar`, a bundle laid out as
/// upstream writes it: `<plain>.metadata` (manifest with `encryption_mode` `none`, the
/// plaintext size and checksum), `<plain>.sha256`, `<plain>`. The plaintext is staged in a
/// `0600` file inside `out_dir` and removed afterwards; nothing is left on failure.
///
/// # Errors
/// [`Error::NotEncrypted`], an existing output file ([`Error::Io`] with `AlreadyExists`),
/// read-path errors.
pub fn decrypt(
    backup: &Backup,
    out_dir: &Path,
    opts: &StreamOptions<'_>,
    cancel: &CancelToken,
    tool_version: &str,
) -> Result<PathBuf> {
    let plain = backup.plain_name();
    let dest = out_dir.join(format!("{plain}.decrypted.bundle.tar"));
    if dest.exists() {
        return Err(Error::io(
            &dest,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "already exists; not overwriting it",
            ),
        ));
    }
    let stream = read::open_plain(backup, opts)?;
    if !stream.encrypted() {
        return Err(Error::NotEncrypted {
            path: backup.path.clone(),
        });
    }
    let mut tmp = write::AtomicFile::create(&out_dir.join(format!(".{plain}.plaintext")), 0o600)
        .map_err(|e| Error::io(out_dir, e))?;
    let tmp_path = tmp.tmp_path().to_path_buf();
    let (size, sha256) = {
        let mut w = io::BufWriter::with_capacity(1 << 20, tmp.file());
        let r = stream.copy_verified(&mut w, &tmp_path, cancel)?;
        w.flush().map_err(|e| Error::io(&tmp_path, e))?;
        r
    };
    let mut manifest = backup.manifest.clone();
    manifest.archive_path = out_dir.join(&plain).display().to_string();
    manifest.archive_size = size as i64;
    manifest.sha256 = sha256;
    manifest.encryption_mode = "none".into();
    manifest.script_version = tool_version.to_string();
    let file = tmp.file();
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(&tmp_path, e))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &*file);
    let out = write::write_bundle(&dest, &plain, &manifest, &mut reader, size)
        .map_err(|e| Error::io(&dest, e))?;
    drop(reader);
    drop(tmp); // removes the plaintext staging file
    Ok(out)
}
