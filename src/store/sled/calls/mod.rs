//! The call journal: call records in an append-only file beside the sled
//! databases (`<data dir>/calls/journal`), with an index of its own in memory.
//!
//! Resolving a call writes its record on the lookup path. In sled that write
//! made the reading threads do sled's housekeeping (BENCHMARKS.md); here it is
//! one `pwrite(2)` of one framed entry ([`frame`]) and an index update, under
//! a lock no index read takes.
//!
//! **What survives what.** [`CallJournal::put`] returns once the entry is in
//! the kernel (the page cache): a process crash (SIGKILL, abort, OOM kill)
//! right after loses nothing `put` returned `Ok` for. A background thread
//! `fdatasync`s the file every [`StoreOptions::call_sync_interval`] (default
//! 200 ms) when something was written, and `flush` (a clean stop) syncs at
//! once. A machine crash (power loss, kernel panic) may therefore lose the
//! calls and call events written in the last interval before it (plus those
//! of a sync still running), never older ones; a partly written last entry is
//! cut off at the next open. Deleting a user's calls is synced before it returns.
//!
//! **A write that fails** (full disk, I/O error) is an error of `put`: the
//! entry is not in the index, the file is cut back to its last whole entry.
//!
//! **Opening** replays the file into the index (records are not decoded: the
//! index fields travel ahead of each record). A torn last entry (a crash during
//! a write) is cut off and logged. A damaged entry between whole ones (bad
//! checksum or length) is skipped up to the next valid entry: logged as an
//! error, its bytes copied to `damaged-at-<offset>-<crc>` beside the journal
//! (they are gone from the journal at the next compaction), and the rest
//! stays readable; a torn tail's bytes are kept the same way. A file that is not a journal (wrong header) is refused.
//!
//! **Updates** (call events) append a whole new version; the index points at
//! the newest. When superseded versions outgrow the live ones (and at least
//! [`COMPACT_MIN_DEAD`]), a thread of its own rewrites the live entries to
//! `journal.compact`, syncs it, copies what was appended meanwhile, renames it
//! over `journal` and syncs the directory. A crash before the rename leaves
//! the old journal intact and the temporary file is removed at the next open;
//! after it, the new file is complete.
//!
//! [`StoreOptions::call_sync_interval`]: super::StoreOptions::call_sync_interval

mod frame;
mod index;
pub(in crate::store) mod migrate;
#[cfg(test)]
mod tests;

use super::other;
use crate::model::{CallId, CallRecord};
use crate::store::{Result, StoreError, TimeWindow};
use index::{Index, Slot};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock, Weak};
use std::time::Duration;

/// The journal's file name in its directory.
const JOURNAL: &str = "journal";
/// A compaction's (or a restore's) file before it is renamed over the journal.
const REWRITE: &str = "journal.compact";
/// Compaction waits until superseded entries take at least this many bytes.
pub(super) const COMPACT_MIN_DEAD: u64 = 4 << 20;

/// The file, where its valid entries end, and what the index knows of them.
struct State {
    file: Arc<File>,
    /// 0 while the file is empty (the header goes out with the first entry).
    end: u64,
    index: Index,
}

impl State {
    /// Appends one framed entry with one write; returns its offset.
    fn append(&mut self, frame: &[u8]) -> Result<u64> {
        let with_header;
        let (bytes, offset) = if self.end == 0 {
            with_header = [frame::HEADER.as_slice(), frame].concat();
            (with_header.as_slice(), frame::HEADER.len() as u64)
        } else {
            (frame, self.end)
        };
        match self.file.write_all_at(bytes, self.end) {
            Ok(()) => {
                self.end += bytes.len() as u64;
                Ok(offset)
            }
            Err(e) => {
                // Whatever part of it was written goes; the next entry starts at `end` either way.
                let _ = self.file.set_len(self.end);
                Err(other("appending to the call journal", e))
            }
        }
    }
}

struct Inner {
    dir: PathBuf,
    state: RwLock<State>,
    /// Held by a compaction or a restore: one rewrite of the file at a time.
    rewrite: Mutex<()>,
    /// Written since the last sync.
    dirty: AtomicBool,
}

/// The journal; dropping it stops its sync thread and syncs the file.
pub(super) struct CallJournal {
    inner: Arc<Inner>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Removes the directory on drop (a temporary store's).
    temporary: bool,
}

impl Drop for CallJournal {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.inner.sync() {
            tracing::error!(error = %e, "syncing the call journal at close failed");
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.inner.dir);
        }
    }
}

fn io(doing: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| other(doing, e)
}

impl CallJournal {
    /// Opens (or creates) the journal in `dir`, replaying it into the index.
    pub(super) fn open(dir: &Path, sync_every: Duration) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io("creating the call journal's directory"))?;
        let stale = dir.join(REWRITE);
        if stale.exists() {
            tracing::warn!(file = %stale.display(), "removing an unfinished compaction of the call journal (the journal itself is whole)");
            std::fs::remove_file(&stale).map_err(io("removing an unfinished compaction"))?;
        }
        let path = dir.join(JOURNAL);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening the call journal"))?;
        let (end, index) = replay(&file, &path)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            state: RwLock::new(State { file: Arc::new(file), end, index }),
            rewrite: Mutex::new(()),
            dirty: AtomicBool::new(false),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let weak = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("call-journal".into())
            .spawn(move || background(weak, stopped, sync_every))
            .map_err(io("starting the call journal's sync thread"))?;
        Ok(Self { inner, stop: Some(stop), thread: Some(thread), temporary: false })
    }

    /// A journal in a fresh directory under the system's temporary directory,
    /// removed when it is dropped.
    pub(super) fn temporary() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("contactbridge-calls-{}", uuid::Uuid::new_v4()));
        let mut j = Self::open(&dir, Duration::from_millis(200))?;
        j.temporary = true;
        Ok(j)
    }

    /// Writes a call (a new one or a newer version): in the kernel, and seen by
    /// every read, when this returns.
    pub(super) fn put(&self, call: &CallRecord) -> Result<()> {
        let entry = frame::call(call)?;
        let mut st = self.inner.state.write().expect("call journal lock");
        let offset = st.append(&entry)?;
        let caller = call.caller_key.as_deref();
        st.index.put(call.id.as_str(), call.user.as_str(), caller, frame::micros(call.at), offset, entry.len() as u32);
        self.inner.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Deletes every call of `user`, durably; returns how many.
    pub(super) fn delete_user(&self, user: &str) -> Result<usize> {
        let entry = frame::delete_user(user)?;
        let gone = {
            let mut st = self.inner.state.write().expect("call journal lock");
            if st.index.of_user(user, i64::MIN, i64::MAX, 1).is_empty() {
                return Ok(0);
            }
            st.append(&entry)?;
            st.index.delete_user(user)
        };
        self.inner.dirty.store(true, Ordering::Release);
        self.inner.sync()?;
        Ok(gone)
    }

    pub(super) fn get(&self, id: &CallId) -> Result<Option<CallRecord>> {
        let (file, slot) = {
            let st = self.inner.state.read().expect("call journal lock");
            (st.file.clone(), st.index.get(id.as_str()))
        };
        slot.map(|s| read(&file, s)).transpose()
    }

    pub(super) fn contains(&self, id: &CallId) -> bool {
        self.inner.state.read().expect("call journal lock").index.get(id.as_str()).is_some()
    }

    /// Reads the calls `pick` chooses from the index, in its order; a damaged
    /// one is logged and left out (the others stay readable).
    fn read_all(&self, pick: impl FnOnce(&Index) -> Vec<Slot>) -> Vec<CallRecord> {
        let (file, slots) = {
            let st = self.inner.state.read().expect("call journal lock");
            (st.file.clone(), pick(&st.index))
        };
        slots
            .into_iter()
            .filter_map(|s| match read(&file, s) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(offset = s.offset, error = %e, "a call record in the journal is unreadable; left out");
                    None
                }
            })
            .collect()
    }

    /// The user's calls in `window`, newest first.
    pub(super) fn of_user(&self, user: &str, window: TimeWindow, limit: usize) -> Vec<CallRecord> {
        let (from, to) = (frame::micros(window.from), frame::micros(window.to));
        self.read_all(|ix| ix.of_user(user, from, to, limit))
    }

    /// The user's calls from a caller in `window`, newest first.
    pub(super) fn of_caller(&self, user: &str, caller: &str, window: TimeWindow, limit: usize) -> Vec<CallRecord> {
        let (from, to) = (frame::micros(window.from), frame::micros(window.to));
        self.read_all(|ix| ix.of_caller(user, caller, from, to, limit))
    }

    /// Every call (for backups), in file order.
    pub(super) fn all(&self) -> Result<Vec<CallRecord>> {
        let (file, live) = {
            let st = self.inner.state.read().expect("call journal lock");
            (st.file.clone(), st.index.live())
        };
        live.into_iter().map(|(_, s)| read(&file, s)).collect()
    }

    /// Makes everything written so far durable.
    pub(super) fn flush(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Replaces every call with `calls` (a restore): a new file, renamed over the journal.
    pub(super) fn replace_all(&self, calls: &[CallRecord]) -> Result<()> {
        let _one = self.inner.rewrite.lock().expect("call journal rewrite lock");
        let (file, path) = self.inner.create_rewrite()?;
        let mut index = Index::default();
        let mut out = std::io::BufWriter::new(&file);
        let mut end = frame::HEADER.len() as u64;
        std::io::Write::write_all(&mut out, frame::HEADER).map_err(io("writing restored calls"))?;
        for call in calls {
            let entry = frame::call(call)?;
            std::io::Write::write_all(&mut out, &entry).map_err(io("writing restored calls"))?;
            let caller = call.caller_key.as_deref();
            index.put(call.id.as_str(), call.user.as_str(), caller, frame::micros(call.at), end, entry.len() as u32);
            end += entry.len() as u64;
        }
        std::io::Write::flush(&mut out).map_err(io("writing restored calls"))?;
        drop(out);
        file.sync_data().map_err(io("syncing restored calls"))?;
        let mut st = self.inner.state.write().expect("call journal lock");
        self.inner.install(&path)?;
        *st = State { file: Arc::new(file), end, index };
        Ok(())
    }

    #[cfg(test)]
    fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Bytes of the journal file.
    pub(super) fn size(&self) -> u64 {
        self.inner.state.read().expect("call journal lock").end
    }

    /// (calls, bytes of their newest versions, bytes of the file).
    #[cfg(test)]
    pub(super) fn stats(&self) -> (usize, u64, u64) {
        let st = self.inner.state.read().expect("call journal lock");
        (st.index.len(), st.index.live_bytes(), st.end)
    }
}

/// A whole frame read back: the newest version of a call.
fn read(file: &File, slot: Slot) -> Result<CallRecord> {
    let mut buf = vec![0; slot.len as usize];
    file.read_exact_at(&mut buf, slot.offset).map_err(io("reading the call journal"))?;
    frame::record(&buf)
}

/// Rebuilds the index from the file: cuts off a torn tail, skips (and keeps
/// aside) damaged entries. Returns where the valid entries end.
fn replay(file: &File, path: &Path) -> Result<(u64, Index)> {
    let len = file.metadata().map_err(io("reading the call journal's size"))?.len();
    let header = frame::HEADER.len() as u64;
    let mut head = [0u8; 8];
    let got = file.read_at(&mut head[..len.min(header) as usize], 0).map_err(io("reading the call journal"))?;
    if len < header && head[..got] == frame::HEADER[..got] {
        // Empty, or a crash while the first entry was written: start over.
        if len > 0 {
            tracing::warn!(file = %path.display(), bytes = len, "the call journal holds only part of its header; starting it afresh");
            file.set_len(0).map_err(io("cutting the call journal"))?;
        }
        return Ok((0, Index::default()));
    }
    if head != *frame::HEADER {
        return Err(StoreError::Corrupt {
            what: "call journal",
            reason: format!(
                "{} does not start with a call journal's header; move it aside (calls in it are lost to the bridge) or restore a backup",
                path.display()
            ),
        });
    }
    let mut index = Index::default();
    let scan = frame::scan(file, header, len, |offset, frame_len, entry| match entry {
        frame::Entry::Call { at, id, user, caller } => index.put(id, user, caller, at, offset, frame_len),
        frame::Entry::DeleteUser { user } => {
            index.delete_user(user);
        }
    })
    .map_err(io("reading the call journal"))?;
    for range in &scan.damaged {
        let kept = keep_aside(file, path, range.clone());
        tracing::error!(
            file = %path.display(), offset = range.start, bytes = range.end - range.start, kept_in = ?kept,
            "the call journal has a damaged entry; skipped it (the calls after it are read)"
        );
    }
    if scan.end < len {
        let kept = keep_aside(file, path, scan.end..len);
        tracing::warn!(
            file = %path.display(), offset = scan.end, bytes = len - scan.end, kept_in = ?kept,
            "the call journal ends in a partly written entry (a crash during a write); cutting it off"
        );
        file.set_len(scan.end).map_err(io("cutting the call journal"))?;
        file.sync_all().map_err(io("syncing the call journal"))?;
    }
    Ok((scan.end, index))
}

/// Copies bytes the journal skips or cuts off to `damaged-at-<offset>-<crc32>`
/// beside it (once: a damaged range stays in the file until the next
/// compaction and is met again at every open). Zeros are not kept.
fn keep_aside(file: &File, path: &Path, range: std::ops::Range<u64>) -> Option<String> {
    let mut bytes = vec![0; (range.end - range.start) as usize];
    file.read_exact_at(&mut bytes, range.start).ok()?;
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let aside = path.with_file_name(format!("damaged-at-{}-{:08x}", range.start, crc32fast::hash(&bytes)));
    if !aside.exists() {
        std::fs::write(&aside, &bytes).ok()?;
    }
    Some(aside.display().to_string())
}

/// A compaction's file, written outside the lock and not yet in place.
pub(super) struct Rewritten {
    file: File,
    path: PathBuf,
    /// The old file's end when the copy began: what was appended after it is copied at install.
    old_end: u64,
    new_end: u64,
    /// (slot, old offset, new offset) of every entry copied.
    moved: Vec<(index::SlotNo, u64, u64)>,
}

impl Inner {
    fn sync(&self) -> Result<()> {
        let (file, end) = {
            let st = self.state.read().expect("call journal lock");
            (st.file.clone(), st.end)
        };
        if end == 0 {
            return Ok(()); // nothing was ever written
        }
        self.dirty.store(false, Ordering::Release);
        file.sync_data().map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            other("syncing the call journal", e)
        })
    }

    fn create_rewrite(&self) -> Result<(File, PathBuf)> {
        let path = self.dir.join(REWRITE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io("creating the call journal's new file"))?;
        Ok((file, path))
    }

    /// Renames a finished rewrite over the journal and syncs the directory
    /// (called with the state locked, so nothing is appended to the old file after).
    fn install(&self, path: &Path) -> Result<()> {
        std::fs::rename(path, self.dir.join(JOURNAL)).map_err(io("renaming the call journal's new file"))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("syncing the call journal's directory"))
    }

    /// Whether superseded entries outgrow the live ones (and [`COMPACT_MIN_DEAD`]).
    fn worth_compacting(&self) -> bool {
        let st = self.state.read().expect("call journal lock");
        let live = st.index.live_bytes();
        let dead = st.end.saturating_sub(live + frame::HEADER.len() as u64);
        dead >= COMPACT_MIN_DEAD && dead > live
    }

    fn compact_if_worth_it(&self) -> Result<bool> {
        let _one = self.rewrite.lock().expect("call journal rewrite lock");
        if !self.worth_compacting() {
            return Ok(false);
        }
        let rewritten = self.write_compacted()?;
        self.install_compacted(rewritten)?;
        Ok(true)
    }

    /// Copies the live entries to a new file (without holding the state lock).
    fn write_compacted(&self) -> Result<Rewritten> {
        let (old, old_end, live) = {
            let st = self.state.read().expect("call journal lock");
            (st.file.clone(), st.end, st.index.live())
        };
        let (file, path) = self.create_rewrite()?;
        let mut out = std::io::BufWriter::new(&file);
        let mut new_end = frame::HEADER.len() as u64;
        std::io::Write::write_all(&mut out, frame::HEADER).map_err(io("compacting the call journal"))?;
        let mut moved = Vec::with_capacity(live.len());
        let mut buf = Vec::new();
        for (no, slot) in live {
            buf.resize(slot.len as usize, 0);
            old.read_exact_at(&mut buf, slot.offset).map_err(io("compacting the call journal"))?;
            std::io::Write::write_all(&mut out, &buf).map_err(io("compacting the call journal"))?;
            moved.push((no, slot.offset, new_end));
            new_end += u64::from(slot.len);
        }
        std::io::Write::flush(&mut out).map_err(io("compacting the call journal"))?;
        drop(out);
        file.sync_data().map_err(io("syncing the compacted call journal"))?;
        Ok(Rewritten { file, path, old_end, new_end, moved })
    }

    /// Copies what was appended since [`Inner::write_compacted`] began, puts the new file in place and
    /// points the index at it.
    fn install_compacted(&self, r: Rewritten) -> Result<()> {
        let mut st = self.state.write().expect("call journal lock");
        let tail = st.end - r.old_end;
        if tail > 0 {
            let mut buf = vec![0; tail as usize];
            st.file.read_exact_at(&mut buf, r.old_end).map_err(io("compacting the call journal"))?;
            r.file.write_all_at(&buf, r.new_end).map_err(io("compacting the call journal"))?;
            r.file.sync_data().map_err(io("syncing the compacted call journal"))?;
        }
        self.install(&r.path)?;
        st.index.rebase(&r.moved, r.old_end, r.new_end);
        let before = st.end;
        st.end = r.new_end + tail;
        st.file = Arc::new(r.file);
        tracing::info!(before, after = st.end, calls = st.index.len(), "compacted the call journal");
        Ok(())
    }
}

/// The sync thread: syncs what was written every `every`. When a compaction is
/// worth it, it runs on a thread of its own, so syncs keep their pace.
fn background(inner: Weak<Inner>, stop: mpsc::Receiver<()>, every: Duration) {
    let mut compacting: Option<std::thread::JoinHandle<()>> = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(inner) = inner.upgrade() else { break };
        if inner.dirty.load(Ordering::Acquire) {
            if let Err(e) = inner.sync() {
                tracing::error!(error = %e, "syncing the call journal failed: calls written since the last sync are not safe from a machine crash");
            }
        }
        if compacting.as_ref().is_some_and(|t| t.is_finished()) {
            let _ = compacting.take().map(|t| t.join());
        }
        if compacting.is_none() && inner.worth_compacting() {
            let spawned = std::thread::Builder::new().name("call-journal-compact".into()).spawn(move || {
                if let Err(e) = inner.compact_if_worth_it() {
                    tracing::error!(error = %e, "compacting the call journal failed; the journal is unchanged");
                    let _ = std::fs::remove_file(inner.dir.join(REWRITE));
                }
            });
            compacting = spawned.ok();
        }
    }
    // The journal is closing: a compaction finishes first (it is crash-safe, but the directory may go).
    let _ = compacting.map(|t| t.join());
}
