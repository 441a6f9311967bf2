//! `IndexStore` on one sled index database ([`IndexDb`]; `repair.rs` puts it
//! behind the store, replaceable when damaged): applying change sets with
//! their checkpoint, and the lookups the resolver makes. Everything lives in one tree, so one
//! `apply_batch` covers records, secondary keys and the collection state.

use super::entry::{self, KeySource};
use super::{backend, repair::IndexDb, SledStore};
use crate::model::{BusySpan, HandlingCode, UserId};
use crate::phone::Region;
use crate::store::keys::{self, key, prefix};
use crate::store::{
    codec, derive, ApplyStats, CollectionScope, CollectionState, IndexBatch, IndexStore, RecordRef, Result,
    SecondaryKey, StoreError, StoredContact, TimeWindow,
};
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::{BusyStatus, CalendarEvent, Document, MailMessage, OutOfOffice, Record, RecordId};
use std::collections::{HashMap, HashSet};

/// Occurrences up to this long are "short" (`t` keys): the status scan looks
/// back only this far for them. Longer ones (`T` keys: multi-day leave,
/// conferences) are rare and scanned back [`MAX_OCCURRENCE_DAYS`].
pub(in crate::store) const SHORT_OCCURRENCE_HOURS: i64 = 24;
/// Longer occurrences than this are found through out-of-office, not the calendar.
pub(in crate::store) const MAX_OCCURRENCE_DAYS: i64 = 62;

impl IndexDb {
    fn state_key(scope: &CollectionScope) -> Vec<u8> {
        key(b'k', &[keys::user(&scope.user), &scope.account, &scope.collection])
    }

    fn read_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.index
            .get(Self::state_key(scope))
            .map_err(|e| backend("reading a collection state", e))?
            .map(|v| codec::decode("collection state", &v))
            .transpose()
    }

    fn entry_key(user: &UserId, r: &RecordRef) -> Vec<u8> {
        key(b'r', &[keys::user(user), &r.account, &r.collection, r.id.as_str()])
    }

    fn get_entry(&self, user: &UserId, r: &RecordRef) -> Result<Option<sled::IVec>> {
        self.index.get(Self::entry_key(user, r)).map_err(|e| backend("reading a record", e))
    }

    /// Queues the removal of an entry (under `entry_key`, an `r` key) and its secondary keys.
    fn remove_entry(batch: &mut sled::Batch, entry_key: &[u8], value: &[u8]) -> Result<()> {
        let parts = keys::parts(entry_key);
        let [user, account, collection, id] = parts[..] else {
            return Err(StoreError::Corrupt { what: "record key", reason: format!("{} parts, not 4", parts.len()) });
        };
        let r = RecordRef { account: account.into(), collection: collection.into(), id: RecordId::new(id) };
        for k in stored_keys(user, &r, value)? {
            batch.remove(k);
        }
        batch.remove(entry_key);
        Ok(())
    }

    fn record_at(&self, user: &UserId, r: &RecordRef) -> Result<Option<(Record, Option<HandlingCode>)>> {
        Ok(match self.get_entry(user, r)? {
            Some(v) => {
                let read = entry::read(&v, &r.id)?;
                Some((read.record, read.code))
            }
            None => None,
        })
    }

    /// Refs found under `prefix`, reading keys newest first from `window.to`
    /// down to `window.from` where the part after the prefix is a time.
    fn refs_in_window(&self, pre: Vec<u8>, window: TimeWindow, limit: usize) -> Result<Vec<RecordRef>> {
        if window.from >= window.to || limit == 0 {
            return Ok(Vec::new());
        }
        let lo = [pre.as_slice(), keys::time(window.from).as_bytes()].concat();
        let hi = [pre.as_slice(), keys::time(window.to).as_bytes()].concat();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for kv in self.index.range(lo..hi).rev() {
            let (k, _) = kv.map_err(|e| backend("scanning the index", e))?;
            let parts = keys::parts(&k);
            let n = parts.len();
            let r = RecordRef {
                account: parts[n - 3].into(),
                collection: parts[n - 2].into(),
                id: RecordId::new(parts[n - 1]),
            };
            if seen.insert(r.clone()) {
                out.push(r);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl IndexDb {
    /// Events under an attendee prefix (`a` keys: last occurrence start in the
    /// key, first in the value) whose occurrences span into `window`: all that
    /// go on past its end (at most [`keys::SpanningScan::MAX_SPANNING`]), then up to `limit` that
    /// end inside it, latest first.
    fn events_spanning(&self, pre: Vec<u8>, window: TimeWindow, limit: usize) -> Result<Vec<RecordRef>> {
        if window.from >= window.to || limit == 0 {
            return Ok(Vec::new());
        }
        let lo = [pre.as_slice(), keys::time(window.from).as_bytes()].concat();
        let mut end = pre.clone();
        *end.last_mut().expect("a prefix ends with a separator") += 1;
        let mut scan = keys::SpanningScan::new(window.to, limit);
        let mut out = Vec::new();
        for kv in self.index.range(lo..end).rev() {
            let (k, v) = kv.map_err(|e| backend("scanning the index", e))?;
            match scan.next(&k, &v) {
                keys::Scan::Skip => continue,
                keys::Scan::Take(r) => out.push(r),
                keys::Scan::Stop => break,
            }
        }
        Ok(out)
    }
}

/// The secondary keys a stored entry has: derived again from the record, or as listed.
pub(in crate::store) fn stored_keys(user: &str, r: &RecordRef, value: &[u8]) -> Result<Vec<Vec<u8>>> {
    let (record, source) = entry::keys(value, &r.id)?;
    Ok(match source {
        KeySource::Given(list) => list,
        KeySource::Derived(region) => {
            let region = match region {
                Some(code) => Some(Region::parse(&code).map_err(|e| StoreError::Corrupt {
                    what: "record entry",
                    reason: format!("region of its keys: {}", e.0),
                })?),
                None => None,
            };
            derive::secondary_keys(&record, region.as_ref()).iter().map(|sk| secondary(user, r, sk).0).collect()
        }
    })
}

/// The secondary key (and its value) for one derived key of a record.
pub(in crate::store) fn secondary(user: &str, r: &RecordRef, sk: &SecondaryKey) -> (Vec<u8>, Vec<u8>) {
    let (acc, col, id) = (r.account.as_str(), r.collection.as_str(), r.id.as_str());
    match sk {
        // The kind is in the record: the key's value is empty.
        SecondaryKey::Phone { key: k, kind: _ } => (key(b'p', &[user, k, acc, col, id]), vec![]),
        SecondaryKey::Email(e) => (key(b'e', &[user, e, acc, col, id]), vec![]),
        SecondaryKey::Occurrence { start, end, busy } => (
            key(
                if *end - *start <= Duration::hours(SHORT_OCCURRENCE_HOURS) { b't' } else { b'T' },
                &[user, &keys::time(*start), acc, col, id],
            ),
            [keys::time(*end).as_bytes(), &[0], busy_byte(*busy).as_bytes()].concat(),
        ),
        SecondaryKey::Attendee { email, first, last } => {
            (key(b'a', &[user, email, &keys::time(*last), acc, col, id]), keys::time(*first).into_bytes())
        }
        SecondaryKey::Correspondent { email, date } => {
            (key(b'm', &[user, email, &keys::time(*date), acc, col, id]), vec![])
        }
        SecondaryKey::DocumentPerson { person, modified } => {
            (key(b'd', &[user, person, &keys::time(*modified), acc, col, id]), vec![])
        }
        SecondaryKey::OutOfOffice => (key(b'o', &[user, acc, col, id]), vec![]),
    }
}

fn busy_byte(b: BusyStatus) -> &'static str {
    match b {
        BusyStatus::Free => "f",
        BusyStatus::Tentative => "t",
        BusyStatus::Busy => "b",
        BusyStatus::OutOfOffice => "o",
        BusyStatus::WorkingElsewhere => "w",
    }
}

pub(in crate::store) fn parse_busy(s: &[u8]) -> BusyStatus {
    match s {
        b"f" => BusyStatus::Free,
        b"t" => BusyStatus::Tentative,
        b"o" => BusyStatus::OutOfOffice,
        b"w" => BusyStatus::WorkingElsewhere,
        _ => BusyStatus::Busy,
    }
}

pub(in crate::store) fn check_scope(scope: &CollectionScope) -> Result<()> {
    keys::check_part("account", &scope.account).map_err(StoreError::Invalid)?;
    keys::check_part("collection", &scope.collection).map_err(StoreError::Invalid)
}

impl IndexStore for IndexDb {
    fn apply(&self, b: &IndexBatch) -> Result<ApplyStats> {
        check_scope(&b.scope)?;
        let user = keys::user(&b.scope.user);
        let mut state = self.read_state(&b.scope)?.unwrap_or_default();
        let snapshot = b.snapshot.unwrap_or_default();
        let generation = match (b.snapshot, state.open_snapshot) {
            (Some(s), _) if s.starts => state.generation.max(state.open_snapshot.unwrap_or(0)) + 1,
            (_, Some(open)) => open,
            _ => state.generation,
        };
        let mut batch = sled::Batch::default();
        let mut stats = ApplyStats::default();
        let mut touched: HashSet<&RecordId> = HashSet::new();
        let scoped = |id: &RecordId| RecordRef {
            account: b.scope.account.clone(),
            collection: b.scope.collection.clone(),
            id: id.clone(),
        };

        // Upserts: last one of an id wins; an id both upserted and deleted stays.
        let mut upserts: HashMap<&RecordId, &crate::store::IndexedRecord> = HashMap::new();
        for u in &b.upserts {
            keys::check_part("record id", u.record.id().as_str()).map_err(StoreError::Invalid)?;
            upserts.insert(u.record.id(), u);
        }
        for (id, u) in &upserts {
            let r = scoped(id);
            let ek = Self::entry_key(&b.scope.user, &r);
            let old_keys: Vec<Vec<u8>> = match self.get_entry(&b.scope.user, &r)? {
                Some(old) => stored_keys(user, &r, &old)?,
                None => Vec::new(),
            };
            let mut new_keys = Vec::with_capacity(u.keys.len());
            let mut seen = HashSet::new();
            for sk in &u.keys {
                let (k, v) = secondary(user, &r, sk);
                if seen.insert(k.clone()) {
                    batch.insert(k.as_slice(), v);
                    new_keys.push(k);
                }
            }
            for stale in old_keys.iter().filter(|k| !seen.contains(*k)) {
                batch.remove(stale.as_slice());
            }
            let source = match &u.derived_with {
                Some(d) => KeySource::Derived(d.region.as_ref().map(|r| r.as_str().to_string())),
                None => KeySource::Given(new_keys),
            };
            batch.insert(ek, entry::encode(generation, &u.record, u.handling_code.as_ref(), &source));
            touched.insert(id);
            stats.upserted += 1;
        }

        if b.snapshot.is_some() {
            for id in &b.retained {
                if touched.contains(id) {
                    continue;
                }
                let r = scoped(id);
                if let Some(v) = self.get_entry(&b.scope.user, &r)? {
                    batch.insert(Self::entry_key(&b.scope.user, &r), entry::with_generation(&v, generation));
                    touched.insert(id);
                }
            }
        }

        for id in &b.deletions {
            if upserts.contains_key(id) {
                continue;
            }
            let r = scoped(id);
            if let Some(v) = self.get_entry(&b.scope.user, &r)? {
                Self::remove_entry(&mut batch, &Self::entry_key(&b.scope.user, &r), &v)?;
                stats.deleted += 1;
            }
            touched.insert(id);
        }

        if snapshot.starts {
            state.open_snapshot = Some(generation);
        }
        if b.snapshot.is_some() && snapshot.ends {
            let pre = prefix(b'r', &[user, &b.scope.account, &b.scope.collection]);
            for kv in self.index.scan_prefix(&pre) {
                let (k, v) = kv.map_err(|e| backend("sweeping a collection", e))?;
                let id = RecordId::new(keys::parts(&k)[3]);
                if !touched.contains(&id) && entry::generation(&v)? != generation {
                    Self::remove_entry(&mut batch, &k, &v)?;
                    stats.swept += 1;
                }
            }
            state.generation = generation;
            state.open_snapshot = None;
        }

        state.committed(b);
        batch.insert(Self::state_key(&b.scope), codec::encode(&state));

        self.index.apply_batch(batch).map_err(|e| backend("applying a change set", e))?;
        if !b.only_checkpoint() {
            // A checkpoint alone reaches the disk with sled's next flush (at most 500 ms).
            self.index.flush().map_err(|e| backend("flushing a change set", e))?;
        }
        Ok(stats)
    }

    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.read_state(scope)
    }

    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        check_scope(scope)?;
        let mut state = self.read_state(scope)?.unwrap_or_default();
        state.last_error_at = error.as_ref().map(|_| at);
        state.last_error = error;
        self.index
            .insert(Self::state_key(scope), codec::encode(&state))
            .map_err(|e| backend("writing a collection state", e))?;
        Ok(())
    }

    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.index
            .scan_prefix(prefix(b'k', &[keys::user(user), account]))
            .map(|kv| {
                let (k, v) = kv.map_err(|e| backend("reading collection states", e))?;
                Ok((keys::parts(&k)[2].to_string(), codec::decode("collection state", &v)?))
            })
            .collect()
    }

    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        let mut out = HashMap::new();
        for kv in self.index.scan_prefix(prefix(b'r', &[keys::user(&scope.user), &scope.account, &scope.collection])) {
            let (k, v) = kv.map_err(|e| backend("reading versions", e))?;
            if let Some(version) = entry::version(&v)? {
                out.insert(RecordId::new(keys::parts(&k).last().copied().unwrap_or_default()), version);
            }
        }
        Ok(out)
    }

    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        let mut removed = 0;
        loop {
            // Chunks keep batches small; each record goes with its keys.
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self.index.scan_prefix(prefix(b'r', &[keys::user(user), account])).take(1000) {
                let (k, v) = kv.map_err(|e| backend("removing an account", e))?;
                Self::remove_entry(&mut batch, &k, &v)?;
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.index.apply_batch(batch).map_err(|e| backend("removing an account", e))?;
            removed += n;
        }
        let mut batch = sled::Batch::default();
        for kv in self.index.scan_prefix(prefix(b'k', &[keys::user(user), account])) {
            batch.remove(kv.map_err(|e| backend("removing an account", e))?.0);
        }
        self.index.apply_batch(batch).map_err(|e| backend("removing an account", e))?;
        self.index.flush().map_err(|e| backend("flushing", e))?;
        Ok(removed)
    }

    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        let mut counts = HashMap::new();
        for kv in self.index.scan_prefix(prefix(b'r', &[keys::user(user), account])) {
            let (_, v) = kv.map_err(|e| backend("counting records", e))?;
            *counts.entry(entry::kind(&v)?.as_str().to_string()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn contacts_by_phone(&self, user: &UserId, phone_key: &str) -> Result<Vec<StoredContact>> {
        keys::check_part("phone key", phone_key).map_err(StoreError::Invalid)?;
        self.contacts_under(user, prefix(b'p', &[keys::user(user), phone_key]))
    }

    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        keys::check_part("email", email).map_err(StoreError::Invalid)?;
        self.contacts_under(user, prefix(b'e', &[keys::user(user), email]))
    }

    fn contact(&self, user: &UserId, r: &RecordRef) -> Result<Option<StoredContact>> {
        Ok(match self.record_at(user, r)? {
            Some((Record::Contact(contact), handling_code)) => {
                Some(StoredContact { at: r.clone(), contact, handling_code })
            }
            _ => None,
        })
    }

    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        for kv in self.index.scan_prefix(prefix(b'r', &[keys::user(user)])) {
            let (k, v) = kv.map_err(|e| backend("scanning contacts", e))?;
            if entry::kind(&v)? != contactbridge_connector::RecordKind::Contact {
                continue;
            }
            let parts = keys::parts(&k);
            let n = parts.len();
            if n < 3 {
                continue;
            }
            let at = RecordRef {
                account: parts[n - 3].into(),
                collection: parts[n - 2].into(),
                id: RecordId::new(parts[n - 1]),
            };
            let read = entry::read(&v, &at.id)?;
            let Record::Contact(contact) = read.record else { continue };
            if !visit(StoredContact { at, contact, handling_code: read.code }) {
                break;
            }
        }
        Ok(())
    }

    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        let scan = |tag: u8, back: Duration| {
            let pre = prefix(tag, &[keys::user(user)]);
            let from = at.checked_sub_signed(back).unwrap_or(DateTime::<Utc>::MIN_UTC);
            let lo = [pre.as_slice(), keys::time(from).as_bytes()].concat();
            let hi = [pre.as_slice(), keys::time(at).as_bytes(), &[0xff]].concat();
            self.index.range(lo..hi)
        };
        let mut spans = Vec::new();
        let short = scan(b't', Duration::hours(SHORT_OCCURRENCE_HOURS));
        let long = scan(b'T', Duration::days(MAX_OCCURRENCE_DAYS));
        for kv in short.chain(long) {
            let (k, v) = kv.map_err(|e| backend("reading the calendar", e))?;
            let mut value = v.split(|b| *b == 0);
            let end = value.next().and_then(|e| keys::parse_time(std::str::from_utf8(e).ok()?));
            let busy = parse_busy(value.next().unwrap_or(b"b"));
            let parts = keys::parts(&k);
            let start = keys::parse_time(parts[1]);
            let (Some(start), Some(end)) = (start, end) else { continue };
            if start <= at && at < end {
                let r =
                    RecordRef { account: parts[2].into(), collection: parts[3].into(), id: RecordId::new(parts[4]) };
                let subject = match self.record_at(user, &r)? {
                    Some((Record::Event(e), _)) => e.subject,
                    _ => String::new(),
                };
                spans.push(BusySpan { start, end, busy, subject });
            }
        }
        Ok(spans)
    }

    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        let mut out = Vec::new();
        for kv in self.index.scan_prefix(prefix(b'o', &[keys::user(user)])) {
            let (k, _) = kv.map_err(|e| backend("reading out-of-office", e))?;
            let parts = keys::parts(&k);
            let r = RecordRef { account: parts[1].into(), collection: parts[2].into(), id: RecordId::new(parts[3]) };
            if let Some((Record::OutOfOffice(o), _)) = self.record_at(user, &r)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        let refs = self.refs_in_window(prefix(b'm', &[keys::user(user), email]), window, limit)?;
        self.records_of(user, refs, |r| match r {
            Record::Mail(m) => Some(m),
            _ => None,
        })
    }

    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        let refs = self.events_spanning(prefix(b'a', &[keys::user(user), email]), window, limit)?;
        let starts_inside =
            |e: &CalendarEvent| e.occurrences.iter().any(|o| window.from <= o.start && o.start < window.to);
        self.records_of(user, refs, |r| match r {
            Record::Event(e) if starts_inside(&e) => Some(e),
            _ => None,
        })
    }

    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        let refs = self.refs_in_window(prefix(b'd', &[keys::user(user), person]), window, limit)?;
        self.records_of(user, refs, |r| match r {
            Record::Document(d) => Some(d),
            _ => None,
        })
    }
}

/// What the index holds, in bytes of keys and values (for benchmarks: what sled stores
/// before its own overhead), by key prefix.
#[derive(Debug, Default, Clone)]
pub struct IndexBytes {
    /// Prefix byte → (entries, key bytes, value bytes).
    pub by_prefix: std::collections::BTreeMap<char, (u64, u64, u64)>,
}

impl SledStore {
    /// Counts the index's keys and values (a full scan).
    pub fn index_bytes(&self) -> Result<IndexBytes> {
        let mut out = IndexBytes::default();
        for kv in self.index.current().index.iter() {
            let (k, v) = kv.map_err(|e| backend("counting the index", e))?;
            let e = out.by_prefix.entry(k.first().map_or('?', |b| *b as char)).or_default();
            *e = (e.0 + 1, e.1 + k.len() as u64, e.2 + v.len() as u64);
        }
        Ok(out)
    }
}

impl IndexDb {
    fn contacts_under(&self, user: &UserId, pre: Vec<u8>) -> Result<Vec<StoredContact>> {
        let mut out = Vec::new();
        for kv in self.index.scan_prefix(&pre) {
            let (k, _) = kv.map_err(|e| backend("looking up contacts", e))?;
            let parts = keys::parts(&k[pre.len() - 1..]);
            let r = RecordRef { account: parts[0].into(), collection: parts[1].into(), id: RecordId::new(parts[2]) };
            if let Some(c) = self.contact(user, &r)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn records_of<T>(&self, user: &UserId, refs: Vec<RecordRef>, pick: impl Fn(Record) -> Option<T>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            if let Some((record, _)) = self.record_at(user, &r)? {
                out.extend(pick(record));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IndexedRecord, KeyDerivation};
    use contactbridge_connector::{Checkpoint, Contact, PhoneNumber};

    fn derived(id: &str, phone: &str, email: &str) -> IndexedRecord {
        let record = Record::Contact(Contact {
            id: RecordId::new(id),
            uid: id.into(),
            phones: vec![PhoneNumber::new(phone, contactbridge_connector::PhoneKind::Work)],
            emails: vec![email.into()],
            ..Default::default()
        });
        let region = Some(Region::parse("DE").unwrap());
        IndexedRecord {
            keys: derive::secondary_keys(&record, region.as_ref()),
            record,
            handling_code: None,
            derived_with: Some(KeyDerivation { region }),
        }
    }

    fn apply(s: &SledStore, upserts: Vec<IndexedRecord>, deletions: &[&str]) {
        s.apply(&IndexBatch {
            scope: CollectionScope { user: UserId::parse("u").unwrap(), account: "a".into(), collection: "c".into() },
            upserts,
            deletions: deletions.iter().map(|d| RecordId::new(*d)).collect(),
            retained: vec![],
            rejected: vec![],
            checkpoint: Some(Checkpoint::new("x")),
            snapshot: None,
            at: Utc::now(),
        })
        .unwrap();
    }

    /// Secondary keys of user `u`, as text.
    fn secondary_keys(s: &SledStore) -> Vec<String> {
        s.index
            .current()
            .index
            .iter()
            .keys()
            .map(|k| k.unwrap())
            .filter(|k| [b'p', b'e'].contains(&k[0]))
            .map(|k| String::from_utf8_lossy(&k).replace('\0', "/"))
            .collect()
    }

    #[test]
    fn derived_keys_are_not_stored_in_the_entry_and_are_derived_again_to_remove_them() {
        let s = SledStore::temporary().unwrap();
        let u = UserId::parse("u").unwrap();
        apply(&s, vec![derived("x", "030 1234567", "A@x.example")], &[]);
        assert_eq!(s.contacts_by_phone(&u, "e:+49301234567").unwrap().len(), 1);
        assert_eq!(s.contacts_by_email(&u, "a@x.example").unwrap().len(), 1);
        let before = secondary_keys(&s);
        assert!(before.len() >= 2, "{before:?}");
        let entry = s.index.current().index.get(IndexDb::entry_key(&u, &scoped("x"))).unwrap().unwrap();
        assert!(!entry.windows(6).any(|w| w == b"+49301"), "the entry holds no key");

        // Replaced: the old number's and address's keys go, the new ones come.
        apply(&s, vec![derived("x", "040 7654321", "b@x.example")], &[]);
        assert!(s.contacts_by_phone(&u, "e:+49301234567").unwrap().is_empty());
        assert!(s.contacts_by_email(&u, "a@x.example").unwrap().is_empty());
        assert_eq!(s.contacts_by_phone(&u, "e:+49407654321").unwrap().len(), 1);
        assert!(secondary_keys(&s).iter().all(|k| !before.contains(k)), "{:?}", secondary_keys(&s));

        // Deleted: nothing is left.
        apply(&s, vec![], &["x"]);
        assert!(secondary_keys(&s).is_empty(), "{:?}", secondary_keys(&s));
    }

    fn scoped(id: &str) -> RecordRef {
        RecordRef { account: "a".into(), collection: "c".into(), id: RecordId::new(id) }
    }
}
