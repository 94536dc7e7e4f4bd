//! The read pipeline: stored bytes → SHA-256 → age → decompressor → tar entries, in one pass.
//!
//! ```text
//!  reader thread                          caller's thread
//!  file ─► SHA-256 ─► age ──(chunks)──►  decompressor ─► tar reader ─► entries
//! ```
//!
//! The stored bytes are hashed as they are read; [`ArchiveStream::finish`] compares the hash
//! with the backup's expectation after the tar stream, the decompressor and the age stream
//! were all read to their ends. When anything fails on the way, the stored bytes are hashed
//! once more on their own: if they do not match the checksum, *that* is reported (a flipped
//! byte shows up as "checksum mismatch", not as whatever the decompressor tripped on), and
//! otherwise the failing layer's own error is (wrong key, truncated ciphertext, corrupt xz
//! data, truncated tar).

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::backup::Backup;
use crate::checksum::{ChecksumError, Expectation};
use crate::compression::{self, Compression, DecodeFault};
use crate::entry::EntryHeader;
use crate::error::{Error, Result};
use crate::key::{self, Key, KeyError, PayloadFault, SshKeyUnlock};
use crate::progress::Progress;
use crate::tar::{TarError, TarReader};

/// The age file header's first line.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The first line of an ASCII-armored age file.
pub const AGE_ARMOR_MAGIC: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Options of [`open_stream`].
#[derive(Default)]
pub struct StreamOptions<'a> {
    /// Key material for encrypted backups.
    pub key: Option<&'a Key>,
    /// Unlocks passphrase-protected OpenSSH identities.
    pub unlock: Option<&'a dyn SshKeyUnlock>,
    /// Receives the number of stored bytes read.
    pub progress: Option<Arc<dyn Progress>>,
    /// Read, hash and decrypt in a separate thread (faster on more than one core).
    pub threaded: bool,
}

/// What a completed read proved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamSummary {
    /// SHA-256 of the stored archive bytes, equal to the expectation.
    pub sha256: String,
    /// The expectation it was checked against.
    pub expectation: Expectation,
    /// Stored bytes read.
    pub stored_bytes: u64,
    /// Bytes of the tar stream.
    pub tar_bytes: u64,
    /// Whether the data was age-encrypted.
    pub encrypted: bool,
    /// The compression used.
    pub compression: Compression,
    /// Remarks (e.g. a lone end-of-archive block, manifest disagreeing with the data).
    pub warnings: Vec<String>,
}

/// A fault of a layer below the decompressor, carried inside `io::Error` so that the layers
/// above pass it through unchanged.
#[derive(Debug)]
enum LayerFault {
    /// Reading the stored bytes failed, or they ended early.
    Storage(io::Error),
    /// The age payload failed authentication or ended early.
    Decrypt(PayloadFault, io::Error),
}

impl std::fmt::Display for LayerFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerFault::Storage(e) => write!(f, "reading the stored archive failed: {e}"),
            LayerFault::Decrypt(_, e) => write!(f, "decryption failed: {e}"),
        }
    }
}

impl std::error::Error for LayerFault {}

fn fault_of(e: &io::Error) -> Option<&LayerFault> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<LayerFault>())
}

#[derive(Default)]
struct HashState {
    hasher: Sha256,
    bytes: u64,
}

/// Hashes what it reads and reports a short read as a storage fault.
struct HashLayer<R> {
    inner: R,
    state: Arc<Mutex<HashState>>,
    expected_len: u64,
    read: u64,
    progress: Option<Arc<dyn Progress>>,
}

impl<R: Read> Read for HashLayer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(io::Error::new(e.kind(), LayerFault::Storage(e))),
        };
        if n == 0 && !buf.is_empty() && self.read < self.expected_len {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive ends after {} of {} bytes",
                    self.read, self.expected_len
                ),
            );
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                LayerFault::Storage(e),
            ));
        }
        self.read += n as u64;
        if n > 0 {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.hasher.update(&buf[..n]);
            state.bytes += n as u64;
            if let Some(p) = &self.progress {
                p.advance(n as u64);
            }
        }
        Ok(n)
    }
}

/// Tags errors of the age payload so they can be told apart from decompression errors.
struct AgeLayer<R> {
    inner: R,
}

impl<R: Read> Read for AgeLayer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if fault_of(&e).is_some() || e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                let fault = key::classify_payload_error(&e);
                io::Error::new(e.kind(), LayerFault::Decrypt(fault, e))
            }
        })
    }
}

/// Runs a reader in its own thread and hands its output over in chunks.
struct ThreadedReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    handle: Option<JoinHandle<()>>,
}

const CHUNK: usize = 256 << 10;
const DEPTH: usize = 4;

impl ThreadedReader {
    fn spawn(mut inner: Box<dyn Read + Send>) -> ThreadedReader {
        let (tx, rx): (SyncSender<io::Result<Vec<u8>>>, _) = sync_channel(DEPTH);
        let handle = std::thread::Builder::new()
            .name("proxsave-read".into())
            .spawn(move || {
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let mut filled = 0;
                    let result = loop {
                        match inner.read(&mut buf[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == buf.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    let eof = filled < buf.len();
                    buf.truncate(filled);
                    if filled > 0 && tx.send(Ok(buf)).is_err() {
                        return;
                    }
                    match result {
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                        Ok(()) if eof => return,
                        Ok(()) => {}
                    }
                }
            })
            .ok();
        ThreadedReader {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
            handle,
        }
    }
}

impl Read for ThreadedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    if let Some(h) = self.handle.take() {
                        let _ = h.join();
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// An open, decrypted, decompressed tar stream of a backup; see the module docs.
pub struct ArchiveStream<'b> {
    backup: &'b Backup,
    tar: TarReader<BufReader<Box<dyn Read + Send>>>,
    hash: Arc<Mutex<HashState>>,
    expectation: Expectation,
    encrypted: bool,
    compression: Compression,
    progress: Option<Arc<dyn Progress>>,
    warnings: Vec<String>,
    /// The private copy of the tar stream being kept ([`open_stream_keeping_tar`]).
    tee: Option<Arc<Mutex<TeeState>>>,
    /// Set when this stream re-reads a kept copy: what the first read proved.
    replay_of: Option<StreamSummary>,
}

/// The copy of the decompressed tar stream a read keeps (see [`open_stream_keeping_tar`]).
struct TeeState {
    out: Option<io::BufWriter<std::fs::File>>,
    written: u64,
    limit: u64,
}

/// Passes the decompressed bytes on and appends them to the kept copy while it stays under
/// its limit (past it, or on a write error, the copy is given up: the caller reads the
/// backup again instead).
struct Tee {
    inner: Box<dyn Read + Send>,
    state: Arc<Mutex<TeeState>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let fits = st.written + n as u64 <= st.limit;
            let ok = fits
                && st
                    .out
                    .as_mut()
                    .is_some_and(|w| io::Write::write_all(w, &buf[..n]).is_ok());
            if ok {
                st.written += n as u64;
            } else {
                st.out = None;
            }
        }
        Ok(n)
    }
}

/// A verified backup's tar stream, kept in a private unnamed file by the first read so a
/// second pass reads it instead of decrypting and decompressing the backup again.
///
/// The copy holds exactly the bytes whose stored form matched the checksum; it has no name
/// (`O_TMPFILE` in the caller's private folder, mode 0600), so it disappears when it is
/// dropped or the process dies.
pub struct VerifiedTar {
    file: Arc<std::fs::File>,
    len: u64,
    summary: StreamSummary,
}

impl VerifiedTar {
    /// Bytes kept.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the kept tar stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the read that kept it proved.
    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }

    /// Reads the kept tar stream again, as an [`ArchiveStream`] of `backup` whose
    /// [`ArchiveStream::finish`] checks the tar's end and returns the first read's summary.
    /// `progress` is started with the kept length and advanced by tar bytes.
    pub fn open<'b>(
        &self,
        backup: &'b Backup,
        progress: Option<Arc<dyn Progress>>,
    ) -> ArchiveStream<'b> {
        if let Some(p) = &progress {
            p.start(self.len, backup.display_name());
        }
        let reader = KeptReader {
            file: self.file.clone(),
            pos: 0,
            len: self.len,
            progress: progress.clone(),
        };
        ArchiveStream {
            backup,
            tar: TarReader::new(BufReader::with_capacity(CHUNK, Box::new(reader))),
            hash: Arc::new(Mutex::new(HashState::default())),
            expectation: self.summary.expectation.clone(),
            encrypted: self.summary.encrypted,
            compression: self.summary.compression,
            progress,
            warnings: Vec::new(),
            tee: None,
            replay_of: Some(self.summary.clone()),
        }
    }
}

/// Positioned reads of a kept tar stream (independent of the file's offset).
struct KeptReader {
    file: Arc<std::fs::File>,
    pos: u64,
    len: u64,
    progress: Option<Arc<dyn Progress>>,
}

impl Read for KeptReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min((self.len - self.pos).min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the kept copy of the tar stream is shorter than written",
            ));
        }
        self.pos += n as u64;
        if let Some(p) = &self.progress {
            p.advance(n as u64);
        }
        Ok(n)
    }
}

/// The stored bytes hashed and, when encrypted, decrypted: the compressed archive.
struct Lower {
    reader: Box<dyn Read + Send>,
    hash: Arc<Mutex<HashState>>,
    expectation: Expectation,
    encrypted: bool,
    warnings: Vec<String>,
}

fn open_lower(backup: &Backup, opts: &StreamOptions<'_>) -> Result<Lower> {
    let expectation = backup.expectation()?;
    let (raw, len) = backup.open_stored()?;
    let state = Arc::new(Mutex::new(HashState::default()));
    if let Some(p) = &opts.progress {
        p.start(len, backup.display_name());
    }
    let mut hashed = HashLayer {
        inner: raw,
        state: state.clone(),
        expected_len: len,
        read: 0,
        progress: opts.progress.clone(),
    };
    let mut head = Vec::with_capacity(64);
    (&mut hashed)
        .take(64)
        .read_to_end(&mut head)
        .map_err(|e| storage_error(backup, e))?;
    let encrypted = head.starts_with(AGE_MAGIC) || head.starts_with(AGE_ARMOR_MAGIC);
    let mut warnings = backup.warnings.clone();
    if encrypted != backup.declared_encrypted() {
        warnings.push(format!(
            "the manifest says the archive is {}, but its data is {}",
            if backup.declared_encrypted() {
                "encrypted"
            } else {
                "not encrypted"
            },
            if encrypted {
                "age-encrypted"
            } else {
                "not age-encrypted"
            }
        ));
    }
    let replay = io::Cursor::new(head).chain(hashed);
    let reader: Box<dyn Read + Send> = if encrypted {
        let key = opts
            .key
            .filter(|k| !k.is_empty())
            .ok_or(Error::Key(KeyError::Required))?;
        let salt = (!backup.manifest.passphrase_salt.trim().is_empty())
            .then_some(backup.manifest.passphrase_salt.as_str());
        match key::decrypt_payload(
            BufReader::with_capacity(CHUNK, replay),
            key,
            salt,
            opts.unlock,
        ) {
            Ok(reader) => Box::new(AgeLayer { inner: reader }),
            Err(KeyError::Io(e)) => return Err(checksum_first(backup, storage_error(backup, e))),
            Err(e @ (KeyError::NoMatch { .. } | KeyError::Corrupt { .. })) => {
                // A damaged header can look like a wrong key; the checksum tells.
                return Err(checksum_first(backup, Error::Key(e)));
            }
            Err(e) => return Err(Error::Key(e)),
        }
    } else {
        Box::new(replay)
    };
    let reader: Box<dyn Read + Send> = if opts.threaded {
        Box::new(ThreadedReader::spawn(reader))
    } else {
        reader
    };
    Ok(Lower {
        reader,
        hash: state,
        expectation,
        encrypted,
        warnings,
    })
}

/// Opens the read pipeline of `backup`.
///
/// # Errors
/// Missing or conflicting checksums, key errors (none given, no match, corrupt header),
/// a compression format that contradicts the name, I/O errors.
pub fn open_stream<'b>(backup: &'b Backup, opts: &StreamOptions<'_>) -> Result<ArchiveStream<'b>> {
    open_stream_inner(backup, opts, None)
}

/// As [`open_stream`], and keeps a copy of the decompressed tar stream in `spool` (an
/// unnamed file in a private folder, e.g. from `tempfile::tempfile_in`) while it stays
/// within `limit` bytes; [`ArchiveStream::finish_keeping_tar`] hands it over once the
/// checksum matched.
///
/// # Errors
/// As [`open_stream`].
pub fn open_stream_keeping_tar<'b>(
    backup: &'b Backup,
    opts: &StreamOptions<'_>,
    spool: std::fs::File,
    limit: u64,
) -> Result<ArchiveStream<'b>> {
    let tee = Arc::new(Mutex::new(TeeState {
        out: Some(io::BufWriter::with_capacity(CHUNK, spool)),
        written: 0,
        limit,
    }));
    open_stream_inner(backup, opts, Some(tee))
}

fn open_stream_inner<'b>(
    backup: &'b Backup,
    opts: &StreamOptions<'_>,
    tee: Option<Arc<Mutex<TeeState>>>,
) -> Result<ArchiveStream<'b>> {
    let lower = open_lower(backup, opts)?;
    let expected = backup.compression_by_name();
    let label = backup.plain_name();
    let (compression, decoder) = match compression::open_decoder(
        BufReader::with_capacity(CHUNK, lower.reader),
        expected,
        &label,
    ) {
        Ok(pair) => pair,
        Err(compression::CompressionError::Io(e)) => {
            return Err(checksum_first(backup, classify_io(backup, e)));
        }
        Err(e) => return Err(checksum_first(backup, Error::Compression(e))),
    };
    let decoded: Box<dyn Read + Send> = match &tee {
        Some(state) => Box::new(Tee {
            inner: decoder,
            state: state.clone(),
        }),
        None => decoder,
    };
    Ok(ArchiveStream {
        backup,
        tar: TarReader::new(BufReader::with_capacity(CHUNK, decoded)),
        hash: lower.hash,
        expectation: lower.expectation,
        encrypted: lower.encrypted,
        compression,
        progress: opts.progress.clone(),
        warnings: lower.warnings,
        tee,
        replay_of: None,
    })
}

/// The decrypted (still compressed) archive bytes, for `decrypt`.
pub struct PlainStream<'b> {
    backup: &'b Backup,
    lower: Lower,
    progress: Option<Arc<dyn Progress>>,
}

/// Opens the stored archive, decrypting it if it is encrypted, without decompressing.
///
/// # Errors
/// As [`open_stream`] for the checksum and key stages.
pub fn open_plain<'b>(backup: &'b Backup, opts: &StreamOptions<'_>) -> Result<PlainStream<'b>> {
    Ok(PlainStream {
        backup,
        lower: open_lower(backup, opts)?,
        progress: opts.progress.clone(),
    })
}

impl PlainStream<'_> {
    /// True if the stored data is age-encrypted.
    pub fn encrypted(&self) -> bool {
        self.lower.encrypted
    }

    /// Copies the plaintext into `out`, returning its length and SHA-256, then checks the
    /// stored bytes' checksum.
    ///
    /// # Errors
    /// Write errors of `out` as [`Error::Io`] on `out_path`; read-side errors as in
    /// [`ArchiveStream`].
    pub fn copy_verified(
        mut self,
        out: &mut dyn io::Write,
        out_path: &std::path::Path,
        cancel: &crate::progress::CancelToken,
    ) -> Result<(u64, String)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            cancel.check()?;
            let n = match self.lower.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(checksum_first(self.backup, classify_io(self.backup, e))),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(out_path, e))?;
            total += n as u64;
        }
        if let Some(p) = &self.progress {
            p.finish();
        }
        verify_hash(self.backup, &self.lower.hash, &self.lower.expectation)?;
        Ok((total, hex(&hasher.finalize())))
    }
}

fn verify_hash(
    backup: &Backup,
    hash: &Arc<Mutex<HashState>>,
    expectation: &Expectation,
) -> Result<String> {
    let state = std::mem::take(&mut *hash.lock().unwrap_or_else(|p| p.into_inner()));
    let sha256 = hex(&state.hasher.finalize());
    if state.bytes != backup.stored_size {
        // The encrypted or compressed stream ended before the stored bytes did.
        return Err(checksum_first(
            backup,
            Error::Bundle {
                path: backup.path.clone(),
                reason: format!(
                    "{} bytes follow the end of the archive data",
                    backup.stored_size - state.bytes
                ),
            },
        ));
    }
    if sha256 != expectation.sha256 {
        return Err(Error::Checksum(ChecksumError::Mismatch {
            expected: expectation.sha256.clone(),
            actual: sha256,
        }));
    }
    Ok(sha256)
}

impl ArchiveStream<'_> {
    /// The next entry, or `None` at the end of the archive.
    ///
    /// # Errors
    /// The error of whichever layer failed (see the module docs).
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>> {
        self.tar.next_entry().map_err(|e| self.tar_error(e))
    }

    /// Reader of the current entry's data. Errors it returns should go through
    /// [`ArchiveStream::explain`].
    pub fn data(&mut self) -> &mut dyn Read {
        &mut self.tar
    }

    /// True if the backup's data is age-encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The compression in use.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Turns an error met while consuming entries (e.g. [`Error::Read`] from the
    /// extractor) into the error of the layer that failed, with the checksum taking
    /// precedence.
    pub fn explain(&self, err: Error) -> Error {
        let classified = match err {
            Error::Read(e) => classify_io(self.backup, e),
            Error::Tar(t) => return self.tar_error(t),
            other => other,
        };
        match classified {
            Error::Cancelled | Error::Io { .. } => classified,
            e => checksum_first(self.backup, e),
        }
    }

    fn tar_error(&self, err: TarError) -> Error {
        let classified = match err {
            TarError::Io { source, .. } => classify_io(self.backup, source),
            other => Error::Tar(other),
        };
        checksum_first(self.backup, classified)
    }

    /// Reads everything after the last entry, checks the end of every layer, and compares
    /// the stored bytes' hash with the expectation.
    ///
    /// # Errors
    /// Trailing garbage, a truncated stream, or [`ChecksumError::Mismatch`].
    pub fn finish(self) -> Result<StreamSummary> {
        self.finish_keeping_tar().map(|(summary, _)| summary)
    }

    /// As [`ArchiveStream::finish`], and hands over the kept copy of the tar stream of a
    /// stream opened with [`open_stream_keeping_tar`] — `None` when there is none or it was
    /// given up (past its limit, or a write to it failed).
    ///
    /// # Errors
    /// As [`ArchiveStream::finish`].
    pub fn finish_keeping_tar(self) -> Result<(StreamSummary, Option<VerifiedTar>)> {
        let ArchiveStream {
            backup,
            tar,
            hash,
            expectation,
            encrypted,
            compression,
            progress,
            mut warnings,
            tee,
            replay_of,
        } = self;
        let end = match tar.finish() {
            Ok(end) => end,
            Err(TarError::Io { source, .. }) => {
                return Err(checksum_first(backup, classify_io(backup, source)));
            }
            Err(e) => return Err(checksum_first(backup, Error::Tar(e))),
        };
        drop(end.inner);
        if let Some(p) = &progress {
            p.finish();
        }
        if let Some(first) = replay_of {
            // A kept copy: its checksum was proved by the read that kept it.
            return Ok((first, None));
        }
        let sha256 = verify_hash(backup, &hash, &expectation)?;
        if end.lone_zero_block {
            warnings.push("the tar archive ends with a single zero block instead of two".into());
        }
        let summary = StreamSummary {
            sha256,
            expectation,
            stored_bytes: backup.stored_size,
            tar_bytes: end.total,
            encrypted,
            compression,
            warnings,
        };
        let kept = match tee {
            Some(state) => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let written = st.written;
                match st.out.take().map(|w| w.into_inner()) {
                    Some(Ok(file)) => Some(VerifiedTar {
                        file: Arc::new(file),
                        len: written,
                        summary: summary.clone(),
                    }),
                    _ => None,
                }
            }
            None => None,
        };
        Ok((summary, kept))
    }
}

fn storage_error(backup: &Backup, e: io::Error) -> Error {
    let path = backup.stored_location().0.to_path_buf();
    match e.get_ref().and_then(|i| i.downcast_ref::<LayerFault>()) {
        Some(LayerFault::Storage(inner)) if inner.kind() == io::ErrorKind::UnexpectedEof => {
            Error::Bundle {
                path,
                reason: inner.to_string(),
            }
        }
        Some(LayerFault::Storage(inner)) => {
            Error::io(path, io::Error::new(inner.kind(), inner.to_string()))
        }
        _ => Error::io(path, e),
    }
}

/// Maps an `io::Error` from the pipeline to the error of the layer that caused it.
fn classify_io(backup: &Backup, e: io::Error) -> Error {
    if let Some(fault) = fault_of(&e) {
        return match fault {
            LayerFault::Storage(_) => storage_error(backup, e),
            LayerFault::Decrypt(kind, inner) => Error::Ciphertext {
                truncated: matches!(kind, PayloadFault::Truncated),
                detail: inner.to_string(),
            },
        };
    }
    if let Some(decode) = DecodeFault::from_io(&e) {
        return Error::Decompress {
            detail: decode.to_string(),
        };
    }
    if let Some(tar) = e.get_ref().and_then(|i| i.downcast_ref::<TarError>()) {
        return Error::Tar(match tar {
            TarError::Truncated { offset, what } => TarError::Truncated {
                offset: *offset,
                what: what.clone(),
            },
            other => TarError::BadHeader {
                offset: 0,
                reason: other.to_string(),
            },
        });
    }
    Error::Decompress {
        detail: format!("reading the compressed data failed: {e}"),
    }
}

/// On a failed read, re-hashes the stored bytes: a checksum mismatch explains everything
/// else and is reported instead.
fn checksum_first(backup: &Backup, err: Error) -> Error {
    let Ok(expectation) = backup.expectation() else {
        return err;
    };
    match backup.stored_sha256() {
        Ok(actual) if actual != expectation.sha256 => Error::Checksum(ChecksumError::Mismatch {
            expected: expectation.sha256,
            actual,
        }),
        Ok(_) => err,
        Err(truncated @ Error::Bundle { .. }) => truncated,
        Err(_) => err,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
