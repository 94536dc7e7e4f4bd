//! A streaming tar reader (ustar, PAX, GNU long names), our own rather than the `tar` crate's.
//!
//! The reader is written for hostile input: every header checksum is verified, PAX and GNU
//! long-name records are size-capped, PAX `size` always wins over the ustar field (so no two
//! parsers can disagree on where the next header starts), global PAX headers and sparse files
//! are surfaced as entries of their own kind (the extraction policy refuses them) instead of
//! being half-applied, a stream that ends without the end-of-archive marker is an error, and
//! anything but zero padding after that marker is an error too.
//!
//! Where and why it reads differently from the `tar` crate's `Archive::entries()` is listed in
//! `docs/formats.md` ("Our tar reader and the tar crate") and pinned, case by case, by
//! `tests/tar_differential.rs`. Tar streams are *written* with the `tar` crate
//! ([`crate::write::TarWriter`]).

use std::io::{self, Read};

use crate::entry::{EntryHeader, EntryKind, Timestamp};

/// The tar block size.
pub const BLOCK: usize = 512;

/// Caps on metadata records, so a hostile archive cannot make the reader allocate much.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest PAX extended header (`x`) accepted, in bytes.
    pub max_pax_bytes: u64,
    /// Largest GNU long name / long link record accepted, in bytes.
    pub max_long_name: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pax_bytes: 1 << 20,
            max_long_name: 64 << 10,
        }
    }
}

/// Errors of the tar stage. Offsets are byte positions in the (decompressed) tar stream.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// A header block failed its checksum or holds an unparsable field.
    #[error("corrupt tar header at byte {offset}: {reason}")]
    BadHeader {
        /// Offset of the header block.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The stream ended inside a header or inside an entry's data.
    #[error("the tar stream is truncated: it ends inside {what} (at byte {offset})")]
    Truncated {
        /// Where the stream ended.
        offset: u64,
        /// What was being read (`the header of …`, `the data of …`).
        what: String,
    },
    /// The stream ended at a header boundary without the end-of-archive marker.
    #[error(
        "the tar stream is truncated: it ends at byte {offset} without the end-of-archive marker"
    )]
    MissingEnd {
        /// Where the stream ended.
        offset: u64,
    },
    /// Non-zero data follows the end-of-archive marker.
    #[error("unexpected data after the end of the tar archive (first non-zero byte at {offset})")]
    TrailingData {
        /// Offset of the first non-zero byte.
        offset: u64,
    },
    /// A PAX extended header is malformed.
    #[error("invalid PAX header at byte {offset}: {reason}")]
    BadPax {
        /// Offset of the PAX header block.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A metadata record is larger than [`Limits`] allow.
    #[error("{what} at byte {offset} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Offset of the header block.
        offset: u64,
        /// The kind of record.
        what: &'static str,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading the underlying stream failed (decompression, decryption or I/O below).
    #[error("reading the archive failed at tar byte {offset}: {source}")]
    Io {
        /// Position in the tar stream.
        offset: u64,
        /// The error of the layer below.
        #[source]
        source: io::Error,
    },
}

impl TarError {
    /// The error of the layer below, if this is [`TarError::Io`].
    pub fn io_source(&self) -> Option<&io::Error> {
        match self {
            TarError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How the archive ended, returned by [`TarReader::finish`].
#[derive(Debug)]
pub struct TarEnd<R> {
    /// True when the end marker was a single zero block followed by end of stream (GNU tar
    /// accepts this with a warning).
    pub lone_zero_block: bool,
    /// Zero bytes after the marker (record padding).
    pub padding: u64,
    /// Total bytes of the tar stream.
    pub total: u64,
    /// The underlying reader, drained to its end.
    pub inner: R,
}

/// Reads tar entries one after another from a stream; see the module docs.
///
/// Call [`TarReader::next_entry`] for each header, read the entry's data through the
/// [`Read`] implementation (unread data is skipped by the next call), then
/// [`TarReader::finish`] to drain and check what follows the end marker.
pub struct TarReader<R> {
    inner: R,
    limits: Limits,
    pos: u64,
    remaining: u64,
    padding: u64,
    current_name: Vec<u8>,
    ended: bool,
    lone_zero_block: bool,
    skipper: Option<fn(&mut R, u64) -> io::Result<()>>,
}

#[derive(Default)]
struct Pending {
    pax: Option<PaxRecords>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

#[derive(Default)]
struct PaxRecords {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    uname: Option<String>,
    gname: Option<String>,
    mtime: Option<Timestamp>,
    atime: Option<Timestamp>,
    sparse: bool,
    xattrs: bool,
}

impl<R: Read> TarReader<R> {
    /// A reader with default [`Limits`]. Wrap `inner` in a `BufReader` if it is not buffered:
    /// the reader works in 512-byte blocks.
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, Limits::default())
    }

    /// A reader with explicit limits.
    pub fn with_limits(inner: R, limits: Limits) -> Self {
        TarReader {
            inner,
            limits,
            pos: 0,
            remaining: 0,
            padding: 0,
            current_name: Vec::new(),
            ended: false,
            lone_zero_block: false,
            skipper: None,
        }
    }

    /// Lets the reader skip unread entry data with `skip` (e.g. a seek) instead of reading
    /// it, for listing the members of an uncompressed tar file without reading their data.
    pub fn with_skipper(mut self, skip: fn(&mut R, u64) -> io::Result<()>) -> Self {
        self.skipper = Some(skip);
        self
    }

    /// Bytes of the tar stream consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next entry, or `None` at the end-of-archive marker.
    ///
    /// # Errors
    /// [`TarError`] for corrupt headers, truncation and errors of the layer below.
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>, TarError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_current()?;
        let mut pending = Pending::default();
        loop {
            let offset = self.pos;
            let mut block = [0u8; BLOCK];
            match self.read_block(&mut block)? {
                BlockRead::Eof => return Err(TarError::MissingEnd { offset }),
                BlockRead::Partial => {
                    return Err(TarError::Truncated {
                        offset: self.pos,
                        what: "a header block".into(),
                    });
                }
                BlockRead::Full => {}
            }
            if block.iter().all(|&b| b == 0) {
                if pending.pax.is_some()
                    || pending.long_name.is_some()
                    || pending.long_link.is_some()
                {
                    return Err(TarError::BadHeader {
                        offset,
                        reason: "extended header records are not followed by an entry".into(),
                    });
                }
                let mut second = [0u8; BLOCK];
                match self.read_block(&mut second)? {
                    BlockRead::Eof => self.lone_zero_block = true,
                    BlockRead::Partial => {
                        return Err(TarError::Truncated {
                            offset: self.pos,
                            what: "the end-of-archive marker".into(),
                        });
                    }
                    BlockRead::Full => {
                        if second.iter().any(|&b| b != 0) {
                            // A lone zero block followed by more headers: treat the zero block
                            // as the end; `finish` reports what follows as trailing data.
                            self.lone_zero_block = true;
                            self.ended = true;
                            return Err(TarError::TrailingData {
                                offset: self.pos - 512,
                            });
                        }
                    }
                }
                self.ended = true;
                return Ok(None);
            }
            let raw = RawHeader::parse(&block, offset)?;
            match raw.typeflag {
                b'x' | b'X' => {
                    let data = self.read_record(&raw, self.limits.max_pax_bytes, "PAX header")?;
                    let records = parse_pax(&data, offset)?;
                    pending.pax = Some(records);
                }
                b'L' => {
                    let data =
                        self.read_record(&raw, self.limits.max_long_name, "GNU long name")?;
                    pending.long_name = Some(trim_nul(&data).to_vec());
                }
                b'K' => {
                    let data =
                        self.read_record(&raw, self.limits.max_long_name, "GNU long link")?;
                    pending.long_link = Some(trim_nul(&data).to_vec());
                }
                _ => {
                    if raw.typeflag == b'S' && raw.gnu_extended_sparse {
                        self.skip_sparse_extensions()?;
                    }
                    let header = raw.into_entry(pending, offset);
                    // Header-only types carry no data, whatever their size field (ustar or
                    // PAX) says: GNU tar (when extracting), Go's archive/tar (upstream) and
                    // Python's tarfile all read the next header right after them. Skipping
                    // `size` bytes here instead let an archive hide entries from `verify`
                    // that those tools extract. The declared size stays in the header, and
                    // the policy refuses such entries as ambiguous.
                    let data = if header_only(header.kind) {
                        0
                    } else {
                        header.size
                    };
                    self.remaining = data;
                    self.padding = pad_of(data);
                    self.current_name = header.raw_path.clone();
                    return Ok(Some(header));
                }
            }
        }
    }

    /// Drains what follows the end-of-archive marker (it must be zeros) and returns the inner
    /// reader. Call after [`TarReader::next_entry`] returned `None`.
    ///
    /// # Errors
    /// [`TarError::TrailingData`] for non-zero data, [`TarError::MissingEnd`] if called
    /// before the end, [`TarError::Io`] for errors below.
    pub fn finish(mut self) -> Result<TarEnd<R>, TarError> {
        if !self.ended {
            return Err(TarError::MissingEnd { offset: self.pos });
        }
        let mut padding = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(TarError::Io {
                        offset: self.pos,
                        source,
                    });
                }
            };
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(TarError::TrailingData {
                    offset: self.pos + i as u64,
                });
            }
            self.pos += n as u64;
            padding += n as u64;
        }
        Ok(TarEnd {
            lone_zero_block: self.lone_zero_block,
            padding,
            total: self.pos,
            inner: self.inner,
        })
    }

    /// Gives back the inner reader without checking the end (for error paths).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Mutable access to the inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn skip_current(&mut self) -> Result<(), TarError> {
        let mut left = self.remaining + self.padding;
        if let Some(skip) = self.skipper
            && left > 0
        {
            skip(&mut self.inner, left).map_err(|source| TarError::Io {
                offset: self.pos,
                source,
            })?;
            self.pos += left;
            self.remaining = 0;
            self.padding = 0;
            return Ok(());
        }
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = self.read_some(&mut buf[..want])?;
            if n == 0 {
                return Err(TarError::Truncated {
                    offset: self.pos,
                    what: format!(
                        "the data of {}",
                        crate::path::escape_bytes(&self.current_name)
                    ),
                });
            }
            left -= n as u64;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn skip_sparse_extensions(&mut self) -> Result<(), TarError> {
        loop {
            let mut ext = [0u8; BLOCK];
            match self.read_block(&mut ext)? {
                BlockRead::Full => {}
                _ => {
                    return Err(TarError::Truncated {
                        offset: self.pos,
                        what: "a GNU sparse extension header".into(),
                    });
                }
            }
            if ext[504] == 0 {
                return Ok(());
            }
        }
    }

    fn read_record(
        &mut self,
        raw: &RawHeader,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, TarError> {
        if raw.size > limit {
            return Err(TarError::TooLarge {
                offset: raw.offset,
                what,
                size: raw.size,
                limit,
            });
        }
        let mut data = vec![0u8; raw.size as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = self.read_some(&mut data[filled..])?;
            if n == 0 {
                return Err(TarError::Truncated {
                    offset: self.pos,
                    what: format!("a {what}"),
                });
            }
            filled += n;
        }
        let mut pad = vec![0u8; pad_of(raw.size) as usize];
        let mut got = 0;
        while got < pad.len() {
            let n = self.read_some(&mut pad[got..])?;
            if n == 0 {
                return Err(TarError::Truncated {
                    offset: self.pos,
                    what: format!("the padding of a {what}"),
                });
            }
            got += n;
        }
        Ok(data)
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(TarError::Io {
                        offset: self.pos,
                        source,
                    });
                }
            }
        }
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<BlockRead, TarError> {
        let mut filled = 0;
        while filled < BLOCK {
            let n = self.read_some(&mut block[filled..])?;
            if n == 0 {
                return Ok(if filled == 0 {
                    BlockRead::Eof
                } else {
                    BlockRead::Partial
                });
            }
            filled += n;
        }
        Ok(BlockRead::Full)
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current entry's data; `Ok(0)` at its end. A stream that ends early gives an
    /// `UnexpectedEof` error wrapping [`TarError::Truncated`].
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (self.remaining.min(buf.len() as u64)) as usize;
        let n = match self.read_some(&mut buf[..want]) {
            Ok(n) => n,
            Err(TarError::Io { source, .. }) => return Err(source),
            Err(other) => return Err(io::Error::other(other)),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                TarError::Truncated {
                    offset: self.pos,
                    what: format!(
                        "the data of {}",
                        crate::path::escape_bytes(&self.current_name)
                    ),
                },
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

enum BlockRead {
    Full,
    Partial,
    Eof,
}

/// Entry types that never have data blocks (see [`TarReader::next_entry`]).
fn header_only(kind: EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::Directory
            | EntryKind::Symlink
            | EntryKind::Hardlink
            | EntryKind::CharDevice
            | EntryKind::BlockDevice
            | EntryKind::Fifo
    )
}

fn pad_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn trim_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

struct RawHeader {
    offset: u64,
    name: Vec<u8>,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    linkname: Vec<u8>,
    uname: Option<String>,
    gname: Option<String>,
    device: Option<(u32, u32)>,
    gnu_extended_sparse: bool,
}

impl RawHeader {
    fn parse(block: &[u8; BLOCK], offset: u64) -> Result<RawHeader, TarError> {
        let bad = |reason: String| TarError::BadHeader { offset, reason };
        let stored = parse_number(&block[148..156])
            .ok_or_else(|| bad("unreadable checksum field".into()))?;
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        if stored != unsigned && stored as i64 != signed {
            return Err(bad(format!(
                "checksum mismatch (stored {stored:o}, computed {unsigned:o})"
            )));
        }
        let field = |range: std::ops::Range<usize>, what: &str| {
            parse_number(&block[range]).ok_or_else(|| bad(format!("unreadable {what} field")))
        };
        let mode = field(100..108, "mode")?;
        let uid = field(108..116, "uid")?;
        let gid = field(116..124, "gid")?;
        let size = field(124..136, "size")?;
        let mtime = parse_signed_number(&block[136..148])
            .ok_or_else(|| bad("unreadable mtime field".into()))?;
        let typeflag = block[156];
        let magic = &block[257..263];
        let posix = magic == b"ustar\0";
        let gnu = &block[257..265] == b"ustar  \0";
        let mut name = trim_nul(&block[0..100]).to_vec();
        if posix {
            let prefix = trim_nul(&block[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        let text = |r: std::ops::Range<usize>| {
            let t = trim_nul(&block[r]);
            (!t.is_empty()).then(|| String::from_utf8_lossy(t).into_owned())
        };
        let (uname, gname) = if posix || gnu {
            (text(265..297), text(297..329))
        } else {
            (None, None)
        };
        let device = if matches!(typeflag, b'3' | b'4') && (posix || gnu) {
            let major = field(329..337, "device major")?;
            let minor = field(337..345, "device minor")?;
            Some((major as u32, minor as u32))
        } else {
            None
        };
        Ok(RawHeader {
            offset,
            name,
            typeflag,
            mode: (mode & 0o7777) as u32,
            uid,
            gid,
            size,
            mtime,
            linkname: trim_nul(&block[157..257]).to_vec(),
            uname,
            gname,
            device,
            gnu_extended_sparse: typeflag == b'S' && gnu && block[482] != 0,
        })
    }

    fn into_entry(self, pending: Pending, offset: u64) -> EntryHeader {
        let pax = pending.pax.unwrap_or_default();
        let mut kind = EntryKind::from_typeflag(self.typeflag);
        if pax.sparse && kind == EntryKind::File {
            kind = EntryKind::Sparse;
        }
        let mut raw_path = pax.path.or(pending.long_name).unwrap_or(self.name);
        // Old tars mark directories with a trailing slash on a regular-file header.
        if kind == EntryKind::File && raw_path.ends_with(b"/") {
            kind = EntryKind::Directory;
        }
        if kind == EntryKind::Directory {
            while raw_path.len() > 1 && raw_path.ends_with(b"/") {
                raw_path.pop();
            }
        }
        let link_target = if matches!(kind, EntryKind::Symlink | EntryKind::Hardlink) {
            Some(pax.linkpath.or(pending.long_link).unwrap_or(self.linkname))
        } else {
            None
        };
        EntryHeader {
            raw_path,
            kind,
            link_target,
            mode: self.mode,
            uid: pax.uid.unwrap_or(self.uid),
            gid: pax.gid.unwrap_or(self.gid),
            uname: pax.uname.or(self.uname),
            gname: pax.gname.or(self.gname),
            size: pax.size.unwrap_or(self.size),
            mtime: pax.mtime.unwrap_or(Timestamp::from_secs(self.mtime)),
            atime: pax.atime,
            device: self.device,
            has_xattrs: pax.xattrs,
            offset,
        }
    }
}

/// Parses an octal (space/NUL terminated) or base-256 numeric field; negative → `None`.
fn parse_number(field: &[u8]) -> Option<u64> {
    match parse_signed_number(field)? {
        n if n >= 0 => Some(n as u64),
        _ => None,
    }
}

fn parse_signed_number(field: &[u8]) -> Option<i64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // Base-256 (GNU): the first byte's top bit is the marker, 0xff means negative.
        let negative = field[0] == 0xff;
        let mut value: i128 = if negative {
            -1
        } else {
            i128::from(field[0] & 0x7f)
        };
        for &b in &field[1..] {
            value = value.checked_mul(256)? | i128::from(b);
            if value > i128::from(i64::MAX) || value < i128::from(i64::MIN) {
                return None;
            }
        }
        return i64::try_from(value).ok();
    }
    let mut iter = field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .peekable();
    let mut value: i64 = 0;
    while let Some(&&b) = iter.peek() {
        match b {
            b'0'..=b'7' => {
                value = value.checked_mul(8)?.checked_add(i64::from(b - b'0'))?;
                iter.next();
            }
            b' ' | 0 => break,
            _ => return None,
        }
    }
    // Whatever follows the digits must be terminators.
    if iter.any(|&b| b != b' ' && b != 0) {
        return None;
    }
    Some(value)
}

fn parse_pax(data: &[u8], offset: u64) -> Result<PaxRecords, TarError> {
    let bad = |reason: String| TarError::BadPax { offset, reason };
    let mut out = PaxRecords::default();
    let mut rest = data;
    while !rest.is_empty() {
        // Trailing NUL padding after the last record is tolerated.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length".into()))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("record length is not a number".into()))?;
        if len <= space + 1 || len > rest.len() {
            return Err(bad(format!("record length {len} does not fit the header")));
        }
        let record = &rest[space + 1..len];
        rest = &rest[len..];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("record does not end with a newline".into()))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='".into()))?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        let value = &record[eq + 1..];
        let text = || String::from_utf8_lossy(value).into_owned();
        let number = |what: &str| -> Result<Option<u64>, TarError> {
            if value.is_empty() {
                return Ok(None);
            }
            std::str::from_utf8(value)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .map(Some)
                .ok_or_else(|| bad(format!("{what} is not a number: {}", text())))
        };
        let time = |what: &str| -> Result<Option<Timestamp>, TarError> {
            if value.is_empty() {
                return Ok(None);
            }
            Timestamp::parse_pax(&text())
                .map(Some)
                .ok_or_else(|| bad(format!("{what} is not a time: {}", text())))
        };
        let bytes = || (!value.is_empty()).then(|| value.to_vec());
        match key.as_str() {
            "path" => out.path = bytes(),
            "linkpath" => out.linkpath = bytes(),
            "size" => {
                out.size = number("size")?;
                // No file is larger than `off_t` allows; GNU tar refuses such sizes too.
                // Without this bound, `size + padding` overflowed when data was skipped
                // (a panic, or in release builds a reader that lost its place).
                if out.size.is_some_and(|n| n > i64::MAX as u64) {
                    return Err(bad(format!("size is out of range: {}", text())));
                }
            }
            "uid" => out.uid = number("uid")?,
            "gid" => out.gid = number("gid")?,
            "uname" => out.uname = (!value.is_empty()).then(text),
            "gname" => out.gname = (!value.is_empty()).then(text),
            "mtime" => out.mtime = time("mtime")?,
            "atime" => out.atime = time("atime")?,
            k if k.starts_with("GNU.sparse.") => out.sparse = true,
            k if k.starts_with("SCHILY.xattr.")
                || k.starts_with("LIBARCHIVE.xattr.")
                || k.starts_with("SCHILY.acl.") =>
            {
                out.xattrs = true
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{TarWriter, WriteHeader, WriteKind};

    fn header(path: &str, size: u64) -> WriteHeader {
        WriteHeader {
            path: path.as_bytes().to_vec(),
            kind: WriteKind::File,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            size,
            mtime: Timestamp::from_secs(1_721_781_000),
            atime: None,
        }
    }

    fn read_all(data: &[u8]) -> Vec<(EntryHeader, Vec<u8>)> {
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
    fn detects_corruption_truncation_and_trailing_data() {
        let mut w = TarWriter::new(Vec::new(), false);
        w.append(&header("a", 600), &mut &[7u8; 600][..]).unwrap();
        let good = w.finish().unwrap();
        assert_eq!(read_all(&good)[0].1, [7u8; 600]);
        let mut flipped = good.clone();
        flipped[10] ^= 1;
        let err = TarReader::new(&flipped[..]).next_entry().unwrap_err();
        assert!(
            matches!(err, TarError::BadHeader { offset: 0, .. }),
            "{err}"
        );

        // Cut inside the data.
        let mut r = TarReader::new(&good[..700]);
        r.next_entry().unwrap().unwrap();
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        // Cut after the entry, before the end marker.
        let mut r = TarReader::new(&good[..3 * BLOCK]);
        r.next_entry().unwrap().unwrap();
        assert!(matches!(
            r.next_entry().unwrap_err(),
            TarError::MissingEnd { .. }
        ));

        // Garbage after the end marker.
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"not zero");
        let mut r = TarReader::new(&garbage[..]);
        while r.next_entry().unwrap().is_some() {}
        assert!(matches!(
            r.finish().unwrap_err(),
            TarError::TrailingData { .. }
        ));

        // Zero padding after the marker is fine.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0u8; 10240]);
        let mut r = TarReader::new(&padded[..]);
        while r.next_entry().unwrap().is_some() {}
        assert_eq!(r.finish().unwrap().padding, 10240);
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"   644 \0"), Some(0o644));
        assert_eq!(parse_number(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_number(b"00006x4\0"), None);
        // base-256
        let mut f = [0u8; 8];
        f[0] = 0x80;
        f[7] = 0x05;
        f[6] = 0x01;
        assert_eq!(parse_number(&f), Some(261));
        assert_eq!(parse_number(&[0xff; 8]), None);
    }

    #[test]
    fn pax_records_parse_and_refuse_garbage() {
        let rec = parse_pax(b"12 path=a/b\n13 mtime=1.5\n", 0).unwrap();
        assert_eq!(rec.path.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(rec.mtime.unwrap().nanos, 500_000_000);
        assert!(parse_pax(b"99 path=x\n", 0).is_err());
        assert!(parse_pax(b"10 pathx\n", 0).is_err());
        assert!(parse_pax(b"x path=a\n", 0).is_err());
        assert!(parse_pax(b"12 size=-1\n", 0).is_err());
    }
}
