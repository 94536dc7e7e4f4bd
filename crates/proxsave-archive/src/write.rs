//! Writers: the `.bundle.tar` layout and gzip-compressed tar archives.
//!
//! Both write to a temporary file in the destination folder, `fsync` it and rename it into
//! place, so a crash leaves either the old state or the complete new file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;

use crate::checksum::format_checksum_line;
use crate::entry::Timestamp;
use crate::manifest::Manifest;
use crate::tar::{TarWriter, WriteHeader, WriteKind};

/// A file being written under a temporary name, renamed into place by [`AtomicFile::commit`]
/// and removed if dropped uncommitted.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates `<dest>.tmp-<pid>` with exactly `mode` whatever the umask (exclusive create).
    ///
    /// # Errors
    /// I/O errors creating the file.
    pub fn create(dest: &Path, mode: u32) -> io::Result<AtomicFile> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & 0o600)
            .open(&tmp)?;
        // Created owner-only first, then given its exact mode (the umask cannot widen or
        // narrow it).
        if let Err(e) = rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(mode)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary path being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is present until commit")
    }

    /// Flushes, syncs and renames into place.
    ///
    /// # Errors
    /// I/O errors; the temporary file is removed.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let file = self.file.take().expect("file is present until commit");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest)?;
        if let Some(dir) = self.dest.parent()
            && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            let _ = d.sync_all();
        }
        Ok(self.dest.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs(d.as_secs() as i64)
}

fn member(name: &str, size: u64, mode: u32) -> WriteHeader {
    WriteHeader {
        path: name.as_bytes().to_vec(),
        kind: WriteKind::File,
        link: None,
        mode,
        uid: u64::from(rustix::process::geteuid().as_raw()),
        gid: u64::from(rustix::process::getegid().as_raw()),
        uname: None,
        gname: None,
        size,
        mtime: now(),
        atime: None,
    }
}

/// Writes a bundle at `dest` (mode 0600: `decrypt` writes plaintext) with upstream's member
/// order: `<archive_name>.metadata` (the manifest, 0600), `<archive_name>.sha256` (0640),
/// then the archive (0600) copied from `archive` (`archive_size` bytes).
///
/// # Errors
/// I/O errors; nothing is left at `dest` on failure.
pub fn write_bundle(
    dest: &Path,
    archive_name: &str,
    manifest: &Manifest,
    archive: &mut dyn Read,
    archive_size: u64,
) -> io::Result<PathBuf> {
    let mut out = AtomicFile::create(dest, 0o600)?;
    {
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, out.file()), false);
        let json = manifest.to_json();
        tar.append(
            &member(
                &format!("{archive_name}.metadata"),
                json.len() as u64,
                0o600,
            ),
            &mut &json[..],
        )?;
        let line = format_checksum_line(&manifest.sha256, archive_name);
        tar.append(
            &member(&format!("{archive_name}.sha256"), line.len() as u64, 0o640),
            &mut line.as_bytes(),
        )?;
        tar.append(&member(archive_name, archive_size, 0o600), archive)?;
        tar.finish()?.flush()?;
    }
    out.commit()
}

/// A gzip-compressed tar written atomically (used for safety backups).
pub struct TarGzWriter {
    tar: Option<TarWriter<GzEncoder<BufWriter<File>>>>,
    out: Option<AtomicFile>,
}

impl TarGzWriter {
    /// Starts `dest` with `mode` (e.g. 0600). Times are kept to the nanosecond.
    ///
    /// # Errors
    /// I/O errors creating the file.
    pub fn create(dest: &Path, mode: u32) -> io::Result<TarGzWriter> {
        let mut out = AtomicFile::create(dest, mode)?;
        let file = out.file().try_clone()?;
        let gz = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), GzLevel::new(6));
        Ok(TarGzWriter {
            tar: Some(TarWriter::new(gz, true)),
            out: Some(out),
        })
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append(&mut self, header: &WriteHeader, data: &mut dyn Read) -> io::Result<()> {
        self.tar
            .as_mut()
            .expect("present until finish")
            .append(header, data)
    }

    /// Ends the archive and renames it into place.
    ///
    /// # Errors
    /// I/O errors; the file is removed.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        let tar = self.tar.take().expect("present until finish");
        let gz = tar.finish()?;
        let mut buf = gz.finish()?;
        buf.flush()?;
        drop(buf);
        self.out.take().expect("present until finish").commit()
    }
}
