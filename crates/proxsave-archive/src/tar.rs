//! A streaming tar reader and writer (ustar, PAX, GNU long names).
//!
//! The reader is written for hostile input: every header checksum is verified, PAX and GNU
//! long-name records are size-capped, PAX `size` always wins over the ustar field (so no two
//! parsers can disagree on where the next header starts), global PAX headers and sparse files
//! are surfaced as entries of their own kind (the extraction policy refuses them) instead of
//! being half-applied, a stream that ends without the end-of-archive marker is an error, and
//! anything but zero padding after that marker is an error too.
//!
//! The writer produces what GNU tar and Go's `archive/tar` read: ustar headers, with a PAX
//! record block where a field does not fit (long or non-ASCII names, sub-second times, large
//! sizes or ids).

use std::io::{self, Read, Write};

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
    /// Member name, stored as given (callers decide on `./` prefixes).
    pub path: Vec<u8>,
    /// Type.
    pub kind: WriteKind,
    /// Symlink target.
    pub link: Option<Vec<u8>>,
    /// Mode bits (`& 0o7777` is stored).
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

/// Writes a tar stream; see the module docs.
pub struct TarWriter<W: Write> {
    out: W,
    subsecond: bool,
    pax_seq: u64,
}

const USTAR_MAX_SIZE: u64 = 0o77777777777;
const USTAR_MAX_ID: u64 = 0o7777777;

impl<W: Write> TarWriter<W> {
    /// A writer. With `subsecond_times`, nanosecond mtimes and atimes are kept in PAX records
    /// (safety backups); without, times are whole seconds as in upstream bundles.
    pub fn new(out: W, subsecond_times: bool) -> Self {
        TarWriter {
            out,
            subsecond: subsecond_times,
            pax_seq: 0,
        }
    }

    /// Appends one entry, copying exactly `header.size` bytes from `data`.
    ///
    /// # Errors
    /// I/O errors of the output, or `UnexpectedEof` when `data` is shorter than `size`.
    pub fn append(&mut self, header: &WriteHeader, data: &mut dyn Read) -> io::Result<()> {
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        let path_fits = header.path.len() <= 100 && header.path.is_ascii();
        if !path_fits {
            pax.push(("path", header.path.clone()));
        }
        if let Some(link) = &header.link
            && (link.len() > 100 || !link.is_ascii())
        {
            pax.push(("linkpath", link.clone()));
        }
        if header.size > USTAR_MAX_SIZE {
            pax.push(("size", header.size.to_string().into_bytes()));
        }
        if header.uid > USTAR_MAX_ID {
            pax.push(("uid", header.uid.to_string().into_bytes()));
        }
        if header.gid > USTAR_MAX_ID {
            pax.push(("gid", header.gid.to_string().into_bytes()));
        }
        let mtime_fits = header.mtime.secs >= 0 && (header.mtime.secs as u64) <= USTAR_MAX_SIZE;
        if (self.subsecond && header.mtime.nanos != 0) || !mtime_fits {
            // Without sub-second times, a time that needs a PAX record anyway (before 1970 or
            // after 2242) is whole seconds too, like every other time of such an archive. It
            // used to keep its nanoseconds (found by the property tests, tests/proptest_tar.rs).
            let mtime = if self.subsecond {
                header.mtime
            } else {
                Timestamp::from_secs(header.mtime.secs)
            };
            pax.push(("mtime", mtime.to_pax().into_bytes()));
        }
        if self.subsecond
            && let Some(atime) = header.atime
        {
            pax.push(("atime", atime.to_pax().into_bytes()));
        }
        if !pax.is_empty() {
            let body = encode_pax(&pax);
            self.pax_seq += 1;
            let name = pax_header_name(&header.path);
            let block = ustar_block(&UstarFields {
                name: &name,
                typeflag: b'x',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: body.len() as u64,
                mtime: header.mtime.secs.max(0) as u64,
                link: b"",
                uname: "",
                gname: "",
            });
            self.out.write_all(&block)?;
            self.out.write_all(&body)?;
            self.out
                .write_all(&vec![0u8; pad_of(body.len() as u64) as usize])?;
        }
        let typeflag = match header.kind {
            WriteKind::File => b'0',
            WriteKind::Directory => b'5',
            WriteKind::Symlink => b'2',
        };
        let name = truncate_field(&header.path, 100);
        let link = header.link.as_deref().unwrap_or(b"");
        let block = ustar_block(&UstarFields {
            name: &name,
            typeflag,
            mode: header.mode & 0o7777,
            uid: header.uid.min(USTAR_MAX_ID),
            gid: header.gid.min(USTAR_MAX_ID),
            size: header.size.min(USTAR_MAX_SIZE),
            mtime: if mtime_fits {
                header.mtime.secs as u64
            } else {
                0
            },
            link: &truncate_field(link, 100),
            uname: header.uname.as_deref().unwrap_or(""),
            gname: header.gname.as_deref().unwrap_or(""),
        });
        self.out.write_all(&block)?;
        if header.kind == WriteKind::File {
            let copied = io::copy(&mut data.take(header.size), &mut self.out)?;
            if copied != header.size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: expected {} bytes, got {copied}",
                        crate::path::escape_bytes(&header.path),
                        header.size
                    ),
                ));
            }
            self.out
                .write_all(&vec![0u8; pad_of(header.size) as usize])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the output.
    ///
    /// # Errors
    /// I/O errors of the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Mutable access to the output (e.g. to flush).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

struct UstarFields<'a> {
    name: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &'a [u8],
    uname: &'a str,
    gname: &'a str,
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put(&mut b[0..100], f.name);
    put_octal(&mut b[100..108], u64::from(f.mode));
    put_octal(&mut b[108..116], f.uid);
    put_octal(&mut b[116..124], f.gid);
    put_octal(&mut b[124..136], f.size);
    put_octal(&mut b[136..148], f.mtime);
    b[156] = f.typeflag;
    put(&mut b[157..257], f.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put(&mut b[265..297], &truncate_field(f.uname.as_bytes(), 31));
    put(&mut b[297..329], &truncate_field(f.gname.as_bytes(), 31));
    put_octal(&mut b[329..337], 0);
    put_octal(&mut b[337..345], 0);
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    b
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

fn truncate_field(value: &[u8], max: usize) -> Vec<u8> {
    value[..value.len().min(max)].to_vec()
}

fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    let mut name = Vec::new();
    if !dir.is_empty() {
        name.extend_from_slice(dir);
        name.push(b'/');
    }
    name.extend_from_slice(b"PaxHeaders.0/");
    name.extend_from_slice(base);
    let ascii: Vec<u8> = name
        .into_iter()
        .map(|b| if b.is_ascii() && b != 0 { b } else { b'_' })
        .collect();
    truncate_field(&ascii, 100)
}

fn encode_pax(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        // "<len> <key>=<value>\n" where len counts itself.
        let base = 1 + key.len() + 1 + value.len() + 1;
        let mut len = base + 1;
        while len != base + len.to_string().len() {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: WriteKind, size: u64) -> WriteHeader {
        WriteHeader {
            path: path.as_bytes().to_vec(),
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
    fn round_trip_with_pax_times_and_long_names() {
        let long = format!("./{}/file.conf", "d".repeat(150));
        let mut w = TarWriter::new(Vec::new(), true);
        w.append(&header("./etc", WriteKind::Directory, 0), &mut io::empty())
            .unwrap();
        w.append(
            &header("./etc/hosts", WriteKind::File, 5),
            &mut &b"hello"[..],
        )
        .unwrap();
        w.append(&header(&long, WriteKind::File, 3), &mut &b"abc"[..])
            .unwrap();
        let mut link = header("./etc/localtime", WriteKind::Symlink, 0);
        link.link = Some(b"/usr/share/zoneinfo/UTC".to_vec());
        w.append(&link, &mut io::empty()).unwrap();
        let data = w.finish().unwrap();
        let entries = read_all(&data);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0.kind, EntryKind::Directory);
        assert_eq!(entries[1].0.raw_path, b"./etc/hosts");
        assert_eq!(entries[1].1, b"hello");
        assert_eq!(entries[1].0.mtime.nanos, 512_345_678);
        assert_eq!(entries[1].0.atime.unwrap().nanos, 1);
        assert_eq!(entries[2].0.raw_path, long.as_bytes());
        assert_eq!(entries[2].1, b"abc");
        assert_eq!(
            entries[3].0.link_target.as_deref(),
            Some(&b"/usr/share/zoneinfo/UTC"[..])
        );
    }

    #[test]
    fn whole_second_mode_writes_no_pax() {
        let mut w = TarWriter::new(Vec::new(), false);
        w.append(&header("a", WriteKind::File, 1), &mut &b"x"[..])
            .unwrap();
        let data = w.finish().unwrap();
        // header + 1 data block + 2 end blocks, no PAX block.
        assert_eq!(data.len(), 4 * BLOCK);
        let entries = read_all(&data);
        assert_eq!(entries[0].0.mtime.nanos, 0);
        assert_eq!(entries[0].0.atime, None);
    }

    #[test]
    fn whole_second_mode_keeps_out_of_range_mtimes_whole() {
        for secs in [-2, USTAR_MAX_SIZE as i64 + 1] {
            let mut h = header("a", WriteKind::File, 0);
            h.mtime = Timestamp {
                secs,
                nanos: 750_000_000,
            };
            let mut w = TarWriter::new(Vec::new(), false);
            w.append(&h, &mut io::empty()).unwrap();
            let entries = read_all(&w.finish().unwrap());
            assert_eq!(entries[0].0.mtime, Timestamp::from_secs(secs), "{secs}");
        }
    }

    #[test]
    fn detects_corruption_truncation_and_trailing_data() {
        let mut w = TarWriter::new(Vec::new(), false);
        w.append(&header("a", WriteKind::File, 600), &mut &[7u8; 600][..])
            .unwrap();
        let good = w.finish().unwrap();

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
        let body = encode_pax(&[("path", b"a/b".to_vec()), ("mtime", b"1.5".to_vec())]);
        let rec = parse_pax(&body, 0).unwrap();
        assert_eq!(rec.path.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(rec.mtime.unwrap().nanos, 500_000_000);
        assert!(parse_pax(b"99 path=x\n", 0).is_err());
        assert!(parse_pax(b"10 pathx\n", 0).is_err());
        assert!(parse_pax(b"x path=a\n", 0).is_err());
        assert!(parse_pax(b"12 size=-1\n", 0).is_err());
    }
}
