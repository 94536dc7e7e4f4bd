//! Decompression of the inner archive, entirely in-process.
//!
//! proxsave compresses its tar archive with one of six formats (see
//! [`Compression`]). Upstream restores by file-name suffix only and shells out to
//! `xz`/`zstd`/`bzip2`/`lzma`; this module replaces those binaries with library
//! decoders and adds a magic-byte check, so a misnamed archive is reported as such instead
//! of failing somewhere inside the tar reader.
//!
//! ```text
//! name ──► Compression::from_archive_name ──┐
//!                                           ├─► open_decoder ──► (Compression, Box<dyn Read>)
//! plaintext archive bytes ──► sniff(head) ──┘
//! ```
//!
//! What the decoders guarantee, for every format:
//!
//! - **Everything the producers write is read to the end.** pigz / concatenated gzip
//!   members, pbzip2's many bzip2 streams, `xz -T0` multi-block streams and concatenated
//!   `.xz` streams (with stream padding), multi-frame zstd.
//! - **Truncated or corrupt input is an error, never a silent early end.** A cut in the
//!   middle of a stream, a flipped byte, or bytes after the last stream make `read` return
//!   an [`io::Error`] whose payload is a [`DecodeFault`]. The one thing no decoder can see
//!   is a cut that falls exactly between two complete streams/members/frames; the
//!   archive's SHA-256 (checked by the caller) covers that.
//! - **Errors of the layer below pass through untouched.** An error returned by the
//!   `input` reader (file, hash, age) comes back out of `read` as the very same
//!   [`io::Error`] object, so a caller can downcast its payload to its own marker type.
//!   Use [`DecodeFault::from_io`] to tell "xz data corrupt" from "age chunk failed".
//!
//! The decoders, all in-process:
//!
//! | format | decoder |
//! |---|---|
//! | gzip | `flate2` `GzDecoder` per member, members read in a loop (like `MultiGzDecoder`) |
//! | bzip2 | `bzip2` `BzDecoder` per stream, streams read in a loop (like `MultiBzDecoder`) |
//! | zstd | `zstd` `Decoder::with_buffer`, which continues across frames; default 128 MiB window limit |
//! | xz | liblzma's threaded decoder per stream, streams and padding handled here |
//! | lzma | liblzma's LZMA-alone decoder |
//!
//! The xz decoder's memory is bounded by [`XZ_MEMLIMIT_THREADING`] (above it, liblzma
//! uses fewer threads, down to single-threaded decoding) and [`MEMLIMIT_STOP`] (above
//! it, decoding fails). liblzma's threaded decoder cannot read concatenated streams by
//! itself: it stops after the first without an error, which is why the stream loop
//! lives here.

mod xzpar;

use std::fmt;
use std::io::{self, BufRead, Chain, Cursor, Read};

use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};

/// Memory the multi-threaded xz decoder may use before it reduces its thread count: the
/// decoder's share of the process budget, [`crate::spill::xz_memlimit_for_budget`] of
/// [`crate::spill::MEMORY_BUDGET`]. For the 64 MiB budget that is 0: single-threaded
/// decoding (about 11 MiB), because the 40 MiB left would only hold one worker thread,
/// which measured larger and not faster than single-threaded decoding. Earlier builds used
/// 80 MiB (two workers for `xz -6 -T0`'s 24 MiB blocks), which put the whole
/// `verify`/`extract` process near 90 MiB peak RSS (`docs/scale.md`).
///
/// Measured on 100 MiB of config-like text, `xz -6 -T0` (5 blocks of 24 MiB), 2 CPUs,
/// release build, peak RSS of the whole decoding process over two runs (earlier build):
///
/// | `memlimit_threading` | peak RSS | time |
/// |---|---|---|
/// | 0 (single-threaded) | 11 MiB | 0.93–1.00 s |
/// | 64 MiB | 49–65 MiB | 0.82–1.00 s |
/// | 96 MiB (two workers) | 78 MiB | 0.51–0.66 s |
/// | 128 MiB | 95–120 MiB | 0.57–0.63 s |
///
/// Test `xz_mt_memory_and_time_100mib` in `tests/compression_formats.rs` repeats the
/// measurement.
pub const XZ_MEMLIMIT_THREADING: u64 =
    crate::spill::xz_memlimit_for_budget(crate::spill::MEMORY_BUDGET);

/// Hard memory limit of the xz and LZMA-alone decoders (1 GiB): data that needs more
/// fails with a [`FaultKind::TooMuchMemory`] fault instead of exhausting the host.
/// Every preset up to `xz -9e`/`lzma -9e` needs less than 100 MiB.
pub const MEMLIMIT_STOP: u64 = 1 << 30;

/// The block-parallel xz decoder's share of the process budget
/// ([`crate::spill::MEMORY_BUDGET`] less what everything else needs): 40 MiB, i.e. four
/// workers for upstream's `xz -6` (8 MiB dictionaries), one per CPU up to that. See
/// `compression/xzpar.rs`.
pub const XZ_PARALLEL_MEMORY: u64 = crate::spill::decoder_share(crate::spill::MEMORY_BUDGET);

/// How long one call into the multi-threaded xz decoder may block (milliseconds), as
/// the `xz` tool does.
pub const XZ_TIMEOUT_MS: u32 = 300;

/// How many bytes [`open_decoder`] reads ahead to recognise the format: enough for the
/// `ustar` magic of a tar header (offset 257..262).
pub const SNIFF_LEN: usize = 263;

/// Upper bound for the xz decoder's thread count, whatever the machine reports.
const XZ_MAX_THREADS: usize = 64;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";
/// zstd's own limit for the window of a frame it decodes by default (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`).
const ZSTD_DEFAULT_WINDOW_MIB: u64 = 128;

/// The compression of a proxsave archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar (`.tar`).
    None,
    /// gzip or pigz (`.tar.gz`, `.tgz`); several concatenated members are read in order.
    Gzip,
    /// xz (`.tar.xz`), including multi-block (`xz -T0`) and concatenated streams.
    Xz,
    /// Zstandard (`.tar.zst`, `.tar.zstd`), any number of frames.
    Zstd,
    /// bzip2 or pbzip2 (`.tar.bz2`), any number of concatenated streams.
    Bzip2,
    /// The legacy LZMA-alone format of the `lzma` tool (`.tar.lzma`).
    Lzma,
}

/// Archive-name suffixes in upstream's order of detection: the first match wins.
const SUFFIXES: &[(&str, Compression)] = &[
    (".tar.gz", Compression::Gzip),
    (".tgz", Compression::Gzip),
    (".tar.xz", Compression::Xz),
    (".tar.zst", Compression::Zstd),
    (".tar.zstd", Compression::Zstd),
    (".tar.bz2", Compression::Bzip2),
    (".tar.lzma", Compression::Lzma),
    (".tar", Compression::None),
];

impl Compression {
    /// Every format, in declaration order.
    pub const ALL: [Compression; 6] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Lzma,
    ];

    /// The compression an archive name announces, exactly as upstream detects it
    /// (case-sensitive suffix, first match wins): `.tar.gz`/`.tgz` → gzip, `.tar.xz`,
    /// `.tar.zst`/`.tar.zstd`, `.tar.bz2`, `.tar.lzma`, `.tar` → none; anything else →
    /// `None` ("unsupported archive format" upstream).
    ///
    /// `name` must be the plaintext archive name: the caller strips a trailing `.age`
    /// first (`x.tar.xz.age` → `x.tar.xz`). A name still ending in `.age` gives `None`.
    pub fn from_archive_name(name: &str) -> Option<Compression> {
        SUFFIXES
            .iter()
            .find(|(suffix, _)| name.ends_with(suffix))
            .map(|&(_, compression)| compression)
    }

    /// The compression named by a manifest's `compression_type`: `gz` and `pigz` →
    /// gzip, `xz`, `zst` → zstd, `bz2` → bzip2, `lzma`, `none`. Surrounding whitespace
    /// and letter case are ignored; anything else gives `None`.
    ///
    /// Upstream treats this field as display-only; the name and the data decide.
    pub fn from_manifest_type(s: &str) -> Option<Compression> {
        let s = s.trim().to_ascii_lowercase();
        Some(match s.as_str() {
            "gz" | "pigz" => Compression::Gzip,
            "xz" => Compression::Xz,
            "zst" => Compression::Zstd,
            "bz2" => Compression::Bzip2,
            "lzma" => Compression::Lzma,
            "none" => Compression::None,
            _ => return None,
        })
    }

    /// Short lowercase name: `gzip`, `xz`, `zstd`, `bzip2`, `lzma` or `none` (also the
    /// serialised form).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
        }
    }

    /// The archive-name suffix upstream writes for this compression: `.tar.gz`,
    /// `.tar.xz`, `.tar.zst`, `.tar.bz2`, `.tar.lzma` or `.tar`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => ".tar",
            Compression::Gzip => ".tar.gz",
            Compression::Xz => ".tar.xz",
            Compression::Zstd => ".tar.zst",
            Compression::Bzip2 => ".tar.bz2",
            Compression::Lzma => ".tar.lzma",
        }
    }

    /// The magic bytes that open data in this format (empty for none and LZMA-alone,
    /// which has no fixed magic).
    fn magic(self) -> &'static [u8] {
        match self {
            Compression::Gzip => GZIP_MAGIC,
            Compression::Xz => XZ_MAGIC,
            Compression::Zstd => ZSTD_MAGIC,
            Compression::Bzip2 => BZIP2_MAGIC,
            Compression::None | Compression::Lzma => &[],
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the first bytes of an archive say about its format (see [`sniff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sniffed {
    /// Compressed data in this format (never [`Compression::None`]).
    Compressed(Compression),
    /// An uncompressed tar archive (`ustar` magic).
    Tar,
    /// Nothing recognisable.
    Unknown,
}

impl fmt::Display for Sniffed {
    /// Completes "the data is …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sniffed::Compressed(Compression::None) | Sniffed::Tar => {
                f.write_str("an uncompressed tar archive")
            }
            Sniffed::Compressed(c) => write!(f, "{c}-compressed"),
            Sniffed::Unknown => f.write_str("in no known compression format"),
        }
    }
}

/// Recognises the format of an archive from its first bytes (pass at least
/// [`SNIFF_LEN`] bytes when the data is that long).
///
/// Magic bytes: gzip `1f 8b`; xz `fd 37 7a 58 5a 00`; zstd `28 b5 2f fd` (or a skippable
/// frame `5? 2a 4d 18`); bzip2 `BZh` + `1`..`9`; tar `ustar` at offset 257. LZMA-alone has
/// no magic, so it is recognised last and only by a plausible 13-byte header: properties
/// byte below 225, a dictionary size of 2^n or 2^n + 2^(n-1) between 4 KiB and 1.5 GiB,
/// an uncompressed size that is unknown (all `ff`) or below 256 GiB, and a first range
/// coder byte of 0.
pub fn sniff(head: &[u8]) -> Sniffed {
    let compressed = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if head.starts_with(ZSTD_MAGIC) || is_zstd_skippable(head) {
        Compression::Zstd
    } else if head.starts_with(BZIP2_MAGIC) && matches!(head.get(3), Some(b'1'..=b'9')) {
        Compression::Bzip2
    } else if head.get(257..262) == Some(b"ustar") {
        return Sniffed::Tar;
    } else if looks_like_lzma_alone(head) {
        Compression::Lzma
    } else {
        return Sniffed::Unknown;
    };
    Sniffed::Compressed(compressed)
}

fn is_zstd_skippable(head: &[u8]) -> bool {
    matches!(head, [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50)
}

/// The header checks xz's own `.lzma` detection makes, plus the range coder's first byte.
fn looks_like_lzma_alone(head: &[u8]) -> bool {
    let Some(header) = head.get(..13) else {
        return false;
    };
    if header[0] >= 9 * 5 * 5 {
        return false;
    }
    let dict = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let dict_plausible = (4096..=(3 << 29)).contains(&dict) && {
        // 2^n, or 2^n + 2^(n-1): clearing the lowest set bit leaves 0 or the next bit up.
        let rest = dict & (dict - 1);
        rest == 0 || (rest.is_power_of_two() && rest == (dict & !rest) << 1)
    };
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[5..13]);
    let size = u64::from_le_bytes(size);
    let size_plausible = size == u64::MAX || size < 1 << 38;
    dict_plausible && size_plausible && head.get(13).is_none_or(|&b| b == 0)
}

/// Errors of the decompression stage, found before any data is decoded. Problems in
/// the data itself surface later, from `read`, as [`DecodeFault`]s.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The name announces one format, the data is in another.
    #[error("{label}: the name says {} but the data is {found}", by_name.suffix())]
    Mismatch {
        /// The archive name.
        label: String,
        /// The compression the name announces.
        by_name: Compression,
        /// What the data looks like.
        found: Sniffed,
    },
    /// The data is in no format this crate reads.
    #[error("{label}: unsupported archive: {reason}")]
    Unsupported {
        /// The archive name.
        label: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The decoder could not be created (for example out of memory).
    #[error("{label}: cannot start the {format} decoder: {reason}")]
    Init {
        /// The archive name.
        label: String,
        /// The format whose decoder failed.
        format: Compression,
        /// What the library reported.
        reason: String,
    },
    /// Reading the first bytes of the archive failed. The error is the one the input
    /// reader returned, unchanged.
    #[error("cannot read the start of the archive: {0}")]
    Io(#[source] io::Error),
}

/// The kind of a [`DecodeFault`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The data ends in the middle of a stream (the file was cut short).
    Truncated,
    /// The data is damaged: a checksum, header or coded value is wrong.
    Corrupt,
    /// Something follows the last complete stream that is not another stream.
    TrailingData,
    /// Decoding would need more memory than allowed (xz/lzma dictionary above
    /// [`MEMLIMIT_STOP`], zstd window above 128 MiB).
    TooMuchMemory,
}

impl FaultKind {
    fn io_kind(self) -> io::ErrorKind {
        match self {
            FaultKind::Truncated => io::ErrorKind::UnexpectedEof,
            FaultKind::Corrupt | FaultKind::TrailingData => io::ErrorKind::InvalidData,
            FaultKind::TooMuchMemory => io::ErrorKind::OutOfMemory,
        }
    }
}

/// A problem found by a decoder in the compressed data, carried as the payload of the
/// [`io::Error`] that the reader from [`open_decoder`] returns.
///
/// Errors of the input reader are never wrapped in a `DecodeFault`; they come out
/// unchanged. Find the fault in an error with [`DecodeFault::from_io`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeFault {
    /// The format being decoded.
    pub format: Compression,
    /// What kind of problem it is.
    pub kind: FaultKind,
    /// What the decoder reported.
    pub detail: String,
}

impl DecodeFault {
    fn new(format: Compression, kind: FaultKind, detail: impl Into<String>) -> Self {
        DecodeFault {
            format,
            kind,
            detail: detail.into(),
        }
    }

    /// The decoder fault carried by `err`, or `None` when `err` came from elsewhere
    /// (typically the input reader).
    pub fn from_io(err: &io::Error) -> Option<&DecodeFault> {
        err.get_ref()?.downcast_ref::<DecodeFault>()
    }

    fn into_io(self) -> io::Error {
        io::Error::new(self.kind.io_kind(), self)
    }
}

impl fmt::Display for DecodeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FaultKind::Truncated => "is truncated",
            FaultKind::Corrupt => "is corrupt",
            FaultKind::TrailingData => "is followed by unexpected bytes",
            FaultKind::TooMuchMemory => "needs too much memory to decode",
        };
        write!(f, "the {} data {what}: {}", self.format, self.detail)
    }
}

impl std::error::Error for DecodeFault {}

/// Tuning of the decoders. [`open_decoder`] uses [`DecodeOptions::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Worker threads of the xz decoder; 0 means one per available CPU (at most 64).
    pub xz_threads: u32,
    /// See [`XZ_MEMLIMIT_THREADING`]. 0 forces single-threaded xz decoding.
    pub xz_memlimit_threading: u64,
    /// See [`MEMLIMIT_STOP`]; applies to xz and LZMA-alone.
    pub memlimit_stop: u64,
    /// Memory the block-parallel xz decoder's workers may use together (one dictionary
    /// each, see [`XZ_PARALLEL_MEMORY`]); 0 turns it off (liblzma's own decoder then, as
    /// set by `xz_memlimit_threading`).
    pub xz_parallel_memory: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            xz_threads: 0,
            xz_memlimit_threading: XZ_MEMLIMIT_THREADING,
            memlimit_stop: MEMLIMIT_STOP,
            xz_parallel_memory: XZ_PARALLEL_MEMORY,
        }
    }
}

impl DecodeOptions {
    fn threads(&self) -> u32 {
        let n = match self.xz_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        // Bounded by XZ_MAX_THREADS, so the conversion cannot fail.
        u32::try_from(n.clamp(1, XZ_MAX_THREADS)).unwrap_or(1)
    }
}

/// Wraps `input` (the plaintext archive bytes) in the decoder for its compression,
/// with [`DecodeOptions::default`]. See [`open_decoder_with`].
pub fn open_decoder<R: BufRead + Send + 'static>(
    input: R,
    expected: Option<Compression>,
    label: &str,
) -> Result<(Compression, Box<dyn Read + Send>), CompressionError> {
    open_decoder_with(input, expected, label, &DecodeOptions::default())
}

/// Wraps `input` (the plaintext archive bytes) in the decoder for its compression and
/// returns the compression used with the decoding reader.
///
/// The first [`SNIFF_LEN`] bytes are read and [`sniff`]ed (they are replayed to the
/// decoder), and checked against `expected`, the compression the archive name announces
/// ([`Compression::from_archive_name`]):
///
/// - `Some(c)` and the data is in another format, or is a plain tar while `c` is a
///   compression → [`CompressionError::Mismatch`]. Exceptions: unrecognised data is
///   accepted for [`Compression::Lzma`] (LZMA-alone has no reliable magic) and for
///   [`Compression::None`] (a pre-POSIX tar has no `ustar` magic); data that is just a
///   cut-off piece of the expected magic goes to the decoder, which reports truncation.
/// - `None` (the name says nothing) → the sniffed format is used (upstream refuses such
///   names); unrecognisable data → [`CompressionError::Unsupported`].
/// - Empty input → [`CompressionError::Unsupported`]: no proxsave archive is empty.
///
/// `label` (the archive name) appears in error messages. Errors of the returned reader
/// are described in the [module documentation](self).
pub fn open_decoder_with<R: BufRead + Send + 'static>(
    mut input: R,
    expected: Option<Compression>,
    label: &str,
    options: &DecodeOptions,
) -> Result<(Compression, Box<dyn Read + Send>), CompressionError> {
    let head = peek(&mut input, SNIFF_LEN).map_err(CompressionError::Io)?;
    let format = choose_format(&head, expected, label)?;
    let init = |reason: String| CompressionError::Init {
        label: label.to_owned(),
        format,
        reason,
    };
    let decoder: Box<dyn Read + Send> = match format {
        // Nothing to decode, so nothing to guard: errors of `input` come through as they are.
        Compression::None => Box::new(Cursor::new(head).chain(input)),
        Compression::Gzip => guard(
            format,
            Members::new(
                format,
                replay(head, input),
                flate2::bufread::GzDecoder::new,
                flate2::bufread::GzDecoder::into_inner,
            ),
        ),
        Compression::Bzip2 => guard(
            format,
            Members::new(
                format,
                replay(head, input),
                bzip2::bufread::BzDecoder::new,
                bzip2::bufread::BzDecoder::into_inner,
            ),
        ),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(replay(head, input))
                .map_err(|e| init(e.to_string()))?;
            guard(format, decoder)
        }
        Compression::Xz if options.xz_parallel_memory > 0 && options.threads() >= 2 => {
            let reader = xzpar::spawn(replay(head, input), *options, options.xz_parallel_memory)
                .map_err(|e| init(e.to_string()))?;
            guard(format, reader)
        }
        Compression::Xz => {
            let reader =
                LzmaReader::xz(replay(head, input), *options).map_err(|e| init(e.to_string()))?;
            guard(format, reader)
        }
        Compression::Lzma => {
            let reader = LzmaReader::lzma_alone(replay(head, input), options.memlimit_stop)
                .map_err(|e| init(e.to_string()))?;
            guard(format, reader)
        }
    };
    Ok((format, decoder))
}

/// Reads up to `want` bytes without losing any (retrying on `Interrupted`).
fn peek<R: BufRead>(input: &mut R, want: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(want);
    while head.len() < want {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len().min(want - head.len());
        head.extend_from_slice(&chunk[..n]);
        input.consume(n);
    }
    Ok(head)
}

/// The name/magic cross-check of [`open_decoder_with`].
fn choose_format(
    head: &[u8],
    expected: Option<Compression>,
    label: &str,
) -> Result<Compression, CompressionError> {
    if head.is_empty() {
        return Err(CompressionError::Unsupported {
            label: label.to_owned(),
            reason: "the archive is empty (0 bytes)".to_owned(),
        });
    }
    let sniffed = sniff(head);
    match (expected, sniffed) {
        (Some(by_name), Sniffed::Compressed(found)) if by_name == found => Ok(by_name),
        (Some(Compression::None), Sniffed::Tar | Sniffed::Unknown) => Ok(Compression::None),
        (Some(Compression::Lzma), Sniffed::Unknown) => Ok(Compression::Lzma),
        (Some(by_name), Sniffed::Unknown)
            if head.len() <= by_name.magic().len() && by_name.magic().starts_with(head) =>
        {
            Ok(by_name)
        }
        (Some(by_name), found) => Err(CompressionError::Mismatch {
            label: label.to_owned(),
            by_name,
            found,
        }),
        (None, Sniffed::Compressed(found)) => Ok(found),
        (None, Sniffed::Tar) => Ok(Compression::None),
        (None, Sniffed::Unknown) => Err(CompressionError::Unsupported {
            label: label.to_owned(),
            reason: "the name has no known archive suffix and the data is neither compressed \
                     in a known format nor a tar archive"
                .to_owned(),
        }),
    }
}

/// Marks errors of the input reader so that [`Guard`] can hand them back unchanged,
/// whatever the decoder crate did with them on the way.
struct InnerError(io::Error);

impl fmt::Debug for InnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for InnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InnerError {}

fn tag(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), InnerError(e))
}

/// The input reader, with its errors tagged as [`InnerError`].
struct Tagged<R>(R);

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(tag)
    }
}

impl<R: BufRead> BufRead for Tagged<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf().map_err(tag)
    }

    fn consume(&mut self, amt: usize) {
        self.0.consume(amt);
    }
}

/// The input of a decoder: the sniffed bytes again, then the rest of the input, tagged.
type Replay<R> = Chain<Cursor<Vec<u8>>, Tagged<R>>;

fn replay<R: BufRead>(head: Vec<u8>, input: R) -> Replay<R> {
    Cursor::new(head).chain(Tagged(input))
}

/// The outermost layer of every decoder: input errors come back untagged, decoder
/// errors become [`DecodeFault`]s.
///
/// After an error nothing more is decoded: a fault repeats on every later `read`, and
/// after an input error (other than `Interrupted`, which is safe to retry) `read` fails
/// too. Some decoders would otherwise report a clean end when asked to carry on.
struct Guard<D> {
    decoder: D,
    format: Compression,
    state: GuardState,
}

enum GuardState {
    Ok,
    Fault(DecodeFault),
    InputFailed,
}

fn guard<D: Read + Send + 'static>(format: Compression, decoder: D) -> Box<dyn Read + Send> {
    Box::new(Guard {
        decoder,
        format,
        state: GuardState::Ok,
    })
}

impl<D: Read> Read for Guard<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.state {
            GuardState::Ok => {}
            GuardState::Fault(fault) => return Err(fault.clone().into_io()),
            GuardState::InputFailed => {
                return Err(io::Error::other(format!(
                    "{} decoding cannot resume after its input failed",
                    self.format
                )));
            }
        }
        match self.decoder.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => match classify(e, self.format) {
                Ok(inner) => {
                    if inner.kind() != io::ErrorKind::Interrupted {
                        self.state = GuardState::InputFailed;
                    }
                    Err(inner)
                }
                Err(fault) => {
                    self.state = GuardState::Fault(fault.clone());
                    Err(fault.into_io())
                }
            },
        }
    }
}

/// Splits an error out of a decoder into an input error (`Ok`, unchanged) and a fault.
fn classify(e: io::Error, format: Compression) -> Result<io::Error, DecodeFault> {
    let kind = e.kind();
    let tagged = e.get_ref().is_some_and(|p| p.is::<InnerError>());
    let ours = e.get_ref().is_some_and(|p| p.is::<DecodeFault>());
    if tagged || ours {
        if let Some(payload) = e.into_inner() {
            match payload.downcast::<InnerError>() {
                Ok(inner) => return Ok(inner.0),
                Err(payload) => {
                    if let Ok(fault) = payload.downcast::<DecodeFault>() {
                        return Err(*fault);
                    }
                }
            }
        }
        return Err(DecodeFault::new(
            format,
            FaultKind::Corrupt,
            "decoder error",
        ));
    }
    let message = e.to_string();
    Err(if kind == io::ErrorKind::UnexpectedEof {
        DecodeFault::new(format, FaultKind::Truncated, message)
    } else if format == Compression::Zstd && message.contains("requires too much memory") {
        DecodeFault::new(
            format,
            FaultKind::TooMuchMemory,
            format!(
                "a frame needs a window larger than {ZSTD_DEFAULT_WINDOW_MIB} MiB \
                 (written with zstd --long or a custom window?)"
            ),
        )
    } else if format == Compression::Zstd && message == "Unknown frame descriptor" {
        DecodeFault::new(
            format,
            FaultKind::Corrupt,
            "unknown frame descriptor (not zstd data, or bytes after the last frame)",
        )
    } else if kind == io::ErrorKind::OutOfMemory {
        DecodeFault::new(format, FaultKind::TooMuchMemory, message)
    } else {
        DecodeFault::new(format, FaultKind::Corrupt, message)
    })
}

/// Where a [`Members`] reader is.
enum MemberState<R, D> {
    /// Inside a member (gzip) or stream (bzip2).
    Member(D),
    /// After the end of a member, before looking at what follows.
    Between(R),
    /// At the end of the input.
    Done,
    /// Only seen if a previous step failed half-way.
    Lost,
}

/// Reads concatenated gzip members or bzip2 streams one after the other, as
/// `MultiGzDecoder`/`MultiBzDecoder` do (pigz, pbzip2, `cat a.gz b.gz`), but checks the
/// magic of whatever follows a member, so that trailing bytes are reported as such
/// rather than as a bad header or a truncation.
///
/// The single-member decoders return `Ok(0)` only once the member's end (and, for gzip,
/// its CRC and length trailer) has been verified; a cut inside a member is their error.
struct Members<R, D> {
    format: Compression,
    state: MemberState<R, D>,
    /// Completed members.
    members: u64,
    open: fn(R) -> D,
    close: fn(D) -> R,
}

impl<R: BufRead, D: Read> Members<R, D> {
    fn new(format: Compression, input: R, open: fn(R) -> D, close: fn(D) -> R) -> Self {
        Members {
            format,
            state: MemberState::Member(open(input)),
            members: 0,
            open,
            close,
        }
    }

    fn member_name(&self) -> &'static str {
        match self.format {
            Compression::Gzip => "gzip member",
            _ => "bzip2 stream",
        }
    }
}

impl<R: BufRead, D: Read> Read for Members<R, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                MemberState::Done => return Ok(0),
                MemberState::Lost => {
                    return Err(DecodeFault::new(
                        self.format,
                        FaultKind::Corrupt,
                        "decoder state lost after an error",
                    )
                    .into_io());
                }
                MemberState::Member(decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        return Ok(n);
                    }
                    self.members += 1;
                    if let MemberState::Member(decoder) =
                        std::mem::replace(&mut self.state, MemberState::Lost)
                    {
                        self.state = MemberState::Between((self.close)(decoder));
                    }
                }
                MemberState::Between(input) => {
                    let next = input.fill_buf()?;
                    if next.is_empty() {
                        self.state = MemberState::Done;
                        continue;
                    }
                    let magic = self.format.magic();
                    let n = next.len().min(magic.len());
                    if next[..n] != magic[..n] {
                        return Err(DecodeFault::new(
                            self.format,
                            FaultKind::TrailingData,
                            format!(
                                "bytes after {} {} are not another {}",
                                self.member_name(),
                                self.members,
                                self.member_name()
                            ),
                        )
                        .into_io());
                    }
                    if let MemberState::Between(input) =
                        std::mem::replace(&mut self.state, MemberState::Lost)
                    {
                        self.state = MemberState::Member((self.open)(input));
                    }
                }
            }
        }
    }
}

/// Where an [`LzmaReader`] is.
enum LzmaState {
    /// Inside a stream.
    Decoding,
    /// After the end of a stream: stream padding (NUL bytes) seen so far.
    Between { padding: u64 },
    /// At the end of the input.
    Done,
}

/// Drives liblzma directly: the `.xz` reader concatenates streams (the threaded decoder
/// cannot do that itself), and both formats report truncation and trailing bytes.
struct LzmaReader<R> {
    input: Replay<R>,
    format: Compression,
    options: DecodeOptions,
    stream: Option<Stream>,
    state: LzmaState,
    /// The input ended while in the current stream: liblzma gets `Action::Finish`.
    finishing: bool,
    /// Completed streams.
    streams: u64,
}

impl<R: BufRead> LzmaReader<R> {
    fn xz(input: Replay<R>, options: DecodeOptions) -> Result<Self, liblzma::stream::Error> {
        let stream = new_xz_stream(&options)?;
        Ok(Self::with_stream(input, Compression::Xz, options, stream))
    }

    fn lzma_alone(input: Replay<R>, memlimit: u64) -> Result<Self, liblzma::stream::Error> {
        let stream = Stream::new_lzma_decoder(memlimit)?;
        let options = DecodeOptions {
            memlimit_stop: memlimit,
            ..DecodeOptions::default()
        };
        Ok(Self::with_stream(input, Compression::Lzma, options, stream))
    }

    fn with_stream(
        input: Replay<R>,
        format: Compression,
        options: DecodeOptions,
        stream: Stream,
    ) -> Self {
        LzmaReader {
            input,
            format,
            options,
            stream: Some(stream),
            state: LzmaState::Decoding,
            finishing: false,
            streams: 0,
        }
    }

    fn fault(&self, kind: FaultKind, detail: impl Into<String>) -> io::Error {
        DecodeFault::new(self.format, kind, detail).into_io()
    }

    fn liblzma_fault(&self, e: liblzma::stream::Error) -> io::Error {
        use liblzma::stream::Error as E;
        let (kind, detail) = match e {
            E::Format if self.streams > 0 => (
                FaultKind::TrailingData,
                format!(
                    "bytes after the end of xz stream {} are not another xz stream",
                    self.streams
                ),
            ),
            E::Format => (FaultKind::Corrupt, format!("not {} data", self.format)),
            E::Data => (
                FaultKind::Corrupt,
                "compressed data or integrity check is wrong".to_owned(),
            ),
            E::Options => (
                FaultKind::Corrupt,
                "unsupported or damaged stream/block header".to_owned(),
            ),
            E::MemLimit => (
                FaultKind::TooMuchMemory,
                format!(
                    "decoding needs more than the limit of {} MiB",
                    self.options.memlimit_stop >> 20
                ),
            ),
            E::Mem => (FaultKind::TooMuchMemory, "out of memory".to_owned()),
            other => (FaultKind::Corrupt, format!("liblzma: {other}")),
        };
        self.fault(kind, detail)
    }

    /// Between streams: skips padding, then finds the end or the next stream.
    fn between(&mut self, padding: u64) -> io::Result<()> {
        let input = self.input.fill_buf()?;
        if input.is_empty() {
            if padding % 4 != 0 {
                return Err(self.fault(
                    FaultKind::TrailingData,
                    format!(
                        "{padding} NUL bytes after the last stream (padding must come in fours)"
                    ),
                ));
            }
            self.state = LzmaState::Done;
            return Ok(());
        }
        if self.format == Compression::Lzma {
            return Err(self.fault(
                FaultKind::TrailingData,
                "bytes after the end of the LZMA stream",
            ));
        }
        let zeros = input.iter().take_while(|&&b| b == 0).count();
        if zeros > 0 {
            self.input.consume(zeros);
            self.state = LzmaState::Between {
                padding: padding + zeros as u64,
            };
            return Ok(());
        }
        if padding % 4 != 0 {
            return Err(self.fault(
                FaultKind::TrailingData,
                format!(
                    "{padding} NUL bytes after xz stream {} (padding must come in fours)",
                    self.streams
                ),
            ));
        }
        let n = input.len().min(XZ_MAGIC.len());
        if input[..n] != XZ_MAGIC[..n] {
            return Err(self.fault(
                FaultKind::TrailingData,
                format!(
                    "bytes after xz stream {} are not another xz stream",
                    self.streams
                ),
            ));
        }
        let stream = new_xz_stream(&self.options).map_err(|e| self.liblzma_fault(e))?;
        self.stream = Some(stream);
        self.finishing = false;
        self.state = LzmaState::Decoding;
        Ok(())
    }

    /// One step of decoding into `buf`: the bytes produced (possibly 0, with progress
    /// elsewhere).
    fn decode(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.fault(FaultKind::Corrupt, "decoder state lost"));
        };
        let input = self.input.fill_buf()?;
        if input.is_empty() {
            self.finishing = true;
        }
        let action = if self.finishing {
            Action::Finish
        } else {
            Action::Run
        };
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let status = stream.process(input, buf, action);
        let consumed = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
        let produced = usize::try_from(stream.total_out() - out_before).unwrap_or(usize::MAX);
        self.input.consume(consumed);
        match status {
            Err(e) => Err(self.liblzma_fault(e)),
            Ok(Status::StreamEnd) => {
                // Dropping the stream stops its worker threads and frees their buffers.
                self.stream = None;
                self.streams += 1;
                self.state = LzmaState::Between { padding: 0 };
                Ok(produced)
            }
            // liblzma's "no progress possible" after the input ended: the stream is cut.
            Ok(Status::MemNeeded) if self.finishing && produced == 0 => Err(self.fault(
                FaultKind::Truncated,
                format!("the input ends inside {}", self.stream_name()),
            )),
            // Ok without output is normal: more input needed, or the threaded decoder's
            // timeout passed while its workers decode.
            Ok(_) => Ok(produced),
        }
    }

    fn stream_name(&self) -> String {
        match self.format {
            Compression::Xz => format!("xz stream {}", self.streams + 1),
            _ => "the LZMA stream".to_owned(),
        }
    }
}

impl<R: BufRead> Read for LzmaReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                LzmaState::Done => return Ok(0),
                LzmaState::Between { padding } => self.between(padding)?,
                LzmaState::Decoding => {
                    let produced = self.decode(buf)?;
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
            }
        }
    }
}

fn new_xz_stream(options: &DecodeOptions) -> Result<Stream, liblzma::stream::Error> {
    MtStreamBuilder::new()
        .threads(options.threads())
        .memlimit_threading(options.xz_memlimit_threading)
        .memlimit_stop(options.memlimit_stop)
        .timeout_ms(XZ_TIMEOUT_MS)
        .decoder()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lzma_header(props: u8, dict: u32, size: u64) -> Vec<u8> {
        let mut h = vec![props];
        h.extend_from_slice(&dict.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.push(0);
        h
    }

    #[test]
    fn sniff_recognises_each_magic() {
        assert_eq!(
            sniff(&[0x1f, 0x8b, 8, 0]),
            Sniffed::Compressed(Compression::Gzip)
        );
        assert_eq!(sniff(XZ_MAGIC), Sniffed::Compressed(Compression::Xz));
        assert_eq!(
            sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0x04]),
            Sniffed::Compressed(Compression::Zstd)
        );
        assert_eq!(
            sniff(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]),
            Sniffed::Compressed(Compression::Zstd)
        );
        assert_eq!(
            sniff(b"BZh91AY&SY"),
            Sniffed::Compressed(Compression::Bzip2)
        );
        assert_eq!(sniff(b"BZh0"), Sniffed::Unknown);
        assert_eq!(sniff(b"BZh"), Sniffed::Unknown);
        assert_eq!(
            sniff(&lzma_header(0x5d, 8 << 20, u64::MAX)),
            Sniffed::Compressed(Compression::Lzma)
        );
        assert_eq!(sniff(b""), Sniffed::Unknown);
        assert_eq!(sniff(b"hello, world"), Sniffed::Unknown);
    }

    #[test]
    fn sniff_tar_needs_ustar_at_257() {
        let mut block = vec![0u8; 512];
        block[..14].copy_from_slice(b"./etc/hostname");
        block[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(sniff(&block), Sniffed::Tar);
        assert_eq!(sniff(&block[..263]), Sniffed::Tar);
        assert_eq!(sniff(&block[..261]), Sniffed::Unknown);
    }

    #[test]
    fn sniff_lzma_alone_rejects_implausible_headers() {
        // props byte too large
        assert_eq!(
            sniff(&lzma_header(225, 8 << 20, u64::MAX)),
            Sniffed::Unknown
        );
        // dictionary not 2^n or 2^n + 2^(n-1), too small, too large
        assert_eq!(
            sniff(&lzma_header(0x5d, 5 << 20, u64::MAX)),
            Sniffed::Unknown
        );
        assert_eq!(sniff(&lzma_header(0x5d, 2048, u64::MAX)), Sniffed::Unknown);
        assert_eq!(sniff(&lzma_header(0x5d, 0, u64::MAX)), Sniffed::Unknown);
        assert_eq!(
            sniff(&lzma_header(0x5d, 1 << 31, u64::MAX)),
            Sniffed::Unknown
        );
        // size neither unknown nor below 256 GiB
        assert_eq!(
            sniff(&lzma_header(0x5d, 1 << 20, 1 << 40)),
            Sniffed::Unknown
        );
        // first range coder byte must be 0
        let mut h = lzma_header(0x5d, 1 << 20, u64::MAX);
        h[13] = 1;
        assert_eq!(sniff(&h), Sniffed::Unknown);
        // plausible: 3 MiB = 2^21 + 2^20, known size, header only
        assert_eq!(
            sniff(&lzma_header(0x5d, 3 << 20, 12345)[..13]),
            Sniffed::Compressed(Compression::Lzma)
        );
        // 1.5 GiB is the largest accepted dictionary
        assert_eq!(
            sniff(&lzma_header(0, 3 << 29, u64::MAX)),
            Sniffed::Compressed(Compression::Lzma)
        );
        // 12 bytes are too few to judge
        assert_eq!(
            sniff(&lzma_header(0x5d, 1 << 20, u64::MAX)[..12]),
            Sniffed::Unknown
        );
    }

    #[test]
    fn names_suffixes_and_manifest_types_round_trip() {
        for c in Compression::ALL {
            assert_eq!(
                Compression::from_archive_name(&format!("host-backup{}", c.suffix())),
                Some(c)
            );
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        assert_eq!(
            Compression::from_manifest_type(" PIGZ "),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_manifest_type("gzip"), None);
    }

    #[test]
    fn choose_format_cross_checks_name_and_magic() {
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0x04];
        assert_eq!(
            choose_format(&zstd, Some(Compression::Zstd), "a").ok(),
            Some(Compression::Zstd)
        );
        assert_eq!(
            choose_format(&zstd, None, "a").ok(),
            Some(Compression::Zstd)
        );
        assert!(matches!(
            choose_format(&zstd, Some(Compression::Xz), "a"),
            Err(CompressionError::Mismatch {
                by_name: Compression::Xz,
                found: Sniffed::Compressed(Compression::Zstd),
                ..
            })
        ));
        // A cut-off magic goes to the decoder, which reports the truncation.
        assert_eq!(
            choose_format(&XZ_MAGIC[..3], Some(Compression::Xz), "a").ok(),
            Some(Compression::Xz)
        );
        assert!(choose_format(&XZ_MAGIC[..3], Some(Compression::Zstd), "a").is_err());
        // Weak or missing magic is accepted where it cannot be checked.
        assert_eq!(
            choose_format(b"garbage", Some(Compression::Lzma), "a").ok(),
            Some(Compression::Lzma)
        );
        assert_eq!(
            choose_format(b"garbage", Some(Compression::None), "a").ok(),
            Some(Compression::None)
        );
        assert!(matches!(
            choose_format(b"garbage", None, "a"),
            Err(CompressionError::Unsupported { .. })
        ));
        assert!(matches!(
            choose_format(b"", Some(Compression::None), "a"),
            Err(CompressionError::Unsupported { .. })
        ));
    }

    #[test]
    fn mismatch_message_names_both_formats_and_the_archive() {
        let err = CompressionError::Mismatch {
            label: "pve1-backup.tar.xz".to_owned(),
            by_name: Compression::Xz,
            found: Sniffed::Compressed(Compression::Zstd),
        };
        assert_eq!(
            err.to_string(),
            "pve1-backup.tar.xz: the name says .tar.xz but the data is zstd-compressed"
        );
        let err = CompressionError::Mismatch {
            label: "b.tar.gz".to_owned(),
            by_name: Compression::Gzip,
            found: Sniffed::Tar,
        };
        assert_eq!(
            err.to_string(),
            "b.tar.gz: the name says .tar.gz but the data is an uncompressed tar archive"
        );
    }

    #[test]
    fn classify_keeps_input_errors_and_labels_decoder_errors() {
        let original = io::Error::other("disk on fire");
        let addr = original.get_ref().map(|p| p as *const _ as *const u8);
        let back = classify(tag(original), Compression::Gzip);
        let back = back.ok();
        assert_eq!(
            back.as_ref()
                .and_then(|e| e.get_ref())
                .map(|p| p as *const _ as *const u8),
            addr
        );

        let fault = classify(
            io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete frame"),
            Compression::Zstd,
        );
        assert!(matches!(
            fault,
            Err(DecodeFault {
                kind: FaultKind::Truncated,
                ..
            })
        ));
        let fault = classify(
            io::Error::other("Frame requires too much memory for decoding"),
            Compression::Zstd,
        );
        assert!(matches!(
            fault,
            Err(DecodeFault {
                kind: FaultKind::TooMuchMemory,
                ..
            })
        ));
    }
}
