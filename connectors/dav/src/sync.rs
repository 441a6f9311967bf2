//! Syncing one collection: incremental (sync-collection, or a ctag check) when the
//! checkpoint allows, otherwise a full listing streamed in multiget batches, each
//! one change set with the position to resume from.
//!
//! With a sync token, the probe [`crate::probe`] picks goes first: the ctag PROPFIND
//! (ending the sync if the ctag is the one stored), the REPORT, or both to measure
//! them. The ctag stored is always one read before the REPORT whose token is stored,
//! so a change after that REPORT moves it; after a REPORT-only sync that applied
//! changes it is dropped (an old ctag could come back and hide a change). Every
//! sync commits its checkpoint with the updated figures (one small store write).

use crate::checkpoint::{DavCheckpoint, Resume};
use crate::discovery::Dav;
use crate::error::dav_error;
use crate::http::TransportError;
use crate::probe::{check_tag, Probe, ProbeStats};
use crate::DavKind;
use chrono::NaiveDate;
use contactbridge_connector::{
    ChangeSet, ChangeSink, Collection, Error, KnownVersions, NoKnownVersions, Record, RecordId, Rejected, Snapshot,
    SyncRequest,
};
use contactbridge_formats::Window;
use futures::{StreamExt as _, TryStreamExt as _};
use libdav::caldav::GetCalendarResources;
use libdav::carddav::GetAddressBookResources;
use libdav::dav::{GetProperties, ListResources, SyncCollection, WebDavError};
use libdav::{names, FetchedResource, PropertyName};
use std::time::Instant;

/// `getctag` from the calendarserver.org namespace (Radicale, SabreDAV, iCloud...).
pub(crate) static GETCTAG: PropertyName<'static, 'static> =
    PropertyName::new("http://calendarserver.org/ns/", "getctag");

/// What the ctag probe asks for: getctag, else the collection's etag, else its sync-token.
pub(crate) static CTAG_PROPERTIES: [&PropertyName<'static, 'static>; 3] =
    [&GETCTAG, &names::GETETAG, &names::SYNC_TOKEN];

/// Multiget requests kept in flight while earlier batches are being applied.
const PREFETCH: usize = 2;

/// CalDAV: days after which unchanged events are fetched and expanded again.
const REEXPAND_AFTER_DAYS: i64 = 7;

/// What a sync of one collection needs, borrowed from the connector.
pub(crate) struct CollectionSync<'a> {
    pub dav: &'a Dav,
    pub kind: DavKind,
    pub batch_size: usize,
    pub use_sync_collection: bool,
    pub window: Window,
    /// Today (UTC), for the re-expansion of recurring events.
    pub today: NaiveDate,
    pub collection: &'a Collection,
}

/// A full listing: every item's href and etag, sorted by href, and the state to
/// store once all of it has been applied.
struct Listing {
    items: Vec<(String, Option<String>)>,
    sync_token: Option<String>,
    ctag: Option<String>,
}

/// A contiguous run of the sorted listing, applied as one change set.
struct Batch {
    fetch: Vec<String>,
    retained: Vec<RecordId>,
    last: String,
}

impl CollectionSync<'_> {
    fn href(&self) -> &str {
        &self.collection.id
    }

    /// A completed checkpoint, with the context URL it was synced through (the next
    /// sync goes there without asking `.well-known` again).
    fn encode(&self, state: DavCheckpoint) -> contactbridge_connector::Checkpoint {
        DavCheckpoint { via: Some(self.dav.base_url().to_string()), ..state }.encode()
    }

    pub(crate) async fn run(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        let state = match &request.since {
            Some(checkpoint) => match DavCheckpoint::decode(checkpoint) {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(collection = %self.href(), error = %e, "starting over with a full listing");
                    DavCheckpoint::default()
                }
            },
            None if self.kind == DavKind::CardDav => return self.first_listing(request.known, sink).await,
            None => DavCheckpoint::default(),
        };
        if let Some(resume) = state.snapshot {
            return self.full_listing(request.known, sink, Some(resume), state.expanded_on).await;
        }
        if self.expansion_is_stale(state.expanded_on) {
            tracing::info!(collection = %self.href(), "re-expanding recurring events: full listing");
            return self.full_listing(request.known, sink, None, None).await;
        }
        if let (Some(token), true) = (&state.sync_token, self.use_sync_collection) {
            return self.incremental(token, &state, request.known, sink).await;
        }
        if let Some(ctag) = &state.ctag {
            let current = self.ctag().await?;
            if current.as_deref() == Some(ctag.as_str()) {
                tracing::debug!(collection = %self.href(), "ctag unchanged");
                return Ok(());
            }
        }
        self.full_listing(request.known, sink, None, state.expanded_on).await
    }

    /// CalDAV: whether the stored expansions of unchanged events are too old for
    /// the current window (or were never made), so everything must be fetched again.
    fn expansion_is_stale(&self, expanded_on: Option<NaiveDate>) -> bool {
        match (self.kind, expanded_on) {
            (DavKind::CardDav, _) => false,
            (DavKind::CalDav, None) => true,
            (DavKind::CalDav, Some(date)) => (self.today - date).num_days() >= REEXPAND_AFTER_DAYS,
        }
    }

    /// With a sync token: the probe [`ProbeStats::next`] picks (the ctag first, the
    /// REPORT, or both to measure them), then what changed is fetched and what went
    /// away deleted. The figures go into the checkpoint of every sync.
    async fn incremental(
        &self,
        token: &str,
        state: &DavCheckpoint,
        known: &dyn KnownVersions,
        sink: &mut dyn ChangeSink,
    ) -> Result<(), Error> {
        let probe = ProbeStats::next(state.probe.as_ref(), state.ctag.is_some());
        let (mut ctag, mut ctag_time, mut ctag_unchanged) = (state.ctag.clone(), None, false);
        if probe != Probe::Report {
            let started = Instant::now();
            let current = self.ctag().await?;
            ctag_time = Some(started.elapsed());
            ctag_unchanged = current.is_some() && current == state.ctag;
            if probe == Probe::Ctag && ctag_unchanged {
                tracing::debug!(collection = %self.href(), "ctag unchanged");
                let stats = ProbeStats::after(state.probe, probe, ctag_time, None, false);
                let done = self.encode(state.clone().with_probe(Some(stats)));
                return sink.apply(ChangeSet { checkpoint: Some(done), ..Default::default() }).await;
            }
            // Taken before the REPORT: a change after it moves the ctag again.
            ctag = current;
        }
        let started = Instant::now();
        let response = match self.dav.request(SyncCollection::new(self.href()).with_sync_token(token)).await {
            Ok(response) => response,
            Err(e) if token_rejected(&e) => {
                tracing::info!(collection = %self.href(), error = %e, "sync token rejected: full listing");
                return self.full_listing(known, sink, None, state.expanded_on).await;
            }
            Err(e) => return Err(dav_error(&format!("sync-collection of {}", self.href()), e)),
        };
        let report_time = started.elapsed();
        check_tag("sync token", self.href(), &response.new_sync_token)?;
        let mut changed: Vec<String> = response
            .changed
            .into_iter()
            .filter(|r| !r.resource_type.is_collection)
            // Our own write-back comes back with the etag we already hold.
            .filter(|r| r.etag.is_none() || known.version(&RecordId::new(&r.href)) != r.etag)
            .map(|r| r.href)
            .collect();
        changed.sort();
        changed.dedup();
        let deletions: Vec<RecordId> = response.deleted.into_iter().map(RecordId::new).collect();
        let found = !changed.is_empty() || !deletions.is_empty();
        let mut stats = ProbeStats::after(
            state.probe,
            probe,
            ctag_time,
            Some(report_time),
            found || response.new_sync_token != token,
        );
        if probe == Probe::Both && ctag_unchanged && found {
            tracing::warn!(collection = %self.href(), "the ctag stayed the same while items changed: not trusting it first");
            stats.ctag_missed_a_change();
        }
        if probe == Probe::Report && found {
            // Older than what was just applied: it could come back (ABA) and hide a change.
            ctag = None;
        }
        tracing::debug!(collection = %self.href(), ?probe, ?ctag_time, ?report_time, "probed");
        let done = self.encode(
            DavCheckpoint::completed(Some(response.new_sync_token.clone()), ctag)
                .expanded_on(state.expanded_on)
                .with_probe(Some(stats)),
        );
        if !found {
            return sink.apply(ChangeSet { checkpoint: Some(done), ..Default::default() }).await;
        }
        tracing::debug!(collection = %self.href(), changed = changed.len(), deleted = deletions.len(), "incremental");
        if changed.is_empty() {
            return sink.apply(ChangeSet { deletions, checkpoint: Some(done), ..Default::default() }).await;
        }
        let chunks: Vec<Vec<String>> = changed.chunks(self.batch_size.max(1)).map(<[String]>::to_vec).collect();
        let total = chunks.len();
        let mut deletions = Some(deletions);
        let mut fetched = futures::stream::iter(chunks.into_iter().map(|hrefs| async move {
            let resources = self.fetch(&hrefs).await?;
            Ok::<_, Error>((hrefs, resources))
        }))
        .buffered(PREFETCH);
        let mut index = 0;
        while let Some((hrefs, resources)) = fetched.try_next().await? {
            index += 1;
            let (upserts, rejected) = self.to_records(&hrefs, resources);
            let changes = ChangeSet {
                upserts,
                rejected,
                deletions: deletions.take().unwrap_or_default(),
                // Earlier batches keep the old token: re-applying them is harmless.
                checkpoint: (index == total).then(|| done.clone()),
                ..Default::default()
            };
            sink.apply(changes).await?;
        }
        Ok(())
    }

    /// Lists the whole collection and applies it as one snapshot in batches.
    /// `expanded_on` is the previous checkpoint's (kept unless everything is fetched).
    ///
    /// A resumed listing (`resume`: a sync cut off inside one) lists again and starts a new
    /// snapshot with the sync token and ctag taken now, so that it ends exact: what changed,
    /// appeared or went away at the source in between is fetched or swept like in a first
    /// listing. It still makes progress: what the cut-off run committed is in `known` with
    /// its current etag, so it rides along as retained and is not fetched again.
    async fn full_listing(
        &self,
        known: &dyn KnownVersions,
        sink: &mut dyn ChangeSink,
        resume: Option<Resume>,
        expanded_on: Option<NaiveDate>,
    ) -> Result<(), Error> {
        let listing = self.list().await?;
        let resuming = resume.is_some();
        let resume = match resume {
            Some(cut) => Resume {
                done_upto: None,
                end_token: listing.sync_token,
                end_ctag: listing.ctag,
                refetch: cut.refetch,
                expanded_on: cut.expanded_on,
                // Re-expanding: what the cut-off runs fetched needs no second fetch.
                fetched_upto: cut.refetch.then(|| cut.done_upto.max(cut.fetched_upto)).flatten(),
            },
            None => {
                let refetch = self.expansion_is_stale(expanded_on);
                Resume {
                    done_upto: None,
                    end_token: listing.sync_token,
                    end_ctag: listing.ctag,
                    refetch,
                    expanded_on: if refetch { Some(self.today) } else { expanded_on },
                    fetched_upto: None,
                }
            }
        };
        let batches = self.plan(listing.items, &resume, known);
        tracing::debug!(collection = %self.href(), batches = batches.len(), resuming, "full listing");
        let done = self.encode(
            DavCheckpoint::completed(resume.end_token.clone(), resume.end_ctag.clone()).expanded_on(resume.expanded_on),
        );
        if batches.is_empty() {
            let snapshot = Snapshot::WHOLE;
            return sink
                .apply(ChangeSet { checkpoint: Some(done), snapshot: Some(snapshot), ..Default::default() })
                .await;
        }
        let total = batches.len();
        let mut fetched = futures::stream::iter(batches.into_iter().map(|batch| async move {
            let resources = if batch.fetch.is_empty() { Vec::new() } else { self.fetch(&batch.fetch).await? };
            Ok::<_, Error>((batch, resources))
        }))
        .buffered(PREFETCH);
        let mut index = 0;
        while let Some((batch, resources)) = fetched.try_next().await? {
            let (upserts, rejected) = self.to_records(&batch.fetch, resources);
            let last = index + 1 == total;
            let checkpoint = if last {
                done.clone()
            } else {
                DavCheckpoint::resume(Resume { done_upto: Some(batch.last), ..resume.clone() }).encode()
            };
            let snapshot = Snapshot { starts: index == 0, ends: last };
            let changes = ChangeSet {
                upserts,
                rejected,
                retained: batch.retained,
                checkpoint: Some(checkpoint),
                snapshot: Some(snapshot),
                ..Default::default()
            };
            sink.apply(changes).await?;
            index += 1;
        }
        Ok(())
    }

    /// A first sync of an address book: the ctag and sync token, then every card in one
    /// `addressbook-query` (see `query.rs`), applied as one snapshot in batches of
    /// `batch_size`, each with the position to resume from (a resumed sync lists
    /// again and keeps what was committed). A server that refuses the query, or
    /// answers it with nothing, gets the full listing.
    async fn first_listing(&self, known: &dyn KnownVersions, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        // Taken before the query: what changes after it shows in the next sync.
        let (ctag, sync_token) = self.tags().await?;
        let sync_token = sync_token.filter(|_| self.use_sync_collection);
        let resources = match self.dav.request(crate::query::AllCards::new(self.href())).await {
            Ok(response) => response.resources,
            Err(e) if query_unsupported(&e) => {
                tracing::info!(collection = %self.href(), error = %e, "no addressbook-query: listing");
                return self.full_listing(known, sink, None, None).await;
            }
            Err(e) => return Err(dav_error(&format!("fetching every card of {}", self.href()), e)),
        };
        let collection = self.href().trim_end_matches('/');
        let mut resources: Vec<FetchedResource> =
            resources.into_iter().filter(|r| r.href.trim_end_matches('/') != collection).collect();
        if resources.is_empty() {
            return self.full_listing(known, sink, None, None).await;
        }
        resources.sort_by(|a, b| a.href.cmp(&b.href));
        resources.dedup_by(|a, b| a.href == b.href);
        let resume = Resume { end_ctag: ctag.clone(), ..Resume::default() };
        let total = resources.len().div_ceil(self.batch_size.max(1));
        let mut resources = resources.into_iter();
        for index in 0..total {
            let batch: Vec<FetchedResource> = resources.by_ref().take(self.batch_size.max(1)).collect();
            let hrefs: Vec<String> = batch.iter().map(|r| r.href.clone()).collect();
            let last = index + 1 == total;
            let checkpoint = if last {
                self.encode(DavCheckpoint::completed(sync_token.clone(), ctag.clone()))
            } else {
                DavCheckpoint::resume(Resume { done_upto: hrefs.last().cloned(), ..resume.clone() }).encode()
            };
            let (upserts, rejected) = self.to_records(&hrefs, batch);
            let changes = ChangeSet {
                upserts,
                rejected,
                checkpoint: Some(checkpoint),
                snapshot: Some(Snapshot { starts: index == 0, ends: last }),
                ..Default::default()
            };
            sink.apply(changes).await?;
        }
        Ok(())
    }

    /// Splits the sorted listing into batches of at most `batch_size` items to fetch;
    /// unchanged items (the etag `known` holds) ride along as `retained`, except, while
    /// re-expanding (`resume.refetch`), those past `resume.fetched_upto`.
    fn plan(&self, items: Vec<(String, Option<String>)>, resume: &Resume, known: &dyn KnownVersions) -> Vec<Batch> {
        let size = self.batch_size.max(1);
        let mut batches = Vec::new();
        let mut current = Batch { fetch: Vec::new(), retained: Vec::new(), last: String::new() };
        for (href, etag) in items {
            let id = RecordId::new(&href);
            let refetch = resume.refetch && resume.fetched_upto.as_deref().is_none_or(|f| href.as_str() > f);
            let known = if refetch { &NoKnownVersions as &dyn KnownVersions } else { known };
            if etag.is_some() && known.version(&id) == etag {
                current.retained.push(id);
            } else {
                current.fetch.push(href.clone());
            }
            current.last = href;
            if current.fetch.len() >= size || current.retained.len() >= size * 20 {
                batches.push(std::mem::replace(
                    &mut current,
                    Batch { fetch: Vec::new(), retained: Vec::new(), last: String::new() },
                ));
            }
        }
        if !current.last.is_empty() {
            batches.push(current);
        }
        batches
    }

    /// Every item's href and etag: sync-collection without a token where offered
    /// (it also gives the token), else PROPFIND with the ctag taken first.
    async fn list(&self) -> Result<Listing, Error> {
        if self.use_sync_collection {
            match self.dav.request(SyncCollection::new(self.href())).await {
                Ok(response) => {
                    check_tag("sync token", self.href(), &response.new_sync_token)?;
                    // Radicale also lists deleted items (404) here: ignore them.
                    let items = response
                        .changed
                        .into_iter()
                        .filter(|r| !r.resource_type.is_collection)
                        .map(|r| (r.href, r.etag))
                        .collect();
                    return Ok(Listing { items: sorted(items), sync_token: Some(response.new_sync_token), ctag: None });
                }
                Err(e) if sync_unsupported(&e) => {
                    tracing::info!(collection = %self.href(), error = %e, "no sync-collection: using ctag and etags")
                }
                Err(e) => return Err(dav_error(&format!("listing {}", self.href()), e)),
            }
        }
        let ctag = self.ctag().await?;
        let response = self
            .dav
            .request(ListResources::new(self.href()))
            .await
            .map_err(|e| dav_error(&format!("listing {}", self.href()), e))?;
        let items = response
            .resources
            .into_iter()
            .filter(|r| !r.resource_type.is_collection && r.status.is_none_or(|s| s.is_success()))
            .map(|r| (r.href, r.etag))
            .collect();
        Ok(Listing { items: sorted(items), sync_token: None, ctag })
    }

    /// The collection's change tag: getctag, else its etag, else its sync-token property.
    async fn ctag(&self) -> Result<Option<String>, Error> {
        Ok(self.tags().await?.0)
    }

    /// One depth-0 PROPFIND: the change tag (as [`Self::ctag`]) and the `DAV:sync-token`
    /// property (RFC 6578 §4), valid for sync-collection from this moment on.
    async fn tags(&self) -> Result<(Option<String>, Option<String>), Error> {
        let response = self
            .dav
            .request(GetProperties::new(self.href(), &CTAG_PROPERTIES))
            .await
            .map_err(|e| dav_error(&format!("reading the ctag of {}", self.href()), e))?;
        let mut sync_token = None;
        let mut tag = None;
        for (name, value) in response.values {
            let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
            if *name == names::SYNC_TOKEN {
                check_tag("sync token", self.href(), &value)?;
                sync_token = Some(value.clone());
            }
            if tag.is_none() {
                check_tag("ctag", self.href(), &value)?;
                tag = Some(value);
            }
        }
        Ok((tag, sync_token))
    }

    /// One multiget request.
    async fn fetch(&self, hrefs: &[String]) -> Result<Vec<FetchedResource>, Error> {
        let result = match self.kind {
            DavKind::CardDav => {
                self.dav.request(GetAddressBookResources::new(self.href()).with_hrefs(hrefs)).await.map(|r| r.resources)
            }
            DavKind::CalDav => {
                self.dav.request(GetCalendarResources::new(self.href()).with_hrefs(hrefs)).await.map(|r| r.resources)
            }
        };
        result.map_err(|e| dav_error(&format!("fetching {} items of {}", hrefs.len(), self.href()), e))
    }

    /// Parses fetched items; what cannot be parsed or fetched is rejected, with its href.
    fn to_records(&self, requested: &[String], fetched: Vec<FetchedResource>) -> (Vec<Record>, Vec<Rejected>) {
        let mut upserts = Vec::with_capacity(fetched.len());
        let mut rejected = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(fetched.len());
        for resource in fetched {
            seen.insert(resource.href.clone());
            let id = RecordId::new(&resource.href);
            match resource.content {
                Ok(content) => match parse(self.kind, id.clone(), content.etag, content.data.as_bytes(), self.window) {
                    Ok((record, note)) => {
                        if let Some(reason) = note {
                            // Kept, with what was left out of it reported.
                            tracing::debug!(href = %id, %reason, "cut");
                            rejected.push(Rejected { id, reason });
                        }
                        upserts.push(record)
                    }
                    Err(reason) => {
                        tracing::debug!(href = %id, %reason, "rejected");
                        rejected.push(Rejected { id, reason });
                    }
                },
                // Deleted since it was listed: the snapshot sweep or the next sync removes it.
                Err(status) if status.as_u16() == 404 => {}
                Err(status) => rejected.push(Rejected { id, reason: format!("the server answered {status} for it") }),
            }
        }
        for href in requested.iter().filter(|h| !seen.contains(*h)) {
            let reason = "the server listed it but did not return it when asked for it".to_string();
            rejected.push(Rejected { id: RecordId::new(href), reason });
        }
        (upserts, rejected)
    }
}

/// Parses one resource into a record, with a note when part of it was left
/// out (an event with more occurrences in the window than are kept).
pub(crate) fn parse(
    kind: DavKind,
    id: RecordId,
    etag: String,
    data: &[u8],
    window: Window,
) -> Result<(Record, Option<String>), String> {
    let version = Some(etag).filter(|e| !e.is_empty());
    match kind {
        DavKind::CardDav => contactbridge_formats::parse_vcard(id, version, data).map(|c| (Record::Contact(c), None)),
        DavKind::CalDav => contactbridge_formats::read_calendar_object(id, version, data, window)
            .map(|r| (Record::Event(r.event), r.note)),
    }
    .map_err(|e| e.reason)
}

fn sorted(mut items: Vec<(String, Option<String>)>) -> Vec<(String, Option<String>)> {
    items.sort();
    items.dedup_by(|a, b| a.0 == b.0);
    items
}

/// The server no longer accepts our sync token: Radicale answers 403 with
/// `valid-sync-token`, Xandikos 412, others 409 or 410.
fn token_rejected(error: &WebDavError<TransportError>) -> bool {
    match error {
        WebDavError::PreconditionFailed(_) => true,
        WebDavError::BadStatusCode(status) => matches!(status.as_u16(), 400 | 403 | 409 | 410 | 412),
        _ => false,
    }
}

/// The server refuses an `addressbook-query` without a filter (RFC 6352 asks for one).
fn query_unsupported(error: &WebDavError<TransportError>) -> bool {
    match error {
        WebDavError::PreconditionFailed(_) => true,
        WebDavError::BadStatusCode(status) => matches!(status.as_u16(), 400 | 403 | 405 | 409 | 412 | 415 | 422 | 501),
        _ => false,
    }
}

/// The server does not offer sync-collection (or refuses it for this collection).
fn sync_unsupported(error: &WebDavError<TransportError>) -> bool {
    match error {
        WebDavError::PreconditionFailed(_) => true,
        WebDavError::BadStatusCode(status) => matches!(status.as_u16(), 400 | 403 | 405 | 409 | 412 | 415 | 422 | 501),
        _ => false,
    }
}
