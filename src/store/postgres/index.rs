//! `IndexStore` on PostgreSQL: sled's key layout and record entries in
//! `index_kv`, read with the same prefix and range scans (see `sled/index.rs`
//! for the layout's reasons). A change set, its secondary keys and its
//! collection state are written in one transaction.

use super::kv::{prefix_end, Session, Table};
use super::PgStore;
use crate::model::{BusySpan, HandlingCode, UserId};
use crate::store::keys::{self, key, prefix};
use crate::store::sled::entry::{self, KeySource};
use crate::store::sled::index::{
    check_scope, parse_busy, secondary, stored_keys, MAX_OCCURRENCE_DAYS, SHORT_OCCURRENCE_HOURS,
};
use crate::store::{
    codec, ApplyStats, CollectionScope, CollectionState, IndexBatch, IndexStore, IndexedRecord, RecordRef, Result,
    StoreError, StoredContact, TimeWindow,
};
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, Record, RecordId, RecordKind};
use postgres::GenericClient;
use std::collections::{BTreeMap, HashMap, HashSet};

const T: Table = Table::Index;

fn state_key(scope: &CollectionScope) -> Vec<u8> {
    key(b'k', &[keys::user(&scope.user), &scope.account, &scope.collection])
}

fn entry_key(user: &UserId, r: &RecordRef) -> Vec<u8> {
    key(b'r', &[keys::user(user), &r.account, &r.collection, r.id.as_str()])
}

/// The record ref in the last three parts of a key.
fn tail_ref(k: &[u8]) -> Option<RecordRef> {
    let parts = keys::parts(k);
    let n = parts.len();
    (n >= 3).then(|| RecordRef {
        account: parts[n - 3].into(),
        collection: parts[n - 2].into(),
        id: RecordId::new(parts[n - 1]),
    })
}

fn read_state<C: GenericClient>(s: &mut Session<'_, C>, scope: &CollectionScope) -> Result<Option<CollectionState>> {
    s.get(T, "reading a collection state", &state_key(scope))?
        .map(|v| codec::decode("collection state", &v))
        .transpose()
}

/// Queues the removal of an entry and its secondary keys.
fn remove_entry(changes: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>, entry_key: &[u8], value: &[u8]) -> Result<()> {
    let parts = keys::parts(entry_key);
    let [user, account, collection, id] = parts[..] else {
        return Err(StoreError::Corrupt { what: "record key", reason: format!("{} parts, not 4", parts.len()) });
    };
    let r = RecordRef { account: account.into(), collection: collection.into(), id: RecordId::new(id) };
    for k in stored_keys(user, &r, value)? {
        changes.insert(k, None);
    }
    changes.insert(entry_key.to_vec(), None);
    Ok(())
}

/// The records at `refs` (those still there), in the order asked.
fn records_at<C: GenericClient>(
    s: &mut Session<'_, C>,
    user: &UserId,
    refs: &[RecordRef],
) -> Result<Vec<(RecordRef, Record, Option<HandlingCode>)>> {
    let wanted: Vec<Vec<u8>> = refs.iter().map(|r| entry_key(user, r)).collect();
    let found = s.get_many(T, "reading records", &wanted)?;
    let mut out = Vec::with_capacity(refs.len());
    for (r, k) in refs.iter().zip(&wanted) {
        if let Some(v) = found.get(k) {
            let read = entry::read(v, &r.id)?;
            out.push((r.clone(), read.record, read.code));
        }
    }
    Ok(out)
}

fn apply<C: GenericClient>(s: &mut Session<'_, C>, b: &IndexBatch) -> Result<ApplyStats> {
    let user = keys::user(&b.scope.user);
    if b.only_checkpoint() {
        // A checkpoint alone need not wait for the WAL to reach the disk.
        s.execute("relaxing a commit", "SET LOCAL synchronous_commit = off", &[])?;
    }
    // One writer per collection at a time, whichever replica it runs on.
    s.lock(&state_key(&b.scope))?;
    let mut state = read_state(s, &b.scope)?.unwrap_or_default();
    let snapshot = b.snapshot.unwrap_or_default();
    let generation = match (b.snapshot, state.open_snapshot) {
        (Some(sn), _) if sn.starts => state.generation.max(state.open_snapshot.unwrap_or(0)) + 1,
        (_, Some(open)) => open,
        _ => state.generation,
    };
    let scoped = |id: &RecordId| RecordRef {
        account: b.scope.account.clone(),
        collection: b.scope.collection.clone(),
        id: id.clone(),
    };
    let mut upserts: HashMap<&RecordId, &IndexedRecord> = HashMap::new();
    for u in &b.upserts {
        keys::check_part("record id", u.record.id().as_str()).map_err(StoreError::Invalid)?;
        upserts.insert(u.record.id(), u);
    }
    // Every entry the batch may replace, in one round trip.
    let wanted: Vec<Vec<u8>> = upserts
        .keys()
        .copied()
        .chain(b.deletions.iter())
        .chain(if b.snapshot.is_some() { b.retained.iter() } else { [].iter() })
        .map(|id| entry_key(&b.scope.user, &scoped(id)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let existing = s.get_many(T, "reading records", &wanted)?;

    let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut stats = ApplyStats::default();
    let mut touched: HashSet<&RecordId> = HashSet::new();
    for (id, u) in &upserts {
        let r = scoped(id);
        let ek = entry_key(&b.scope.user, &r);
        let old_keys = match existing.get(&ek) {
            Some(old) => stored_keys(user, &r, old)?,
            None => Vec::new(),
        };
        let mut new_keys = Vec::with_capacity(u.keys.len());
        let mut seen = HashSet::new();
        for stale in &old_keys {
            changes.insert(stale.clone(), None);
        }
        for sk in &u.keys {
            let (k, v) = secondary(user, &r, sk);
            if seen.insert(k.clone()) {
                changes.insert(k.clone(), Some(v));
                new_keys.push(k);
            }
        }
        let source = match &u.derived_with {
            Some(d) => KeySource::Derived(d.region.as_ref().map(|r| r.as_str().to_string())),
            None => KeySource::Given(new_keys),
        };
        changes.insert(ek, Some(entry::encode(generation, &u.record, u.handling_code.as_ref(), &source)));
        touched.insert(id);
        stats.upserted += 1;
    }
    if b.snapshot.is_some() {
        for id in &b.retained {
            if touched.contains(id) {
                continue;
            }
            let ek = entry_key(&b.scope.user, &scoped(id));
            if let Some(v) = existing.get(&ek) {
                changes.insert(ek, Some(entry::with_generation(v, generation)));
                touched.insert(id);
            }
        }
    }
    for id in &b.deletions {
        if upserts.contains_key(id) {
            continue;
        }
        let ek = entry_key(&b.scope.user, &scoped(id));
        if let Some(v) = existing.get(&ek) {
            remove_entry(&mut changes, &ek, v)?;
            stats.deleted += 1;
        }
        touched.insert(id);
    }
    if snapshot.starts {
        state.open_snapshot = Some(generation);
    }
    if b.snapshot.is_some() && snapshot.ends {
        let pre = prefix(b'r', &[user, &b.scope.account, &b.scope.collection]);
        for (k, v) in s.scan_prefix(T, "sweeping a collection", &pre)? {
            let id = RecordId::new(keys::parts(&k)[3]);
            if !touched.contains(&id) && entry::generation(&v)? != generation {
                remove_entry(&mut changes, &k, &v)?;
                stats.swept += 1;
            }
        }
        state.generation = generation;
        state.open_snapshot = None;
    }
    state.committed(b);
    changes.insert(state_key(&b.scope), Some(codec::encode(&state)));
    s.write(T, "applying a change set", changes)?;
    Ok(stats)
}

impl IndexStore for PgStore {
    fn apply(&self, b: &IndexBatch) -> Result<ApplyStats> {
        check_scope(&b.scope)?;
        self.with(|c| c.transaction(|s| apply(s, b)))
    }

    /// The lease check and the batch in one transaction ([`super::lease`]).
    fn apply_fenced(&self, b: &IndexBatch, fence: &crate::store::Fence) -> Result<ApplyStats> {
        check_scope(&b.scope)?;
        self.with(|c| {
            c.transaction(|s| {
                super::lease::check_fence(s, fence)?;
                apply(s, b)
            })
        })
    }

    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.with(|c| read_state(&mut c.session(), scope))
    }

    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        check_scope(scope)?;
        self.with(|c| {
            c.transaction(|s| {
                s.lock(&state_key(scope))?;
                let mut state = read_state(s, scope)?.unwrap_or_default();
                state.last_error_at = error.as_ref().map(|_| at);
                state.last_error = error;
                s.put(T, "writing a collection state", state_key(scope), codec::encode(&state))
            })
        })
    }

    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.with(|c| {
            c.session()
                .scan_prefix(T, "reading collection states", &prefix(b'k', &[keys::user(user), account]))?
                .into_iter()
                .map(|(k, v)| Ok((keys::parts(&k)[2].to_string(), codec::decode("collection state", &v)?)))
                .collect()
        })
    }

    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        let pre = prefix(b'r', &[keys::user(&scope.user), &scope.account, &scope.collection]);
        self.with(|c| {
            let mut out = HashMap::new();
            for (k, v) in c.session().scan_prefix(T, "reading versions", &pre)? {
                if let Some(version) = entry::version(&v)? {
                    out.insert(RecordId::new(keys::parts(&k).last().copied().unwrap_or_default()), version);
                }
            }
            Ok(out)
        })
    }

    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        let records = prefix(b'r', &[keys::user(user), account]);
        let states = prefix(b'k', &[keys::user(user), account]);
        self.with(|c| {
            c.transaction(|s| {
                let mut changes = BTreeMap::new();
                let mut removed = 0;
                for (k, v) in s.scan_prefix(T, "removing an account", &records)? {
                    remove_entry(&mut changes, &k, &v)?;
                    removed += 1;
                }
                for (k, _) in s.scan_prefix(T, "removing an account", &states)? {
                    changes.insert(k, None);
                }
                s.write(T, "removing an account", changes)?;
                Ok(removed)
            })
        })
    }

    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        let pre = prefix(b'r', &[keys::user(user), account]);
        self.with(|c| {
            let mut counts = HashMap::new();
            for (_, v) in c.session().scan_prefix(T, "counting records", &pre)? {
                *counts.entry(entry::kind(&v)?.as_str().to_string()).or_insert(0) += 1;
            }
            Ok(counts)
        })
    }

    fn contacts_by_phone(&self, user: &UserId, phone_key: &str) -> Result<Vec<StoredContact>> {
        keys::check_part("phone key", phone_key).map_err(StoreError::Invalid)?;
        self.contacts_under(user, prefix(b'p', &[keys::user(user), phone_key]))
    }

    fn contacts_by_phones(&self, user: &UserId, phone_keys: &[&str]) -> Result<Vec<Vec<StoredContact>>> {
        let mut out = vec![Vec::new(); phone_keys.len()];
        if phone_keys.is_empty() {
            return Ok(out);
        }
        let (mut lo, mut hi, mut tail) = (Vec::new(), Vec::new(), Vec::new());
        for k in phone_keys {
            keys::check_part("phone key", k).map_err(StoreError::Invalid)?;
            let pre = prefix(b'p', &[keys::user(user), k]);
            hi.push(prefix_end(&pre).expect("a prefix ends with a separator"));
            tail.push(i32::try_from(pre.len() + 1).unwrap_or(i32::MAX));
            lo.push(pre);
        }
        let entries = prefix(b'r', &[keys::user(user)]);
        let rows =
            self.with(|c| c.session().entries_via_many("looking up contacts by phone", &lo, &hi, &tail, &entries))?;
        for (i, k, v) in rows {
            let Some(at) = tail_ref(&k) else { continue };
            let read = entry::read(&v, &at.id)?;
            if let (Record::Contact(contact), Some(list)) = (read.record, out.get_mut(i)) {
                list.push(StoredContact { at, contact, handling_code: read.code });
            }
        }
        Ok(out)
    }

    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        keys::check_part("email", email).map_err(StoreError::Invalid)?;
        self.contacts_under(user, prefix(b'e', &[keys::user(user), email]))
    }

    fn contact(&self, user: &UserId, r: &RecordRef) -> Result<Option<StoredContact>> {
        let found = self.with(|c| records_at(&mut c.session(), user, std::slice::from_ref(r)))?;
        Ok(found.into_iter().find_map(|(at, record, handling_code)| match record {
            Record::Contact(contact) => Some(StoredContact { at, contact, handling_code }),
            _ => None,
        }))
    }

    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        // In pages, so a directory search that stops early reads little.
        const PAGE: i64 = 500;
        let pre = prefix(b'r', &[keys::user(user)]);
        let end = prefix_end(&pre);
        let mut from = pre.clone();
        loop {
            let page =
                self.with(|c| c.session().range(T, "scanning contacts", &from, end.as_deref(), false, Some(PAGE)))?;
            let full = page.len() as i64 == PAGE;
            for (k, v) in &page {
                if entry::kind(v)? != RecordKind::Contact {
                    continue;
                }
                let Some(at) = tail_ref(k) else { continue };
                let read = entry::read(v, &at.id)?;
                let Record::Contact(contact) = read.record else { continue };
                if !visit(StoredContact { at, contact, handling_code: read.code }) {
                    return Ok(());
                }
            }
            match page.last() {
                Some((k, _)) if full => {
                    from = k.clone();
                    from.push(0);
                }
                _ => return Ok(()),
            }
        }
    }

    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        let bounds = |tag: u8, back: Duration| {
            let pre = prefix(tag, &[keys::user(user)]);
            let from = at.checked_sub_signed(back).unwrap_or(DateTime::<Utc>::MIN_UTC);
            let lo = [pre.as_slice(), keys::time(from).as_bytes()].concat();
            let hi = [pre.as_slice(), keys::time(at).as_bytes(), &[0xff]].concat();
            (lo, hi)
        };
        let short = bounds(b't', Duration::hours(SHORT_OCCURRENCE_HOURS));
        let long = bounds(b'T', Duration::days(MAX_OCCURRENCE_DAYS));
        self.with(|c| {
            let mut s = c.session();
            let found: Vec<(Vec<u8>, Vec<u8>)> = s
                .query(
                    "reading the calendar",
                    "SELECT k, v FROM index_kv WHERE (k >= $1 AND k < $2) OR (k >= $3 AND k < $4)",
                    &[&short.0, &short.1, &long.0, &long.1],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut spans = Vec::new();
            for (k, v) in found {
                let mut value = v.split(|b| *b == 0);
                let end = value.next().and_then(|e| keys::parse_time(std::str::from_utf8(e).ok()?));
                let busy = parse_busy(value.next().unwrap_or(b"b"));
                let parts = keys::parts(&k);
                let start = keys::parse_time(parts[1]);
                let (Some(start), Some(end)) = (start, end) else { continue };
                if start <= at && at < end {
                    if let Some(r) = tail_ref(&k) {
                        spans.push((r, BusySpan { start, end, busy, subject: String::new() }));
                    }
                }
            }
            let refs: Vec<RecordRef> = spans.iter().map(|(r, _)| r.clone()).collect();
            let subjects: HashMap<RecordRef, String> = records_at(&mut s, user, &refs)?
                .into_iter()
                .filter_map(|(r, record, _)| match record {
                    Record::Event(e) => Some((r, e.subject)),
                    _ => None,
                })
                .collect();
            Ok(spans
                .into_iter()
                .map(|(r, mut span)| {
                    span.subject = subjects.get(&r).cloned().unwrap_or_default();
                    span
                })
                .collect())
        })
    }

    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        let pre = prefix(b'o', &[keys::user(user)]);
        let hi = prefix_end(&pre).expect("a prefix ends with a separator");
        let entries = prefix(b'r', &[keys::user(user)]);
        let rows = self.with(|c| {
            c.session().entries_via("reading out-of-office", &pre, &hi, &entries, pre.len(), false, i64::MAX)
        })?;
        let mut out = Vec::new();
        for (k, v) in rows {
            let Some(at) = tail_ref(&k) else { continue };
            if let Record::OutOfOffice(o) = entry::read(&v, &at.id)?.record {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        let pre = prefix(b'm', &[keys::user(user), email]);
        self.records_in_window(user, pre, window, limit, |r| match r {
            Record::Mail(m) => Some(m),
            _ => None,
        })
    }

    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        let pre = prefix(b'a', &[keys::user(user), email]);
        let starts_inside =
            |e: &CalendarEvent| e.occurrences.iter().any(|o| window.from <= o.start && o.start < window.to);
        self.with(|c| {
            let mut s = c.session();
            let refs = events_spanning(&mut s, pre, window, limit)?;
            Ok(records_at(&mut s, user, &refs)?
                .into_iter()
                .filter_map(|(_, r, _)| match r {
                    Record::Event(e) if starts_inside(&e) => Some(e),
                    _ => None,
                })
                .collect())
        })
    }

    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        let pre = prefix(b'd', &[keys::user(user), person]);
        self.records_in_window(user, pre, window, limit, |r| match r {
            Record::Document(d) => Some(d),
            _ => None,
        })
    }
}

impl PgStore {
    fn contacts_under(&self, user: &UserId, pre: Vec<u8>) -> Result<Vec<StoredContact>> {
        let hi = prefix_end(&pre).expect("a prefix ends with a separator");
        let entries = prefix(b'r', &[keys::user(user)]);
        let rows = self.with(|c| {
            c.session().entries_via("looking up contacts", &pre, &hi, &entries, pre.len(), false, i64::MAX)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let Some(at) = tail_ref(&k) else { continue };
            let read = entry::read(&v, &at.id)?;
            if let Record::Contact(contact) = read.record {
                out.push(StoredContact { at, contact, handling_code: read.code });
            }
        }
        Ok(out)
    }

    /// Records under a prefix whose next key part is a time, newest first in `window`, up to `limit` refs.
    fn records_in_window<T2: Send>(
        &self,
        user: &UserId,
        pre: Vec<u8>,
        window: TimeWindow,
        limit: usize,
        pick: impl Fn(Record) -> Option<T2> + Send + Sync,
    ) -> Result<Vec<T2>> {
        if window.from >= window.to || limit == 0 {
            return Ok(Vec::new());
        }
        let lo = [pre.as_slice(), keys::time(window.from).as_bytes()].concat();
        let hi = [pre.as_slice(), keys::time(window.to).as_bytes()].concat();
        // Each record has one key under such a prefix (its date): no ref repeats.
        let entries = prefix(b'r', &[keys::user(user)]);
        let tail = pre.len() + keys::time(window.from).len() + 1;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            self.with(|c| c.session().entries_via("scanning the index", &lo, &hi, &entries, tail, true, limit))?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let Some(at) = tail_ref(&k) else { continue };
            out.extend(pick(entry::read(&v, &at.id)?.record));
        }
        Ok(out)
    }
}

/// See `sled/index.rs`: events under an attendee prefix whose occurrences span into `window`.
fn events_spanning<C: GenericClient>(
    s: &mut Session<'_, C>,
    pre: Vec<u8>,
    window: TimeWindow,
    limit: usize,
) -> Result<Vec<RecordRef>> {
    if window.from >= window.to || limit == 0 {
        return Ok(Vec::new());
    }
    let lo = [pre.as_slice(), keys::time(window.from).as_bytes()].concat();
    let end = prefix_end(&pre);
    let mut scan = keys::SpanningScan::new(window.to, limit);
    let mut out = Vec::new();
    for (k, v) in s.range(T, "scanning the index", &lo, end.as_deref(), true, None)? {
        match scan.next(&k, &v) {
            keys::Scan::Skip => continue,
            keys::Scan::Take(r) => out.push(r),
            keys::Scan::Stop => break,
        }
    }
    Ok(out)
}
