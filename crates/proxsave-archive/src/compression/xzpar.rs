//! Block-parallel xz decoding within the memory budget.
//!
//! liblzma's own threaded decoder keeps every block a worker decodes in memory (24 MiB
//! blocks for upstream's `xz -6 -T0`), so two workers cost about 80 MiB. This decoder
//! gets the same parallelism in about one dictionary per worker (8 MiB for `-6`):
//!
//! ```text
//!  splitter thread                workers (≤ N at once)            caller
//!  input ─► block i bytes ─► mini-stream i ─► decoded i ─► unnamed file i ─► read in order
//! ```
//!
//! - The **splitter** reads the compressed input and cuts it at block boundaries, using the
//!   sizes xz's threaded encoder stores in every block header. Each block is wrapped in a
//!   complete one-block xz stream (the original stream header, the block, a one-record index,
//!   a footer) written to an unnamed file, so liblzma checks everything it checks in a
//!   normal read: block header CRC, the data, the block's integrity check (CRC64/SHA-256),
//!   the sizes. The original index and footer are compared byte for byte with the ones the
//!   blocks imply, so a damaged index is found as well.
//! - A **worker** decodes one mini-stream with a single-threaded liblzma decoder and writes
//!   the output to its own unnamed file; the caller reads the files in block order while
//!   they grow (waiting on a condition variable, no polling).
//! - **Bounds**: at most N workers decode at once, N = the decoder's memory share divided by
//!   the dictionary size of the first block (and no more than the CPUs), and at most N
//!   decoded blocks wait for the caller; memory is N dictionaries and fixed buffers. The
//!   files live in the system's temporary folder, have no name (`O_TMPFILE`, 0600) and
//!   disappear when dropped or when the process dies; they hold at most N + 1 blocks.
//! - **Fallbacks**: a stream whose first block stores no sizes (single-threaded `xz`), or a
//!   budget that holds fewer than two workers, is decoded sequentially from there on by the
//!   ordinary reader, in the splitter thread. A block without sizes *after* blocks with
//!   sizes is not something xz writes; it is reported as corrupt.
//!
//! Errors keep the sequential reader's classification: input errors pass through untouched
//! (in order, after the output of the blocks before them), damaged data is `Corrupt`, a cut
//! input `Truncated`, bytes after the last stream `TrailingData`, a dictionary above the
//! stop limit `TooMuchMemory`.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use liblzma::stream::{Action, Status, Stream};

use super::{
    Compression, DecodeFault, DecodeOptions, FaultKind, LzmaReader, Replay, XZ_MAGIC, replay,
};

/// Size of the buffers moving data between files and decoders.
const CHUNK: usize = 64 << 10;

/// Memory counted per worker on top of its dictionary (liblzma's decoder state, buffers).
const WORKER_OVERHEAD: u64 = 2 << 20;

fn fault(kind: FaultKind, detail: impl Into<String>) -> io::Error {
    DecodeFault::new(Compression::Xz, kind, detail).into_io()
}

fn liblzma_fault(e: liblzma::stream::Error, memlimit: u64) -> io::Error {
    use liblzma::stream::Error as E;
    match e {
        E::Format => fault(FaultKind::Corrupt, "not xz data"),
        E::Data => fault(
            FaultKind::Corrupt,
            "compressed data or integrity check is wrong",
        ),
        E::Options => fault(
            FaultKind::Corrupt,
            "unsupported or damaged stream/block header",
        ),
        E::MemLimit => fault(
            FaultKind::TooMuchMemory,
            format!(
                "decoding needs more than the limit of {} MiB",
                memlimit >> 20
            ),
        ),
        E::Mem => fault(FaultKind::TooMuchMemory, "out of memory"),
        other => fault(FaultKind::Corrupt, format!("liblzma: {other}")),
    }
}

/// The decoded bytes of one block (or of the sequential rest), appended by one writer and
/// read in order by the caller.
struct Out {
    file: File,
    state: Mutex<OutState>,
    cond: Condvar,
}

#[derive(Default)]
struct OutState {
    written: u64,
    done: bool,
    error: Option<io::Error>,
}

impl Out {
    fn new() -> io::Result<Arc<Out>> {
        Ok(Arc::new(Out {
            file: tempfile::tempfile()?,
            state: Mutex::default(),
            cond: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `data` (only the one writer calls this).
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let at = self.lock().written;
        self.file.write_all_at(data, at)?;
        self.lock().written += data.len() as u64;
        self.cond.notify_all();
        Ok(())
    }

    fn finish(&self, result: io::Result<()>) {
        let mut st = self.lock();
        if st.done || st.error.is_some() {
            return;
        }
        match result {
            Ok(()) => st.done = true,
            Err(e) => st.error = Some(e),
        }
        drop(st);
        self.cond.notify_all();
    }
}

/// What the splitter hands the caller, in order.
enum Item {
    Out(Arc<Out>),
    Error(io::Error),
    End,
}

/// Limits how many workers decode at once.
struct Permits {
    free: Mutex<usize>,
    cond: Condvar,
}

impl Permits {
    fn acquire(&self, stop: &AtomicBool) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            free = self.cond.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        true
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cond.notify_all();
    }
}

/// The caller's side; see the module docs.
pub(super) struct ParallelXz {
    rx: Receiver<Item>,
    cur: Option<(Arc<Out>, u64)>,
    ended: bool,
    stop: Arc<AtomicBool>,
    permits: Arc<Permits>,
}

/// Starts the splitter on `input` (the whole xz input, sniffed bytes replayed).
pub(super) fn spawn<R: BufRead + Send + 'static>(
    input: Replay<R>,
    options: DecodeOptions,
    memory: u64,
) -> io::Result<ParallelXz> {
    let threads = options.threads() as usize;
    let (tx, rx) = sync_channel(threads.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let permits = Arc::new(Permits {
        free: Mutex::new(0),
        cond: Condvar::new(),
    });
    let splitter = Splitter {
        input: Some(input),
        options,
        memory,
        threads,
        tx: tx.clone(),
        permits: permits.clone(),
        stop: stop.clone(),
        workers: 0,
        permits_set: false,
        streams: 0,
    };
    std::thread::Builder::new()
        .name("proxsave-xz-split".into())
        .spawn(move || splitter.run())?;
    Ok(ParallelXz {
        rx,
        cur: None,
        ended: false,
        stop,
        permits,
    })
}

impl Read for ParallelXz {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.ended {
                return Ok(0);
            }
            let Some((out, pos)) = self.cur.as_mut() else {
                match self.rx.recv() {
                    Ok(Item::Out(o)) => self.cur = Some((o, 0)),
                    Ok(Item::Error(e)) => return Err(e),
                    Ok(Item::End) => self.ended = true,
                    Err(_) => {
                        return Err(fault(
                            FaultKind::Corrupt,
                            "the xz splitter thread stopped unexpectedly",
                        ));
                    }
                }
                continue;
            };
            let mut st = out.lock();
            while st.written == *pos && !st.done && st.error.is_none() {
                st = out.cond.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.written > *pos {
                let avail = st.written - *pos;
                drop(st);
                let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
                out.file.read_exact_at(&mut buf[..n], *pos)?;
                *pos += n as u64;
                return Ok(n);
            }
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            drop(st);
            self.cur = None;
        }
    }
}

impl Drop for ParallelXz {
    fn drop(&mut self) {
        // Workers stop at their next chunk; the splitter at its next send or permit.
        self.stop.store(true, Ordering::Relaxed);
        // Under the lock, so a splitter between its check and its wait cannot miss it.
        let _free = self.permits.free.lock().unwrap_or_else(|p| p.into_inner());
        self.permits.cond.notify_all();
    }
}

struct Splitter<R: BufRead> {
    input: Option<Replay<R>>,
    options: DecodeOptions,
    memory: u64,
    threads: usize,
    tx: SyncSender<Item>,
    permits: Arc<Permits>,
    stop: Arc<AtomicBool>,
    /// Decided at the first block (0 until then).
    workers: usize,
    /// The permits were handed out.
    permits_set: bool,
    /// Completed streams.
    streams: u64,
}

/// Reads until `buf` is full or the input ends; returns the bytes read. Input errors are
/// returned as they are (tagged by [`Replay`]).
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a multibyte integer of the xz format from `b` at `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (i == 0 || byte != 0).then_some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Size of the integrity check of check type `id`.
fn check_size(id: u8) -> u64 {
    match id {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        10..=12 => 32,
        _ => 64,
    }
}

/// The index xz writes for `records` (unpadded size, uncompressed size), indicator included.
fn index_bytes(records: &[(u64, u64)]) -> Vec<u8> {
    let mut idx = vec![0u8];
    put_varint(&mut idx, records.len() as u64);
    for &(unpadded, uncompressed) in records {
        put_varint(&mut idx, unpadded);
        put_varint(&mut idx, uncompressed);
    }
    while idx.len() % 4 != 0 {
        idx.push(0);
    }
    let crc = crc32fast::hash(&idx);
    idx.extend_from_slice(&crc.to_le_bytes());
    idx
}

/// The stream footer for an index of `index_len` bytes and the stream `flags`.
fn footer_bytes(index_len: usize, flags: [u8; 2]) -> Vec<u8> {
    let backward = u32::try_from(index_len / 4 - 1).unwrap_or(u32::MAX);
    let mut body = backward.to_le_bytes().to_vec();
    body.extend_from_slice(&flags);
    let mut f = crc32fast::hash(&body).to_le_bytes().to_vec();
    f.extend_from_slice(&body);
    f.extend_from_slice(b"YZ");
    f
}

/// What a block header says.
struct BlockHeader {
    compressed: Option<u64>,
    uncompressed: Option<u64>,
    /// LZMA2 dictionary size, when an LZMA2 filter is in the chain.
    dict: Option<u64>,
}

fn parse_block_header(h: &[u8]) -> Option<BlockHeader> {
    let flags = *h.get(1)?;
    if flags & 0x3c != 0 {
        return None;
    }
    let mut at = 2;
    let compressed = if flags & 0x40 != 0 {
        Some(varint(h, &mut at)?)
    } else {
        None
    };
    let uncompressed = if flags & 0x80 != 0 {
        Some(varint(h, &mut at)?)
    } else {
        None
    };
    let mut dict = None;
    for _ in 0..=(flags & 3) {
        let id = varint(h, &mut at)?;
        let size = usize::try_from(varint(h, &mut at)?).ok()?;
        let props = h.get(at..at.checked_add(size)?)?;
        at += size;
        if id == 0x21 && size == 1 {
            let p = props[0];
            dict = match p {
                0..=39 => Some((2 | u64::from(p & 1)) << (p / 2 + 11)),
                40 => Some(u64::from(u32::MAX)),
                _ => None,
            };
        }
    }
    Some(BlockHeader {
        compressed,
        uncompressed,
        dict,
    })
}

impl<R: BufRead + Send + 'static> Splitter<R> {
    fn run(mut self) {
        let item = match self.streams_loop() {
            Ok(()) => Item::End,
            Err(e) => Item::Error(e),
        };
        let _ = self.tx.send(item);
    }

    fn input(&mut self) -> io::Result<&mut Replay<R>> {
        self.input
            .as_mut()
            .ok_or_else(|| fault(FaultKind::Corrupt, "xz input lost"))
    }

    fn read_exact_or_truncated(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let stream = self.streams + 1;
        let input = self.input()?;
        if read_full(input, buf)? < buf.len() {
            return Err(fault(
                FaultKind::Truncated,
                format!("the input ends inside xz stream {stream}"),
            ));
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn streams_loop(&mut self) -> io::Result<()> {
        loop {
            let mut header = [0u8; 12];
            self.read_exact_or_truncated(&mut header)?;
            if header[..6] != *XZ_MAGIC {
                return Err(fault(FaultKind::Corrupt, "not xz data"));
            }
            let flags = [header[6], header[7]];
            let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
            if crc32fast::hash(&flags) != crc {
                return Err(fault(
                    FaultKind::Corrupt,
                    "compressed data or integrity check is wrong",
                ));
            }
            if flags[0] != 0 || flags[1] & 0xf0 != 0 {
                return Err(fault(
                    FaultKind::Corrupt,
                    "unsupported or damaged stream/block header",
                ));
            }
            let check = check_size(flags[1]);
            let mut records: Vec<(u64, u64)> = Vec::new();
            loop {
                let mut size = [0u8; 1];
                self.read_exact_or_truncated(&mut size)?;
                if size[0] == 0 {
                    break;
                }
                let mut block = vec![0u8; (usize::from(size[0]) + 1) * 4];
                block[0] = size[0];
                self.read_exact_or_truncated(&mut block[1..])?;
                let n = block.len();
                let crc =
                    u32::from_le_bytes([block[n - 4], block[n - 3], block[n - 2], block[n - 1]]);
                if crc32fast::hash(&block[..n - 4]) != crc {
                    return Err(fault(
                        FaultKind::Corrupt,
                        "compressed data or integrity check is wrong",
                    ));
                }
                let Some(parsed) = parse_block_header(&block) else {
                    return Err(fault(
                        FaultKind::Corrupt,
                        "unsupported or damaged stream/block header",
                    ));
                };
                let sizes = parsed.compressed.zip(parsed.uncompressed);
                if self.workers == 0 {
                    let per = parsed
                        .dict
                        .unwrap_or(u64::MAX)
                        .saturating_add(WORKER_OVERHEAD);
                    let fit = usize::try_from(self.memory / per).unwrap_or(usize::MAX);
                    self.workers = fit.min(self.threads);
                }
                let Some((compressed, uncompressed)) = sizes.filter(|_| self.workers >= 2) else {
                    if records.is_empty() {
                        let mut consumed = header.to_vec();
                        consumed.extend_from_slice(&block);
                        return self.sequential_rest(consumed);
                    }
                    return Err(fault(
                        FaultKind::Corrupt,
                        format!(
                            "block {} of xz stream {} stores no sizes while the blocks before \
                             it do (xz never writes that)",
                            records.len() + 1,
                            self.streams + 1
                        ),
                    ));
                };
                if !self.permits_ready() {
                    return Ok(());
                }
                let padded = compressed.div_ceil(4) * 4;
                let unpadded = n as u64 + compressed + check;
                let mini =
                    self.mini_stream(&header, &block, padded + check, unpadded, uncompressed)?;
                records.push((unpadded, uncompressed));
                let out = Out::new()?;
                if !self.permits.acquire(&self.stop) {
                    return Ok(());
                }
                let worker = Worker {
                    input: mini,
                    out: out.clone(),
                    memlimit: self.options.memlimit_stop,
                    permits: self.permits.clone(),
                    stop: self.stop.clone(),
                    finished: false,
                };
                let spawned = std::thread::Builder::new()
                    .name("proxsave-xz-block".into())
                    .spawn(move || worker.run());
                if let Err(e) = spawned {
                    // The worker (and its permit) came back with the error.
                    out.finish(Err(e));
                }
                if self.tx.send(Item::Out(out)).is_err() {
                    return Ok(());
                }
            }
            // The index: compared with the one the blocks imply.
            let want = index_bytes(&records);
            let mut got = vec![0u8; want.len() - 1];
            self.read_exact_or_truncated(&mut got)?;
            if got != want[1..] {
                return Err(fault(
                    FaultKind::Corrupt,
                    "compressed data or integrity check is wrong (the index does not match \
                     the blocks)",
                ));
            }
            let want = footer_bytes(want.len(), flags);
            let mut got = [0u8; 12];
            self.read_exact_or_truncated(&mut got)?;
            if got[..] != want[..] {
                return Err(fault(
                    FaultKind::Corrupt,
                    "compressed data or integrity check is wrong (damaged stream footer)",
                ));
            }
            self.streams += 1;
            if !self.between()? {
                return Ok(());
            }
        }
    }

    /// Hands out the worker permits once the worker count is known; false once the caller
    /// is gone.
    fn permits_ready(&mut self) -> bool {
        if self.stopped() {
            return false;
        }
        if !self.permits_set {
            *self.permits.free.lock().unwrap_or_else(|p| p.into_inner()) = self.workers;
            self.permits_set = true;
        }
        true
    }

    /// Writes the one-block stream of the block whose header is `block` to an unnamed
    /// file, copying `rest` bytes (data, padding, check) from the input.
    fn mini_stream(
        &mut self,
        header: &[u8; 12],
        block: &[u8],
        rest: u64,
        unpadded: u64,
        uncompressed: u64,
    ) -> io::Result<File> {
        use std::io::Write;
        let file = tempfile::tempfile()?;
        let mut w = io::BufWriter::with_capacity(CHUNK, &file);
        w.write_all(header)?;
        w.write_all(block)?;
        let stream = self.streams + 1;
        let input = self.input()?;
        let copied = io::copy(&mut input.take(rest), &mut w)?;
        if copied < rest {
            return Err(fault(
                FaultKind::Truncated,
                format!("the input ends inside xz stream {stream}"),
            ));
        }
        let index = index_bytes(&[(unpadded, uncompressed)]);
        w.write_all(&index)?;
        w.write_all(&footer_bytes(index.len(), [header[6], header[7]]))?;
        w.flush()?;
        drop(w);
        Ok(file)
    }

    /// After a stream: stream padding, then the end (`false`) or another stream (`true`).
    fn between(&mut self) -> io::Result<bool> {
        let streams = self.streams;
        let mut padding = 0u64;
        loop {
            let input = self.input()?;
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                if padding % 4 != 0 {
                    return Err(fault(
                        FaultKind::TrailingData,
                        format!(
                            "{padding} NUL bytes after the last stream (padding must come in fours)"
                        ),
                    ));
                }
                return Ok(false);
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            if zeros > 0 {
                input.consume(zeros);
                padding += zeros as u64;
                continue;
            }
            if padding % 4 != 0 {
                return Err(fault(
                    FaultKind::TrailingData,
                    format!(
                        "{padding} NUL bytes after xz stream {streams} (padding must come in fours)"
                    ),
                ));
            }
            let n = buf.len().min(XZ_MAGIC.len());
            if buf[..n] != XZ_MAGIC[..n] {
                return Err(fault(
                    FaultKind::TrailingData,
                    format!("bytes after xz stream {streams} are not another xz stream"),
                ));
            }
            return Ok(true);
        }
    }

    /// Decodes everything from the stream that starts with `consumed` (its header and first
    /// block header, already read) to the end, sequentially, in this thread.
    fn sequential_rest(&mut self, consumed: Vec<u8>) -> io::Result<()> {
        let Some(input) = self.input.take() else {
            return Err(fault(FaultKind::Corrupt, "xz input lost"));
        };
        let (cursor, tagged) = input.into_inner();
        let mut head = consumed;
        let at = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        head.extend_from_slice(cursor.get_ref().get(at..).unwrap_or_default());
        let mut reader = LzmaReader::xz(replay(head, tagged.0), self.options)
            .map_err(|e| liblzma_fault(e, self.options.memlimit_stop))?;
        reader.streams = self.streams;
        let out = Out::new()?;
        if self.tx.send(Item::Out(out.clone())).is_err() {
            return Ok(());
        }
        let mut buf = vec![0u8; CHUNK * 4];
        let result = loop {
            if self.stopped() {
                break Ok(());
            }
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = out.append(&buf[..n]) {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        out.finish(result);
        Ok(())
    }
}

/// Blocks decoded by workers in this process (tests check that the parallel path ran).
#[cfg(test)]
static BLOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Decodes one mini-stream into its [`Out`].
struct Worker {
    input: File,
    out: Arc<Out>,
    memlimit: u64,
    permits: Arc<Permits>,
    stop: Arc<AtomicBool>,
    finished: bool,
}

impl Worker {
    fn run(mut self) {
        #[cfg(test)]
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        let result = self.decode();
        self.out.finish(result);
        self.finished = true;
    }

    fn decode(&mut self) -> io::Result<()> {
        let mut stream = Stream::new_stream_decoder(self.memlimit, 0)
            .map_err(|e| liblzma_fault(e, self.memlimit))?;
        let mut input = vec![0u8; CHUNK];
        let mut output = vec![0u8; CHUNK * 4];
        let (mut file_pos, mut len, mut off) = (0u64, 0usize, 0usize);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if off == len {
                len = self.input.read_at(&mut input, file_pos)?;
                file_pos += len as u64;
                off = 0;
            }
            let action = if len == 0 {
                Action::Finish
            } else {
                Action::Run
            };
            let (in_before, out_before) = (stream.total_in(), stream.total_out());
            let status = stream.process(&input[off..len], &mut output, action);
            off += usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
            let produced = usize::try_from(stream.total_out() - out_before).unwrap_or(0);
            if produced > 0 {
                self.out.append(&output[..produced])?;
            }
            match status {
                Err(e) => return Err(liblzma_fault(e, self.memlimit)),
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(Status::MemNeeded) if len == 0 && produced == 0 => {
                    return Err(fault(
                        FaultKind::Truncated,
                        "the input ends inside an xz block",
                    ));
                }
                Ok(_) => {}
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.finished {
            // A panic in the decoder: the caller gets an error instead of waiting forever.
            self.out.finish(Err(fault(
                FaultKind::Corrupt,
                "an xz decoder thread failed",
            )));
        }
        self.permits.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(args: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args(["-c", &format!("xz {args} -c")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("xz");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().expect("xz output");
        feeder.join().expect("feeder").expect("write to xz");
        assert!(out.status.success());
        out.stdout
    }

    fn text(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x = 7u64;
        while v.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.extend_from_slice(format!("vm{}: memory {}\n", x % 977, x >> 50).as_bytes());
        }
        v.truncate(len);
        v
    }

    fn decode_all(bytes: Vec<u8>, threads: u32) -> io::Result<Vec<u8>> {
        let options = DecodeOptions {
            xz_threads: threads,
            ..DecodeOptions::default()
        };
        let mut r = spawn(
            replay(Vec::new(), io::Cursor::new(bytes)),
            options,
            40 << 20,
        )?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Blocks of `xz -T2` are decoded by workers (the counter moves by at least their
    /// number), in order, byte-exactly; concatenated streams with padding too; and plain
    /// `xz -T1` output (no sizes in its block header) falls back to sequential decoding.
    #[test]
    fn xz_t2_blocks_are_decoded_by_workers_in_order() {
        if std::process::Command::new("xz")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(std::env::var_os("CI").is_none(), "xz is required in CI");
            eprintln!("skipped: xz missing");
            return;
        }
        let data = text(3 << 20);
        let bytes = xz("-6 -T2 --block-size=256KiB", &data);
        let before = BLOCKS.load(Ordering::Relaxed);
        assert_eq!(decode_all(bytes.clone(), 2).expect("decode"), data);
        assert!(
            BLOCKS.load(Ordering::Relaxed) - before >= 12,
            "blocks went to workers"
        );

        let mut two = bytes.clone();
        two.extend_from_slice(&[0; 8]);
        two.extend_from_slice(&xz("-T2 --block-size=100KiB", &data[..500_000]));
        let mut want = data.clone();
        want.extend_from_slice(&data[..500_000]);
        assert_eq!(decode_all(two, 2).expect("two streams"), want);

        let plain = xz("-6 -T1", &data);
        assert_eq!(decode_all(plain, 2).expect("sequential"), data);

        // A cut inside the third block: the blocks before it come out, then "truncated".
        let cut = bytes[..bytes.len() / 4].to_vec();
        let err = decode_all(cut, 2).expect_err("truncated");
        let f = DecodeFault::from_io(&err).expect("fault");
        assert_eq!(f.kind, FaultKind::Truncated, "{f}");
    }

    #[test]
    fn varints_round_trip_and_reject_overlong_forms() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX >> 1] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        // 0x80 0x00 encodes 0 in two bytes: not allowed by the format.
        assert_eq!(varint(&[0x80, 0x00], &mut 0), None);
    }

    #[test]
    fn dictionary_sizes_from_lzma2_properties() {
        // Block header: size byte, flags (1 filter, both sizes), sizes, LZMA2 id, 1, props.
        for (p, dict) in [
            (0u8, 4u64 << 10),
            (1, 6 << 10),
            (16, 1 << 20),
            (22, 8 << 20),
            (24, 16 << 20),
        ] {
            let h = [2, 0xc0, 0x10, 0x20, 0x21, 0x01, p, 0, 0, 0, 0, 0];
            let parsed = parse_block_header(&h).expect("header");
            assert_eq!(parsed.dict, Some(dict), "props {p}");
            assert_eq!(parsed.compressed, Some(0x10));
            assert_eq!(parsed.uncompressed, Some(0x20));
        }
    }
}
