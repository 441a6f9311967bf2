//! Our own delta page loop: one request per page, `@odata.nextLink` until `@odata.deltaLink`,
//! each page one change set with its checkpoint, full resync (snapshot) on expired state.

use crate::client::{prefer, GraphHttp, MakeRequest};
use crate::map::Item;
use chrono::{DateTime, Utc};
use contactbridge_connector::{ChangeSet, ChangeSink, Checkpoint, Error, ErrorKind, Rejected, Snapshot};
use graph_rs_sdk::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The checkpoint of a delta collection: where to continue, and whether that position is
/// inside a full listing (first sync or resync) that has not reached its deltaLink yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    /// `next_link` belongs to a snapshot: the pages after it complete that listing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// The start of the time window the state was created for (calendar window, mail lookback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<DateTime<Utc>>,
}

impl DeltaState {
    pub fn decode(checkpoint: Option<&Checkpoint>) -> Option<DeltaState> {
        let cp = checkpoint?;
        match serde_json::from_slice::<DeltaState>(cp.as_bytes()) {
            Ok(s) if s.delta_link.is_some() || s.next_link.is_some() => Some(s),
            _ => {
                tracing::warn!("unreadable Graph checkpoint; starting a full resync");
                None
            }
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// One delta collection to bring up to date.
pub struct DeltaJob<'a> {
    pub mailbox: &'a str,
    /// For logs and errors: "contacts of a@b".
    pub what: &'a str,
    pub page_size: u32,
    /// The first request of a full listing, with its query options.
    pub initial: MakeRequest<'a>,
    /// Stored with the state (see [`DeltaState::window_start`]).
    pub window_start: Option<DateTime<Utc>>,
    /// Whether the stored state must be dropped for a new snapshot (the window rolled).
    pub stale: &'a (dyn Fn(&DeltaState) -> bool + Send + Sync),
    pub map: &'a (dyn Fn(&Value) -> Item + Send + Sync),
    /// Where throttling waits are counted.
    pub throttle: &'a contactbridge_connector::ThrottleTally,
}

enum Next<'a> {
    Initial,
    Link(&'a str),
}

/// Runs the page loop from `since` until a deltaLink, delivering one change set per page.
pub async fn run(
    http: &GraphHttp,
    job: DeltaJob<'_>,
    since: Option<Checkpoint>,
    sink: &mut dyn ChangeSink,
) -> Result<(), Error> {
    let mut state = DeltaState::decode(since.as_ref());
    if let Some(s) = &state {
        if !(s.snapshot && s.next_link.is_some()) && (job.stale)(s) {
            tracing::info!(what = job.what, "the sync window rolled; starting a new snapshot");
            state = None;
        }
    }
    // (link to fetch, inside a snapshot, this page starts it)
    let (mut link, mut in_snapshot, mut starts, mut window_start) = match state {
        None => (None, true, true, job.window_start),
        Some(s) => match (s.next_link, s.delta_link) {
            (Some(next), _) => (Some(next), s.snapshot, false, s.window_start),
            (None, Some(delta)) => (Some(delta), false, false, s.window_start),
            (None, None) => (None, true, true, job.window_start),
        },
    };
    let mut restarted = false;
    loop {
        let page = {
            let next = match link.as_deref() {
                Some(l) => Next::Link(l),
                None => Next::Initial,
            };
            fetch(http, &job, next).await
        };
        let page = match page {
            Err(e) if e.kind == ErrorKind::Gone && !restarted => {
                tracing::warn!(what = job.what, error = %e, "delta state expired; full resync");
                restarted = true;
                link = None;
                in_snapshot = true;
                starts = true;
                window_start = job.window_start;
                continue;
            }
            other => other?,
        };
        let mut changes = ChangeSet::default();
        for item in &page.items {
            match (job.map)(item) {
                Item::Upsert(r) => changes.upserts.push(r),
                Item::Delete(id) => changes.deletions.push(id),
                Item::Skip => {}
                Item::Reject { id, reason } => changes.rejected.push(Rejected { id, reason }),
            }
        }
        let done = match (page.next_link, page.delta_link) {
            (Some(next), _) => {
                http.follow(&next)?;
                let s =
                    DeltaState { delta_link: None, next_link: Some(next.clone()), snapshot: in_snapshot, window_start };
                changes.checkpoint = Some(s.checkpoint());
                changes.snapshot = in_snapshot.then_some(Snapshot { starts, ends: false });
                link = Some(next);
                false
            }
            (None, Some(delta)) => {
                http.follow(&delta)?;
                let s = DeltaState { delta_link: Some(delta), next_link: None, snapshot: false, window_start };
                changes.checkpoint = Some(s.checkpoint());
                changes.snapshot = in_snapshot.then_some(Snapshot { starts, ends: true });
                true
            }
            (None, None) => {
                return Err(Error::invalid_data(format!(
                    "{}: a delta page with neither nextLink nor deltaLink",
                    job.what
                )))
            }
        };
        starts = false;
        sink.apply(changes).await?;
        if done {
            return Ok(());
        }
    }
}

async fn fetch(http: &GraphHttp, job: &DeltaJob<'_>, next: Next<'_>) -> Result<crate::client::Page, Error> {
    let prefer_value = prefer(job.page_size);
    match next {
        Next::Initial => {
            let make = |g: &graph_rs_sdk::GraphClient| {
                (job.initial)(g).header(reqwest::header::HeaderName::from_static("prefer"), prefer_value.clone())
            };
            http.page_counting(job.mailbox, job.what, &make, job.throttle).await
        }
        Next::Link(link) => {
            let url = http.follow(link)?;
            let make = |g: &graph_rs_sdk::GraphClient| {
                GraphHttp::custom(g, Method::GET, &url, None)
                    .header(reqwest::header::HeaderName::from_static("prefer"), prefer_value.clone())
            };
            http.page_counting(job.mailbox, job.what, &make, job.throttle).await
        }
    }
}
