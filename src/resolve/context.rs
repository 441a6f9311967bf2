//! The caller's context for the notification window: mail both ways, events
//! with the caller, documents that reference the caller, and call history,
//! within the user's criteria.

use crate::calls::CallRecord;
use crate::store::{Store, StoredContact, TimeWindow};
use crate::sync::indexer::clean;
use crate::user::{ContextCriteria, UserId};
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailDirection, MailMessage, RecordId};
use serde::Serialize;
use std::collections::HashSet;

/// Whom the context is about: a contact (by its emails and name) and/or a number.
#[derive(Debug, Clone, Default)]
pub struct ContextSubject {
    pub contact: Option<StoredContact>,
    /// The caller's number key (for call history).
    pub caller_key: Option<String>,
}

/// What to fetch: the window and how many of each kind.
#[derive(Debug, Clone)]
pub struct ContextQuery {
    pub now: DateTime<Utc>,
    pub criteria: ContextCriteria,
}

impl ContextQuery {
    /// From `days_back` before `now` to `days_ahead` after it (each at most
    /// [`ContextCriteria::MAX_DAYS`]), cut at the first and last representable times.
    fn window(&self) -> TimeWindow {
        let days = |d: u32| Duration::days(d.min(ContextCriteria::MAX_DAYS).into());
        TimeWindow {
            from: self.now.checked_sub_signed(days(self.criteria.days_back)).unwrap_or(DateTime::<Utc>::MIN_UTC),
            to: self.now.checked_add_signed(days(self.criteria.days_ahead)).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// The caller's context.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallerContext {
    /// Mail the user received from the caller, newest first.
    pub mail_received: Vec<MailMessage>,
    /// Mail the user sent to the caller, newest first.
    pub mail_sent: Vec<MailMessage>,
    /// Events with the caller as attendee or organizer, newest first.
    pub events: Vec<CalendarEvent>,
    pub documents: Vec<Document>,
    /// Calls from this caller, newest first.
    pub calls: Vec<CallRecord>,
}

/// Fetches the context from the index. Reads only local data.
pub fn fetch(
    store: &dyn Store,
    user: &UserId,
    subject: &ContextSubject,
    q: &ContextQuery,
) -> crate::store::Result<CallerContext> {
    let window = q.window();
    let c = &q.criteria.clamped();
    let emails: Vec<String> =
        subject.contact.iter().flat_map(|s| s.contact.emails.iter()).filter_map(|e| clean(e)).collect();

    let mut mail = Vec::new();
    for e in &emails {
        // Up to max_mail of each direction per address.
        mail.extend(store.mail_with(user, e, window, 2 * c.max_mail as usize)?);
    }
    dedupe_sort(&mut mail, |m| (&m.id, m.date));
    let (mut mail_received, mut mail_sent): (Vec<_>, Vec<_>) =
        mail.into_iter().partition(|m| m.direction == MailDirection::Received);
    mail_received.truncate(c.max_mail as usize);
    mail_sent.truncate(c.max_mail as usize);

    let mut events = Vec::new();
    for e in &emails {
        events.extend(store.events_with(user, e, window, c.max_events as usize)?);
    }
    let last_start = |e: &CalendarEvent| {
        e.occurrences.iter().map(|o| o.start).filter(|s| *s < window.to).max().unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    dedupe_sort(&mut events, |e| (&e.id, last_start(e)));
    events.truncate(c.max_events as usize);

    let mut people = emails.clone();
    if let Some(s) = &subject.contact {
        people.extend(clean(&s.contact.best_name()));
    }
    let mut documents = Vec::new();
    for p in &people {
        documents.extend(store.documents_for(user, p, window, c.max_documents as usize)?);
    }
    dedupe_sort(&mut documents, |d| (&d.id, d.modified));
    documents.truncate(c.max_documents as usize);

    let calls = match &subject.caller_key {
        Some(k) => store.calls_from(user, k, window, c.max_calls as usize)?,
        None => Vec::new(),
    };
    Ok(CallerContext { mail_received, mail_sent, events, documents, calls })
}

/// Newest first, each id once.
fn dedupe_sort<T>(items: &mut Vec<T>, key: impl Fn(&T) -> (&RecordId, DateTime<Utc>)) {
    items.sort_by_key(|i| std::cmp::Reverse(key(i).1));
    let mut seen = HashSet::new();
    items.retain(|i| seen.insert(key(i).0.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_window_at_the_ends_of_time_does_not_overflow() {
        let store = crate::store::SledStore::temporary().unwrap();
        let user = UserId::parse("old").unwrap();
        // Criteria over their caps, as profiles stored before the caps may hold: fetch clamps them.
        let criteria = ContextCriteria {
            days_back: 4_000_000_000,
            days_ahead: 4_000_000_000,
            max_calls: u32::MAX,
            ..ContextCriteria::default()
        };
        for now in [Utc::now(), DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let q = ContextQuery { now, criteria: criteria.clone() };
            fetch(&store, &user, &ContextSubject::default(), &q).unwrap();
        }
    }
}
