//! The call history.

use super::support::*;
use super::Factory;
use crate::model::{CallEvent, CallEventKind, CallId};
use crate::store::TimeWindow;

/// A call reads back as soon as `put_call` returns; writing it again
/// replaces it (no duplicate in the lists).
pub fn calls_round_trip_and_an_update_replaces(new: Factory) {
    let s = new();
    assert_eq!(s.call(&CallId("c1".into())).unwrap(), None);
    let mut c1 = call("c1", "alice", "+491", 1);
    c1.tsps_call_id = Some("pbx-42".into());
    s.put_call(&c1).unwrap();
    assert_eq!(s.call(&CallId("c1".into())).unwrap(), Some(c1.clone()));
    c1.events.push(CallEvent { at: t(1), kind: CallEventKind::Answered, by: None });
    s.put_call(&c1).unwrap();
    assert_eq!(s.call(&CallId("c1".into())).unwrap().unwrap().events.len(), 1);
    assert_eq!(s.calls(&user("alice"), TimeWindow::all(), 10).unwrap().len(), 1, "update does not duplicate");
    assert_eq!(s.calls_from(&user("alice"), "e:+491", TimeWindow::all(), 10).unwrap()[0].events.len(), 1);
}

/// A user's calls in `[from, to)`, newest first, at most `limit`.
pub fn calls_are_listed_newest_first_in_their_window_within_the_limit(new: Factory) {
    let s = new();
    for (id, h) in [("c1", 1), ("c3", 3), ("c2", 2), ("c4", 4)] {
        s.put_call(&call(id, "alice", "+491", h)).unwrap();
    }
    let u = user("alice");
    assert_eq!(call_ids(s.calls(&u, TimeWindow::all(), 10).unwrap()), ["c4", "c3", "c2", "c1"]);
    assert_eq!(call_ids(s.calls(&u, TimeWindow::all(), 2).unwrap()), ["c4", "c3"]);
    assert_eq!(call_ids(s.calls(&u, TimeWindow { from: t(2), to: t(4) }, 10).unwrap()), ["c3", "c2"]);
    assert!(s.calls(&u, TimeWindow::all(), 0).unwrap().is_empty());
    assert_eq!(call_ids(s.calls_from(&u, "e:+491", TimeWindow { from: t(2), to: t(4) }, 1).unwrap()), ["c3"]);
}

/// Calls by caller are per user and per caller.
pub fn calls_by_caller_are_per_user_and_caller(new: Factory) {
    let s = new();
    s.put_call(&call("c1", "alice", "+491", 1)).unwrap();
    s.put_call(&call("c2", "alice", "+492", 2)).unwrap();
    s.put_call(&call("c3", "alice", "+491", 3)).unwrap();
    s.put_call(&call("c4", "bob", "+491", 4)).unwrap();
    let mut withheld = call("c5", "alice", "", 5);
    withheld.caller_key = None;
    s.put_call(&withheld).unwrap();
    assert_eq!(call_ids(s.calls(&user("alice"), TimeWindow::all(), 10).unwrap()), ["c5", "c3", "c2", "c1"]);
    assert_eq!(call_ids(s.calls_from(&user("alice"), "e:+491", TimeWindow::all(), 10).unwrap()), ["c3", "c1"]);
    assert_eq!(call_ids(s.calls_from(&user("bob"), "e:+491", TimeWindow::all(), 10).unwrap()), ["c4"]);
    assert!(s.calls_from(&user("carol"), "e:+491", TimeWindow::all(), 10).unwrap().is_empty());
}
