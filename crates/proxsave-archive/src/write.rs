//! Writers: the `.bundle.tar` layout and gzip-compressed tar archives (safety backups).
//!
//! Tar streams are written with the [`tar`] crate's [`tar::Builder`]: a ustar header per entry,
//! preceded by a PAX extended header ([`tar::Builder::append_pax_extensions`]) where a field does
//! not fit — long or non-ASCII names and link targets (names are bytes, never converted),
//! sub-second `mtime`/`atime`, sizes, ids and times beyond the ustar fields. GNU tar, Go's
//! `archive/tar` (upstream) and our own reader ([`crate::tar::TarReader`]) read them exactly;
//! `tests/tar_differential.rs` checks the last against the `tar` crate's reader.
//!
//! Files are written to a temporary file in the destination folder, `fsync`ed and renamed into
//! place ([`AtomicFile`]), so a crash leaves either the old state or the complete new file.

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

/// A file being written under a temporary name, renamed into place by [`AtomicFile::commit`]
/// and removed if dropped uncommitted.
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates `.<name>.tmp-<pid>` beside `dest` with exactly `mode` whatever the umask
    /// (exclusive create).
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
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// The temporary path being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs and renames into place, then syncs the folder.
    ///
    /// # Errors
    /// I/O errors; the temporary file is removed.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
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
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The kinds of entries [`TarWriter`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A regular file with data.
    File,
    /// A directory.
    Directory,
    /// A symbolic link to `link`.
    Symlink,
}

/// Metadata of an entry to write.
#[derive(Clone, Debug)]
pub struct WriteHeader {
    /// Member name, stored byte for byte as given (callers decide on `./` prefixes).
    pub path: Vec<u8>,
    /// Type.
    pub kind: WriteKind,
    /// Symlink target, byte for byte.
    pub link: Option<Vec<u8>>,
    /// Mode bits (`& 0o7777` is stored: permissions, setuid, setgid, sticky).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name (optional).
    pub uname: Option<String>,
    /// Group name (optional).
    pub gname: Option<String>,
    /// Data size (0 for directories and links).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time, written as a PAX record when present and sub-second times are on.
    pub atime: Option<Timestamp>,
}

/// Largest value of the 12-byte octal fields (size, mtime).
const USTAR_MAX_SIZE: u64 = 0o77777777777;
/// Largest value of the 8-byte octal fields (uid, gid).
const USTAR_MAX_ID: u64 = 0o7777777;
/// Widths of the ustar name and link name fields.
const USTAR_NAME: usize = 100;
/// Width of the ustar user and group name fields (NUL-terminated).
const USTAR_OWNER_NAME: usize = 32;

/// Writes a tar stream through [`tar::Builder`]; see the module docs.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    subsecond: bool,
}

impl<W: Write> TarWriter<W> {
    /// A writer. With `subsecond_times`, nanosecond mtimes and atimes are kept in PAX records
    /// (safety backups); without, times are whole seconds and no atime is written, as in
    /// upstream's bundles.
    pub fn new(out: W, subsecond_times: bool) -> Self {
        TarWriter {
            builder: tar::Builder::new(out),
            subsecond: subsecond_times,
        }
    }

    /// Appends one entry, copying exactly `header.size` bytes from `data` (files only).
    ///
    /// # Errors
    /// I/O errors of the output, or `UnexpectedEof` when `data` is shorter than `size` (the
    /// stream is then unusable: callers discard it, as [`AtomicFile`] does on drop).
    pub fn append(&mut self, header: &WriteHeader, data: &mut dyn Read) -> io::Result<()> {
        let (ustar, pax) = self.headers(header);
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
        }
        if header.kind != WriteKind::File {
            return self.builder.append(&ustar, io::empty());
        }
        let mut counted = Counted {
            inner: data.take(header.size),
            n: 0,
        };
        self.builder.append(&ustar, &mut counted)?;
        if counted.n != header.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: expected {} bytes, got {}",
                    crate::path::escape_bytes(&header.path),
                    header.size,
                    counted.n
                ),
            ));
        }
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the output, flushed.
    ///
    /// # Errors
    /// I/O errors of the output.
    pub fn finish(self) -> io::Result<W> {
        let mut out = self.builder.into_inner()?;
        out.flush()?;
        Ok(out)
    }

    /// Mutable access to the output (e.g. to flush).
    pub fn get_mut(&mut self) -> &mut W {
        self.builder.get_mut()
    }

    /// The ustar header of `h` and the PAX records it needs.
    fn headers(&self, h: &WriteHeader) -> (tar::Header, Vec<(&'static str, Vec<u8>)>) {
        let mut pax: Vec<(&'static str, Vec<u8>)> = Vec::new();
        let mut ustar = tar::Header::new_ustar();
        ustar.set_entry_type(match h.kind {
            WriteKind::File => tar::EntryType::Regular,
            WriteKind::Directory => tar::EntryType::Directory,
            WriteKind::Symlink => tar::EntryType::Symlink,
        });
        // Names are stored as raw bytes: `Header::set_path` would normalise them (drop `.`
        // components, refuse some) and goes through `Path`; the ustar field gets the name when
        // it fits, else its first 100 bytes and the whole name goes into a PAX `path` record.
        if !fits_ustar_text(&h.path, USTAR_NAME) {
            pax.push(("path", h.path.clone()));
        }
        put_field(&mut ustar.as_old_mut().name, &h.path);
        if let Some(link) = h.link.as_deref() {
            if !fits_ustar_text(link, USTAR_NAME) {
                pax.push(("linkpath", link.to_vec()));
            }
            put_field(&mut ustar.as_old_mut().linkname, link);
        }
        ustar.set_mode(h.mode & 0o7777);
        // Large values: the `tar` crate writes base-256 in the ustar field (GNU tar and Go read
        // it), and the PAX record carries the value for every POSIX reader.
        if h.uid > USTAR_MAX_ID {
            pax.push(("uid", h.uid.to_string().into_bytes()));
        }
        // Base-256 in 8 bytes holds 56 bits; beyond that only the PAX record can say it.
        const BASE256_MAX: u64 = (1 << 56) - 1;
        ustar.set_uid(if h.uid > BASE256_MAX { 0 } else { h.uid });
        if h.gid > USTAR_MAX_ID {
            pax.push(("gid", h.gid.to_string().into_bytes()));
        }
        ustar.set_gid(if h.gid > BASE256_MAX { 0 } else { h.gid });
        for (key, name) in [("uname", &h.uname), ("gname", &h.gname)] {
            let Some(name) = name else { continue };
            if name.len() < USTAR_OWNER_NAME {
                let field = if key == "uname" {
                    ustar.set_username(name)
                } else {
                    ustar.set_groupname(name)
                };
                if field.is_ok() {
                    continue;
                }
            }
            pax.push((key, name.as_bytes().to_vec()));
        }
        let size = if h.kind == WriteKind::File { h.size } else { 0 };
        if size > USTAR_MAX_SIZE {
            pax.push(("size", size.to_string().into_bytes()));
        }
        ustar.set_size(size);
        let mtime_fits = h.mtime.secs >= 0 && (h.mtime.secs as u64) <= USTAR_MAX_SIZE;
        if (self.subsecond && h.mtime.nanos != 0) || !mtime_fits {
            // Whole-second mode promises whole seconds even when the time needs PAX.
            let t = if self.subsecond {
                h.mtime
            } else {
                Timestamp::from_secs(h.mtime.secs)
            };
            pax.push(("mtime", t.to_pax().into_bytes()));
        }
        ustar.set_mtime(u64::try_from(h.mtime.secs).unwrap_or(0));
        if self.subsecond
            && let Some(atime) = h.atime
        {
            pax.push(("atime", atime.to_pax().into_bytes()));
        }
        ustar.set_cksum();
        (ustar, pax)
    }
}

/// True when `value` can be stored in a ustar text field of `width` bytes as is: short enough,
/// ASCII (other bytes go into PAX records, as GNU tar does), no NUL.
fn fits_ustar_text(value: &[u8], width: usize) -> bool {
    value.len() <= width && value.iter().all(|&b| b.is_ascii() && b != 0)
}

/// Copies the first `field.len()` bytes of `value` into a zeroed field.
fn put_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A reader counting the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A bundle member as upstream writes it (Go `tar.FileInfoHeader` of the staged file): the
/// base name, permission bits only, the writer's ids, whole-second mtime, no owner names.
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
/// then the archive (0600) copied from `archive` (`archive_size` bytes). Plain ustar members
/// (a PAX record only for a name that does not fit), then the end-of-archive marker.
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
        tar.finish()?;
    }
    out.commit()
}

/// A gzip-compressed tar written atomically (safety backups): times to the nanosecond (PAX
/// `mtime` and `atime`), owners, modes with setuid/setgid/sticky, names as bytes.
pub struct TarGzWriter {
    tar: TarWriter<GzEncoder<BufWriter<File>>>,
    out: AtomicFile,
}

impl TarGzWriter {
    /// Starts `dest` with exactly `mode` (e.g. 0600).
    ///
    /// # Errors
    /// I/O errors creating the file.
    pub fn create(dest: &Path, mode: u32) -> io::Result<TarGzWriter> {
        let mut out = AtomicFile::create(dest, mode)?;
        let file = out.file().try_clone()?;
        let gz = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), GzLevel::new(6));
        Ok(TarGzWriter {
            tar: TarWriter::new(gz, true),
            out,
        })
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append(&mut self, header: &WriteHeader, data: &mut dyn Read) -> io::Result<()> {
        self.tar.append(header, data)
    }

    /// Ends the archive and renames it into place.
    ///
    /// # Errors
    /// I/O errors; the file is removed.
    pub fn finish(self) -> io::Result<PathBuf> {
        let TarGzWriter { tar, out } = self;
        let gz = tar.finish()?;
        let buf = gz.finish()?;
        buf.into_inner().map_err(|e| e.into_error())?;
        out.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryKind;
    use crate::tar::TarReader;

    fn header(path: &[u8], kind: WriteKind, size: u64) -> WriteHeader {
        WriteHeader {
            path: path.to_vec(),
            kind,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            size,
            mtime: Timestamp {
                secs: 1_721_781_000,
                nanos: 512_345_678,
            },
            atime: Some(Timestamp {
                secs: 1_721_781_001,
                nanos: 1,
            }),
        }
    }

    fn read_all(data: &[u8]) -> Vec<(crate::entry::EntryHeader, Vec<u8>)> {
        let mut r = TarReader::new(data);
        let mut out = Vec::new();
        while let Some(h) = r.next_entry().unwrap() {
            let mut body = Vec::new();
            r.read_to_end(&mut body).unwrap();
            out.push((h, body));
        }
        r.finish().unwrap();
        out
    }

    #[test]
    fn whole_second_mode_keeps_out_of_range_mtimes_whole() {
        // Found by the property tests: a pre-1970 time needs a PAX record, which kept its
        // nanoseconds although this mode promises whole seconds.
        let mut w = TarWriter::new(Vec::new(), false);
        let h = WriteHeader {
            path: b"a".to_vec(),
            kind: WriteKind::File,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            size: 0,
            mtime: Timestamp { secs: -2, nanos: 1 },
            atime: None,
        };
        w.append(&h, &mut std::io::empty()).expect("append");
        let bytes = w.finish().expect("finish");
        let mut r = crate::tar::TarReader::new(&bytes[..]);
        let e = r.next_entry().expect("read").expect("entry");
        assert_eq!(e.mtime, Timestamp { secs: -2, nanos: 0 });
    }

    #[test]
    fn round_trip_with_pax_times_long_names_raw_bytes_and_big_ids() {
        let long = format!("./{}/file.conf", "d".repeat(150));
        let latin1: &[u8] = b"./etc/caf\xe9";
        let mut w = TarWriter::new(Vec::new(), true);
        let mut dir = header(b"./etc", WriteKind::Directory, 0);
        dir.mode = 0o1777;
        w.append(&dir, &mut io::empty()).unwrap();
        let mut hosts = header(b"./etc/hosts", WriteKind::File, 5);
        hosts.mode = 0o6755;
        hosts.uid = 1 << 40;
        hosts.gid = 4_000_000_000;
        w.append(&hosts, &mut &b"hello"[..]).unwrap();
        w.append(
            &header(long.as_bytes(), WriteKind::File, 3),
            &mut &b"abc"[..],
        )
        .unwrap();
        w.append(&header(latin1, WriteKind::File, 1), &mut &b"x"[..])
            .unwrap();
        let mut link = header(b"./etc/localtime", WriteKind::Symlink, 0);
        link.link = Some(format!("/usr/share/{}/UTC", "z".repeat(120)).into_bytes());
        link.mtime = Timestamp {
            secs: -2,
            nanos: 750_000_000,
        };
        w.append(&link, &mut io::empty()).unwrap();
        let data = w.finish().unwrap();
        let entries = read_all(&data);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0].0.kind, EntryKind::Directory);
        assert_eq!(entries[0].0.mode, 0o1777);
        assert_eq!(entries[1].0.raw_path, b"./etc/hosts");
        assert_eq!(entries[1].1, b"hello");
        assert_eq!(entries[1].0.mode, 0o6755);
        assert_eq!(
            (entries[1].0.uid, entries[1].0.gid),
            (1 << 40, 4_000_000_000)
        );
        assert_eq!(entries[1].0.mtime, hosts.mtime);
        assert_eq!(entries[1].0.atime, hosts.atime);
        assert_eq!(entries[2].0.raw_path, long.as_bytes());
        assert_eq!(entries[2].1, b"abc");
        assert_eq!(entries[3].0.raw_path, latin1);
        assert_eq!(entries[4].0.link_target, link.link);
        assert_eq!(entries[4].0.mtime, link.mtime);
    }

    #[test]
    fn whole_second_mode_writes_no_pax() {
        let mut w = TarWriter::new(Vec::new(), false);
        w.append(&header(b"a", WriteKind::File, 1), &mut &b"x"[..])
            .unwrap();
        let data = w.finish().unwrap();
        // header + 1 data block + 2 end blocks, no PAX block.
        assert_eq!(data.len(), 4 * 512);
        let entries = read_all(&data);
        assert_eq!(entries[0].0.mtime, Timestamp::from_secs(1_721_781_000));
        assert_eq!(entries[0].0.atime, None);
    }

    #[test]
    fn short_data_is_an_error() {
        let mut w = TarWriter::new(Vec::new(), false);
        let err = w
            .append(&header(b"a", WriteKind::File, 10), &mut &b"abc"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn atomic_file_has_its_mode_and_vanishes_uncommitted() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar.gz");
        let mut w = TarGzWriter::create(&dest, 0o600).unwrap();
        w.append(&header(b"a", WriteKind::File, 1), &mut &b"x"[..])
            .unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut w = TarGzWriter::create(&dest, 0o640).unwrap();
        w.append(&header(b"a", WriteKind::File, 1), &mut &b"x"[..])
            .unwrap();
        let path = w.finish().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let gz = flate2::read::GzDecoder::new(File::open(&path).unwrap());
        let mut tar = Vec::new();
        io::BufReader::new(gz).read_to_end(&mut tar).unwrap();
        assert_eq!(read_all(&tar)[0].1, b"x");
    }
}
