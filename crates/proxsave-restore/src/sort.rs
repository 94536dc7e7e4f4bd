//! An external merge sort with bounded memory, for per-entry lists that must come out in
//! an order the archive does not have (the report's files by path, the log's files by status
//! then path).
//!
//! Records are kept in memory up to a byte budget; then the in-memory part is sorted
//! (stably) and appended as one *run* to an unnamed file (`O_TMPFILE`, mode 0600) in a
//! private directory. [`Sorter::finish`] merges the runs, at most [`FAN_IN`] at a time (more
//! runs are first merged into longer ones), each run read through a [`RUN_BUFFER`]-byte
//! buffer. Memory is the budget plus `FAN_IN` read buffers and one record per run, whatever
//! the number of records. Ties keep the order records were pushed in.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proxsave_archive::spill::Record;

/// Default in-memory budget of one sort (4 MiB of records).
pub(crate) const SORT_BUDGET: usize = 4 << 20;

/// Runs merged at once.
pub(crate) const FAN_IN: usize = 32;

/// Read buffer of one run while merging (64 KiB).
pub(crate) const RUN_BUFFER: usize = 64 << 10;

/// Bytes counted per record besides its encoding (the in-memory value and its allocations).
const RECORD_OVERHEAD: usize = 96;

/// One run in the run file: byte range and record count.
#[derive(Clone, Copy)]
struct Run {
    start: u64,
    end: u64,
    records: u64,
}

/// Sorts records of `T` by a comparison (stable) within a memory budget; see the module docs.
pub(crate) struct Sorter<T: Record> {
    dir: PathBuf,
    budget: usize,
    cmp: fn(&T, &T) -> Ordering,
    mem: Vec<T>,
    mem_bytes: usize,
    scratch: Vec<u8>,
    file: Option<Arc<File>>,
    file_len: u64,
    runs: Vec<Run>,
}

impl<T: Record> Sorter<T> {
    /// An empty sorter (order `cmp`) spilling runs into `dir` once `budget` bytes of records
    /// are held.
    pub(crate) fn new(dir: &Path, budget: usize, cmp: fn(&T, &T) -> Ordering) -> Self {
        Sorter {
            dir: dir.to_path_buf(),
            budget: budget.max(1),
            cmp,
            mem: Vec::new(),
            mem_bytes: 0,
            scratch: Vec::new(),
            file: None,
            file_len: 0,
            runs: Vec::new(),
        }
    }

    /// Adds one record.
    ///
    /// # Errors
    /// Creating or writing the run file.
    pub(crate) fn push(&mut self, record: T) -> io::Result<()> {
        self.scratch.clear();
        record.encode(&mut self.scratch);
        self.mem_bytes += self.scratch.len() + RECORD_OVERHEAD;
        self.mem.push(record);
        if self.mem_bytes >= self.budget {
            self.flush_run()?;
        }
        Ok(())
    }

    /// Number of runs written to the file so far.
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// True once runs went to the file.
    #[cfg(test)]
    pub(crate) fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    fn run_file(&mut self) -> io::Result<Arc<File>> {
        if let Some(f) = &self.file {
            return Ok(f.clone());
        }
        let f = Arc::new(tempfile::tempfile_in(&self.dir)?);
        self.file = Some(f.clone());
        Ok(f)
    }

    fn flush_run(&mut self) -> io::Result<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        self.mem.sort_by(self.cmp);
        let file = self.run_file()?;
        let start = self.file_len;
        let mut w = BufWriter::with_capacity(RUN_BUFFER, AppendAt::new(&file, start));
        let records = self.mem.len() as u64;
        for r in self.mem.drain(..) {
            self.scratch.clear();
            r.encode(&mut self.scratch);
            w.write_all(&self.scratch)?;
        }
        w.flush()?;
        let end = w.get_ref().pos;
        drop(w);
        self.file_len = end;
        self.runs.push(Run {
            start,
            end,
            records,
        });
        self.mem_bytes = 0;
        self.mem.shrink_to(1024);
        Ok(())
    }

    /// Every record, in key order (ties in push order).
    ///
    /// # Errors
    /// Writing or reading the run file.
    pub(crate) fn finish(mut self) -> io::Result<Sorted<T>> {
        if self.runs.is_empty() {
            self.mem.sort_by(self.cmp);
            return Ok(Sorted::Memory(std::mem::take(&mut self.mem).into_iter()));
        }
        self.flush_run()?;
        let file = self.run_file()?;
        let mut runs = std::mem::take(&mut self.runs);
        // Merge FAN_IN runs at a time into longer runs until one merge is enough.
        while runs.len() > FAN_IN {
            let mut next = Vec::with_capacity(runs.len().div_ceil(FAN_IN));
            for group in runs.chunks(FAN_IN) {
                let start = self.file_len;
                let mut merge = Merge::new(&file, group, self.cmp)?;
                let mut w = BufWriter::with_capacity(RUN_BUFFER, AppendAt::new(&file, start));
                let mut records = 0u64;
                for r in merge.by_ref() {
                    self.scratch.clear();
                    r?.encode(&mut self.scratch);
                    w.write_all(&self.scratch)?;
                    records += 1;
                }
                w.flush()?;
                let end = w.get_ref().pos;
                self.file_len = end;
                next.push(Run {
                    start,
                    end,
                    records,
                });
            }
            runs = next;
        }
        Ok(Sorted::Merge(Merge::new(&file, &runs, self.cmp)?))
    }
}

/// Writes at a position of a shared file (runs are appended one after the other).
struct AppendAt {
    file: Arc<File>,
    pos: u64,
}

impl AppendAt {
    fn new(file: &Arc<File>, pos: u64) -> AppendAt {
        AppendAt {
            file: file.clone(),
            pos,
        }
    }
}

impl Write for AppendAt {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a byte range of a shared file with positioned reads.
struct ReadRange {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for ReadRange {
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

struct RunReader {
    input: BufReader<ReadRange>,
    left: u64,
}

impl RunReader {
    fn next<T: Record>(&mut self) -> Option<io::Result<T>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(T::decode(&mut self.input))
    }
}

/// A k-way merge of sorted runs (at most [`FAN_IN`]: the smallest head is found by a
/// scan; ties go to the earlier run, so earlier records come first).
pub(crate) struct Merge<T> {
    readers: Vec<RunReader>,
    current: Vec<Option<T>>,
    cmp: fn(&T, &T) -> Ordering,
    failed: bool,
}

impl<T: Record> Merge<T> {
    fn new(file: &Arc<File>, runs: &[Run], cmp: fn(&T, &T) -> Ordering) -> io::Result<Self> {
        let mut m = Merge {
            readers: Vec::with_capacity(runs.len()),
            current: Vec::with_capacity(runs.len()),
            cmp,
            failed: false,
        };
        for run in runs {
            let mut reader = RunReader {
                input: BufReader::with_capacity(
                    RUN_BUFFER,
                    ReadRange {
                        file: file.clone(),
                        pos: run.start,
                        end: run.end,
                    },
                ),
                left: run.records,
            };
            let first = reader.next::<T>().transpose()?;
            m.readers.push(reader);
            m.current.push(first);
        }
        Ok(m)
    }
}

impl<T: Record> Iterator for Merge<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        if self.failed {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, c) in self.current.iter().enumerate() {
            let Some(c) = c else { continue };
            match best.and_then(|b| self.current[b].as_ref()) {
                Some(b) if (self.cmp)(c, b) != Ordering::Less => {}
                _ => best = Some(i),
            }
        }
        let i = best?;
        let out = self.current[i].take()?;
        match self.readers[i].next::<T>() {
            Some(Ok(r)) => self.current[i] = Some(r),
            Some(Err(e)) => {
                self.failed = true;
                return Some(Err(e));
            }
            None => {}
        }
        Some(Ok(out))
    }
}

/// The sorted records: from memory when nothing spilled, else merged from the run file.
pub(crate) enum Sorted<T> {
    /// Everything fit in the budget.
    Memory(std::vec::IntoIter<T>),
    /// Merged from runs.
    Merge(Merge<T>),
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        match self {
            Sorted::Memory(it) => it.next().map(Ok),
            Sorted::Merge(m) => m.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxsave_archive::spill::{get_bytes, get_u64, put_bytes, put_u64};

    #[derive(Debug, Clone, PartialEq)]
    struct R {
        name: Vec<u8>,
        seq: u64,
    }

    impl Record for R {
        fn encode(&self, out: &mut Vec<u8>) {
            put_bytes(out, &self.name);
            put_u64(out, self.seq);
        }
        fn decode(input: &mut dyn Read) -> io::Result<Self> {
            Ok(R {
                name: get_bytes(input)?,
                seq: get_u64(input)?,
            })
        }
    }

    fn run(n: u64, budget: usize) -> (Vec<R>, bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Sorter::new(dir.path(), budget, |a: &R, b: &R| a.name.cmp(&b.name));
        for i in 0..n {
            // Many equal names: the sort must be stable.
            let name = format!("n{:03}", (i * 7919) % 97).into_bytes();
            s.push(R { name, seq: i }).expect("push");
        }
        let spilled = s.is_spilled();
        let out = s.finish().expect("finish").collect::<io::Result<Vec<_>>>();
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
        (out.expect("read"), spilled)
    }

    #[test]
    fn spilled_sort_equals_in_memory_stable_sort() {
        let (mem, spilled) = run(5000, 1 << 30);
        assert!(!spilled);
        // 200-byte budget: about one run per record pair, so several merge passes.
        let (disk, spilled) = run(5000, 200);
        assert!(spilled);
        let mut want: Vec<R> = (0..5000)
            .map(|i| R {
                name: format!("n{:03}", (i * 7919) % 97).into_bytes(),
                seq: i,
            })
            .collect();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(mem, want);
        assert_eq!(disk, want);
        assert!(run(0, 10).0.is_empty());
    }
}
