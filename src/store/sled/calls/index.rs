//! The journal's in-memory index: where the newest version of each call is,
//! and the calls of each user and of each (user, caller) pair in time order.
//!
//! Records stay on disk; per call the index holds a slot (32 bytes), an id
//! entry (a UUID as 16 bytes, other ids as text) and one entry in each of two
//! B-trees (16 bytes each). User ids and caller keys are held once each.
//! Measured: 152 bytes per call with the maps' and trees' overheads
//! (1,000,000 calls, the `measure` test below with its `n` raised).

use std::collections::{BTreeSet, HashMap};

/// A call's place in the index (its number in `slots`).
pub(super) type SlotNo = u32;
/// An interned user or (user, caller key) pair.
type Owner = u32;
const NO_CALLER: Owner = Owner::MAX;

/// Where a call's newest version is, and what it is indexed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub offset: u64,
    /// Frame length in bytes; 0 for a deleted call (the slot stays unused until the next open).
    pub len: u32,
    user: Owner,
    caller: Owner,
    at: i64,
}

/// A call id: a UUID in its canonical text form (every id the bridge makes) as
/// its 16 bytes, anything else as text.
enum IdKey<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

fn id_key(id: &str) -> IdKey<'_> {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()) == id => IdKey::Uuid(*u.as_bytes()),
        _ => IdKey::Text(id),
    }
}

/// Call id → slot, UUIDs apart from other ids (a map of 16-byte keys is half the size).
#[derive(Default)]
struct Ids {
    uuids: HashMap<[u8; 16], SlotNo>,
    texts: HashMap<Box<str>, SlotNo>,
}

impl Ids {
    fn get(&self, id: &str) -> Option<SlotNo> {
        match id_key(id) {
            IdKey::Uuid(u) => self.uuids.get(&u).copied(),
            IdKey::Text(t) => self.texts.get(t).copied(),
        }
    }
    fn insert(&mut self, id: &str, no: SlotNo) {
        match id_key(id) {
            IdKey::Uuid(u) => self.uuids.insert(u, no),
            IdKey::Text(t) => self.texts.insert(t.into(), no),
        };
    }
    fn retain(&mut self, keep: impl Fn(SlotNo) -> bool) {
        self.uuids.retain(|_, no| keep(*no));
        self.texts.retain(|_, no| keep(*no));
    }
    fn len(&self) -> usize {
        self.uuids.len() + self.texts.len()
    }
}

#[derive(Default)]
pub(super) struct Index {
    slots: Vec<Slot>,
    ids: Ids,
    users: HashMap<Box<str>, Owner>,
    callers: HashMap<(Owner, Box<str>), Owner>,
    /// (user, time, slot): a user's calls in time order.
    by_user: BTreeSet<(Owner, i64, SlotNo)>,
    /// (user+caller, time, slot).
    by_caller: BTreeSet<(Owner, i64, SlotNo)>,
    /// Bytes of frames the index points at (the rest of the file is superseded).
    live_bytes: u64,
}

impl Index {
    fn intern_user(&mut self, user: &str) -> Owner {
        let next = self.users.len() as Owner;
        *self.users.entry(user.into()).or_insert(next)
    }

    fn intern_caller(&mut self, user: Owner, caller: &str) -> Owner {
        let next = self.callers.len() as Owner;
        *self.callers.entry((user, caller.into())).or_insert(next)
    }

    fn unlink(&mut self, no: SlotNo) {
        let s = self.slots[no as usize];
        self.by_user.remove(&(s.user, s.at, no));
        if s.caller != NO_CALLER {
            self.by_caller.remove(&(s.caller, s.at, no));
        }
        self.live_bytes -= u64::from(s.len);
    }

    /// Points the call at its newest version, a frame of `len` bytes at `offset`.
    pub fn put(&mut self, id: &str, user: &str, caller: Option<&str>, at: i64, offset: u64, len: u32) {
        let u = self.intern_user(user);
        let c = caller.map_or(NO_CALLER, |c| self.intern_caller(u, c));
        let slot = Slot { offset, len, user: u, caller: c, at };
        let no = match self.ids.get(id) {
            Some(no) => {
                self.unlink(no);
                self.slots[no as usize] = slot;
                no
            }
            None => {
                let no = self.slots.len() as SlotNo;
                self.slots.push(slot);
                self.ids.insert(id, no);
                no
            }
        };
        self.by_user.insert((u, at, no));
        if c != NO_CALLER {
            self.by_caller.insert((c, at, no));
        }
        self.live_bytes += u64::from(len);
    }

    /// Forgets every call of `user`; returns how many.
    pub fn delete_user(&mut self, user: &str) -> usize {
        let Some(&u) = self.users.get(user) else { return 0 };
        let gone: Vec<SlotNo> =
            self.by_user.range((u, i64::MIN, 0)..=(u, i64::MAX, SlotNo::MAX)).map(|e| e.2).collect();
        for &no in &gone {
            self.unlink(no);
            self.slots[no as usize].len = 0;
        }
        let slots = &self.slots;
        self.ids.retain(|no| slots[no as usize].len != 0);
        gone.len()
    }

    pub fn get(&self, id: &str) -> Option<Slot> {
        self.ids.get(id).map(|no| self.slots[no as usize])
    }

    fn newest(set: &BTreeSet<(Owner, i64, SlotNo)>, owner: Owner, from: i64, to: i64, limit: usize) -> Vec<SlotNo> {
        if from >= to {
            return Vec::new();
        }
        set.range((owner, from, 0)..(owner, to, 0)).rev().take(limit).map(|e| e.2).collect()
    }

    /// The user's calls with `from <= at < to` (µs), newest first.
    pub fn of_user(&self, user: &str, from: i64, to: i64, limit: usize) -> Vec<Slot> {
        let Some(&u) = self.users.get(user) else { return Vec::new() };
        Self::newest(&self.by_user, u, from, to, limit).into_iter().map(|no| self.slots[no as usize]).collect()
    }

    /// The user's calls from `caller` with `from <= at < to` (µs), newest first.
    pub fn of_caller(&self, user: &str, caller: &str, from: i64, to: i64, limit: usize) -> Vec<Slot> {
        let Some(&u) = self.users.get(user) else { return Vec::new() };
        let Some(&c) = self.callers.get(&(u, caller.into())) else { return Vec::new() };
        Self::newest(&self.by_caller, c, from, to, limit).into_iter().map(|no| self.slots[no as usize]).collect()
    }

    /// Every live call's slot number and place, in file order.
    pub fn live(&self) -> Vec<(SlotNo, Slot)> {
        let mut out: Vec<(SlotNo, Slot)> =
            self.slots.iter().enumerate().filter(|(_, s)| s.len != 0).map(|(no, s)| (no as SlotNo, *s)).collect();
        out.sort_by_key(|(_, s)| s.offset);
        out
    }

    /// Points the index at a compacted file: `moved` (slot, old offset, new
    /// offset) for the entries copied, and the entries appended after the copy
    /// began (at `tail_from` and beyond in the old file) now start at `tail_to`.
    /// A slot updated during the copy is in the tail, not at its old offset.
    pub fn rebase(&mut self, moved: &[(SlotNo, u64, u64)], tail_from: u64, tail_to: u64) {
        let tail: Vec<SlotNo> = (0..self.slots.len() as SlotNo)
            .filter(|&no| self.slots[no as usize].len != 0 && self.slots[no as usize].offset >= tail_from)
            .collect();
        for &(no, old, new) in moved {
            let s = &mut self.slots[no as usize];
            if s.len != 0 && s.offset == old {
                s.offset = new;
            }
        }
        for no in tail {
            let s = &mut self.slots[no as usize];
            s.offset = s.offset - tail_from + tail_to;
        }
    }

    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_wins_and_users_stay_apart() {
        let mut ix = Index::default();
        let id = uuid::Uuid::now_v7().to_string();
        ix.put(&id, "alice", Some("e:+491"), 10, 8, 100);
        ix.put("other-id", "bob", Some("e:+491"), 20, 108, 50);
        ix.put(&id, "alice", Some("e:+491"), 10, 158, 120);
        assert_eq!(ix.get(&id).map(|s| (s.offset, s.len)), Some((158, 120)));
        assert_eq!(ix.live_bytes(), 170);
        assert_eq!(ix.of_user("alice", i64::MIN, i64::MAX, 10).len(), 1, "an update does not duplicate");
        assert_eq!(ix.of_caller("alice", "e:+491", i64::MIN, i64::MAX, 10).len(), 1);
        assert_eq!(ix.of_caller("bob", "e:+491", i64::MIN, i64::MAX, 10)[0].offset, 108);
        assert!(ix.of_user("carol", i64::MIN, i64::MAX, 10).is_empty());
        assert!(ix.of_user("alice", 11, i64::MAX, 10).is_empty(), "the window's start is inclusive only");
        assert!(ix.of_user("alice", 0, 10, 10).is_empty(), "the window's end is exclusive");
        assert_eq!(ix.delete_user("alice"), 1);
        assert!(ix.get(&id).is_none());
        assert_eq!((ix.len(), ix.live_bytes()), (1, 50));
        assert!(matches!(id_key(&id), IdKey::Uuid(_)));
        assert!(matches!(id_key(&id.to_uppercase()), IdKey::Text(_)), "only the canonical form is packed");
    }
}
/// What the index costs per call, in resident memory (one process per test under nextest).
#[cfg(test)]
mod measure {
    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    #[test]
    fn a_call_costs_the_index_under_200_bytes() {
        let mut ix = super::Index::default();
        // 1,000,000 gave 152 bytes per call (2026-11-30); fewer keep the test quick.
        let n = 250_000u64;
        let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let before = rss();
        for (i, id) in ids.iter().enumerate() {
            let user = format!("user{}", i % 1000);
            let caller = format!("e:+4930{}", i % 50_000);
            ix.put(id, &user, Some(&caller), i as i64 * 1000, i as u64 * 900, 900);
        }
        let after = rss();
        let per_call = (after - before) * 1024 / n;
        println!("the call index: {per_call} bytes per call ({} calls, {} kB)", ix.len(), after - before);
        assert!(per_call < 200, "{per_call} bytes per call");
    }
}
