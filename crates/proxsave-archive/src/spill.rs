//! Bounded per-entry lists: records kept in memory up to a fixed byte budget, then
//! appended to an unnamed file in a private work directory.
//!
//! A [`SpillVec`] is an append-only list of records. Each record is encoded compactly
//! ([`Record`]); encoded records stay in memory until they pass the list's budget, then the
//! whole in-memory part is appended to the spill file and memory starts again from empty.
//! The spill file is created with `O_TMPFILE` semantics (through [`tempfile::tempfile_in`]):
//! it has no name, is readable only by its owner (mode 0600), and disappears when the list is
//! dropped, also when the process dies.
//!
//! Reading ([`SpillVec::iter`]) takes `&self`: the file part is read with positioned reads
//! through a private buffer, then the in-memory part, so several readers can walk the list
//! at once and the list can still be appended to afterwards. Memory used by a list is at most
//! its budget plus one record plus the reader buffers ([`READ_BUFFER`] per open iterator),
//! whatever the number of records.
//!
//! The whole-process budget is [`MEMORY_BUDGET`]; [`xz_memlimit_for_budget`] derives the xz
//! decoder's share from it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Peak resident memory a `verify`, `extract` or `restore` run aims to stay under (64 MiB).
pub const MEMORY_BUDGET: u64 = 64 << 20;

/// Default in-memory part of one per-entry list before it spills (1 MiB).
pub const LIST_BUDGET: usize = 1 << 20;

/// Read buffer of one open [`SpillIter`] (256 KiB).
pub const READ_BUFFER: usize = 256 << 10;

/// Memory left for everything that is not the xz decoder (program, allocator, read
/// buffers, age, tar parser, per-entry list budgets): 24 MiB.
const NON_DECODER_SHARE: u64 = 24 << 20;

/// Threading memory two xz worker threads need for upstream's `xz -6 -T0` archives
/// (24 MiB blocks): 80 MiB, measured (`xz_mt_memory_and_time_100mib`).
const XZ_TWO_WORKERS: u64 = 80 << 20;

/// The xz decoder's `memlimit_threading` for a process budget of `budget` bytes.
///
/// liblzma buffers one whole block per worker thread, so the thread count follows from
/// this limit and the archive's block size. Measured on 100 MiB of `xz -6 -T0` data (24
/// MiB blocks, 2 CPUs, `xz_mt_memory_and_time_100mib`, 2026-12-05, loaded machine):
/// single-threaded 11.6 MiB / 1.31 s, **one** worker thread (40 MiB limit) 41 MiB / 1.55 s,
/// two workers (80 MiB) 79 MiB / 0.93 s. One worker costs 30 MiB more than single-threaded
/// decoding and is not faster, so when what is left of the budget after
/// [`NON_DECODER_SHARE`] cannot hold two workers, this returns 0: single-threaded decoding
/// (about 11 MiB). Otherwise it returns what is left.
pub const fn xz_memlimit_for_budget(budget: u64) -> u64 {
    let left = budget.saturating_sub(NON_DECODER_SHARE);
    if left < XZ_TWO_WORKERS { 0 } else { left }
}

/// What a process budget of `budget` bytes leaves for xz decoding (everything but
/// the non-decoder share): 40 MiB of the 64 MiB budget.
pub const fn decoder_share(budget: u64) -> u64 {
    budget.saturating_sub(NON_DECODER_SHARE)
}

/// A record that can be kept in a [`SpillVec`].
pub trait Record: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one record written by [`Record::encode`].
    ///
    /// # Errors
    /// Read errors, and [`io::ErrorKind::InvalidData`] for bytes that are no record.
    fn decode(input: &mut dyn Read) -> io::Result<Self>;
}

/// Appends a length-prefixed byte string (a helper for [`Record::encode`]).
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads a byte string written by [`put_bytes`].
///
/// # Errors
/// Read errors; [`io::ErrorKind::InvalidData`] for a length above 1 GiB.
pub fn get_bytes(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let n = get_u64(input)?;
    if n > 1 << 30 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "spill record too long",
        ));
    }
    let mut v = vec![0u8; n as usize];
    input.read_exact(&mut v)?;
    Ok(v)
}

/// Appends a little-endian `u64`.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads a `u64` written by [`put_u64`].
///
/// # Errors
/// Read errors.
pub fn get_u64(input: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

impl Record for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self);
    }
    fn decode(input: &mut dyn Read) -> io::Result<Self> {
        get_bytes(input)
    }
}

impl Record for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, *self);
    }
    fn decode(input: &mut dyn Read) -> io::Result<Self> {
        get_u64(input)
    }
}

/// An append-only list of records bounded in memory; see the module docs.
pub struct SpillVec<T: Record> {
    dir: PathBuf,
    budget: usize,
    mem: Vec<u8>,
    mem_records: u64,
    file: Option<File>,
    file_bytes: u64,
    file_records: u64,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> SpillVec<T> {
    /// An empty list that spills into `dir` (a private directory; the file is created only
    /// when the in-memory part first passes `budget` bytes).
    pub fn new(dir: &Path, budget: usize) -> Self {
        SpillVec {
            dir: dir.to_path_buf(),
            budget: budget.max(1),
            mem: Vec::new(),
            mem_records: 0,
            file: None,
            file_bytes: 0,
            file_records: 0,
            _record: PhantomData,
        }
    }

    /// Appends one record.
    ///
    /// # Errors
    /// Creating or writing the spill file.
    pub fn push(&mut self, record: &T) -> io::Result<()> {
        record.encode(&mut self.mem);
        self.mem_records += 1;
        if self.mem.len() >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile_in(&self.dir)?);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.mem)?;
        }
        self.file_bytes += self.mem.len() as u64;
        self.file_records += self.mem_records;
        self.mem.clear();
        if self.mem.capacity() > self.budget.saturating_mul(2) {
            self.mem.shrink_to(self.budget);
        }
        self.mem_records = 0;
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.file_records + self.mem_records
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once part of the list lives in the spill file.
    pub fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Bytes of encoded records held in memory now.
    pub fn memory_bytes(&self) -> usize {
        self.mem.len()
    }

    /// Bytes of encoded records in the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// All records in the order they were pushed.
    pub fn iter(&self) -> SpillIter<'_, T> {
        let file = self.file.as_ref().map(|f| {
            BufReader::with_capacity(
                READ_BUFFER,
                ReadAt {
                    file: f,
                    pos: 0,
                    end: self.file_bytes,
                },
            )
        });
        SpillIter {
            file,
            file_left: self.file_records,
            mem: io::Cursor::new(&self.mem[..]),
            mem_left: self.mem_records,
            _record: PhantomData,
        }
    }
}

struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Iterator over a [`SpillVec`]'s records; see [`SpillVec::iter`].
pub struct SpillIter<'a, T> {
    file: Option<BufReader<ReadAt<'a>>>,
    file_left: u64,
    mem: io::Cursor<&'a [u8]>,
    mem_left: u64,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> Iterator for SpillIter<'_, T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        if self.file_left > 0 {
            self.file_left -= 1;
            let r = self.file.as_mut()?;
            return Some(T::decode(r));
        }
        if self
            .file
            .take()
            .is_some_and(|mut r| r.fill_buf().is_ok_and(|b| !b.is_empty()))
        {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spill file longer than its records",
            )));
        }
        if self.mem_left > 0 {
            self.mem_left -= 1;
            return Some(T::decode(&mut self.mem));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Entry {
        path: Vec<u8>,
        size: u64,
    }

    impl Record for Entry {
        fn encode(&self, out: &mut Vec<u8>) {
            put_bytes(out, &self.path);
            put_u64(out, self.size);
        }
        fn decode(input: &mut dyn Read) -> io::Result<Self> {
            Ok(Entry {
                path: get_bytes(input)?,
                size: get_u64(input)?,
            })
        }
    }

    fn entry(i: u64) -> Entry {
        Entry {
            path: format!("home/user{}/file{:04}.txt", i / 1000, i % 1000).into_bytes(),
            size: i * 7,
        }
    }

    #[test]
    fn tiny_budget_spills_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut list = SpillVec::<Entry>::new(dir.path(), 256);
        for i in 0..10_000 {
            list.push(&entry(i)).expect("push");
            assert!(list.memory_bytes() < 256, "memory stays under the budget");
        }
        assert!(
            list.is_spilled(),
            "10 000 records spill past a 256-byte budget"
        );
        assert!(list.spilled_bytes() > 300_000);
        assert_eq!(list.len(), 10_000);
        // The spill file has no name in the work dir.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
        // Two readers at once, then more records, then a full read.
        let mut a = list.iter();
        let mut b = list.iter();
        for i in 0..100 {
            assert_eq!(a.next().expect("a").expect("decode"), entry(i));
            assert_eq!(b.next().expect("b").expect("decode"), entry(i));
        }
        drop((a, b));
        list.push(&entry(10_000)).expect("push");
        let all: Vec<Entry> = list.iter().collect::<io::Result<_>>().expect("read back");
        assert_eq!(all.len(), 10_001);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e, &entry(i as u64));
        }
    }

    #[test]
    fn large_budget_stays_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut list = SpillVec::<u64>::new(dir.path(), 1 << 20);
        for i in 0..1000u64 {
            list.push(&i).expect("push");
        }
        assert!(!list.is_spilled());
        let all: Vec<u64> = list.iter().collect::<io::Result<_>>().expect("read back");
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn empty_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = SpillVec::<Vec<u8>>::new(dir.path(), 16);
        assert!(list.is_empty());
        assert_eq!(list.iter().count(), 0);
    }

    #[test]
    fn xz_share_of_the_budget() {
        // 64 MiB cannot hold two xz workers: single-threaded decoding.
        assert_eq!(xz_memlimit_for_budget(MEMORY_BUDGET), 0);
        assert_eq!(xz_memlimit_for_budget(1 << 20), 0);
        assert_eq!(xz_memlimit_for_budget(128 << 20), 104 << 20);
    }
}
