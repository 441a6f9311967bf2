//! User data: profiles, called numbers, assignments, last choices.

use super::support::*;
use super::Factory;
use crate::model::HandlingCode;
use crate::store::{AssignTarget, RecordRef, StoreError, TimeWindow};
use contactbridge_connector::RecordId;

/// A profile reads back as written and is listed.
pub fn profiles_round_trip_and_are_listed(new: Factory) {
    let s = new();
    assert_eq!(s.profile(&user("alice")).unwrap(), None);
    let mut alice = profile("alice");
    alice.display_name = "Alice".into();
    alice.region = Some("DE".into());
    alice.time_zone = "Europe/Berlin".into();
    s.put_profile(&alice, &["e:+4930111".into()]).unwrap();
    s.put_profile(&profile("bob"), &[]).unwrap();
    assert_eq!(s.profile(&user("alice")).unwrap(), Some(alice.clone()));
    alice.display_name = "Alice B.".into();
    s.put_profile(&alice, &["e:+4930111".into()]).unwrap();
    assert_eq!(s.profile(&user("alice")).unwrap().unwrap().display_name, "Alice B.");
    let mut ids: Vec<String> = s.profiles().unwrap().into_iter().map(|p| p.id.as_str().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
}

/// A profile that does not validate is refused and not stored.
pub fn invalid_profiles_are_refused(new: Factory) {
    let s = new();
    let mut p = profile("alice");
    p.time_zone = "Mars/Olympus".into();
    assert!(matches!(s.put_profile(&p, &[]), Err(StoreError::Invalid(_))));
    assert_eq!(s.profile(&user("alice")).unwrap(), None);
}

/// A called number belongs to one user: another user's number is refused,
/// and changing or deleting a profile releases its numbers.
pub fn called_numbers_belong_to_one_user(new: Factory) {
    let s = new();
    s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
    let err = s.put_profile(&profile("bob"), &["e:+4930111".into()]).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("already belongs to user alice"), "{err}");
    assert_eq!(s.profile(&user("bob")).unwrap(), None, "the refused profile is not stored");
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
    // Changing alice's numbers releases the old one.
    s.put_profile(&profile("alice"), &["e:+4930222".into()]).unwrap();
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), None);
    assert_eq!(s.user_by_called_number("e:+4930222").unwrap(), Some(user("alice")));
    s.put_profile(&profile("bob"), &["e:+4930111".into()]).unwrap();
    assert!(s.delete_user(&user("bob")).unwrap());
    assert!(!s.delete_user(&user("bob")).unwrap(), "deleting twice finds nothing");
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), None);
    assert_eq!(s.profiles().unwrap().len(), 1);
}

/// Local handling-code assignments and last choices are per user.
pub fn assignments_and_last_choices_are_per_user(new: Factory) {
    let s = new();
    let vip = HandlingCode::well_known(HandlingCode::VIP);
    let target = AssignTarget::Number("e:+491".into());
    s.assign(&user("alice"), &target, Some(&vip)).unwrap();
    assert_eq!(s.assignment(&user("alice"), &target).unwrap(), Some(vip.clone()));
    assert_eq!(s.assignment(&user("bob"), &target).unwrap(), None);
    let r = RecordRef { account: "acc".into(), collection: "ab".into(), id: RecordId::new("x/y.vcf") };
    let on_contact = AssignTarget::Contact(r.clone());
    s.assign(&user("alice"), &on_contact, Some(&HandlingCode::well_known(HandlingCode::BLOCKED))).unwrap();
    assert_eq!(s.assignment(&user("alice"), &on_contact).unwrap().unwrap().as_str(), "blocked");
    assert_eq!(s.assignment(&user("alice"), &target).unwrap(), Some(vip), "targets are apart");
    s.assign(&user("alice"), &target, None).unwrap();
    assert_eq!(s.assignment(&user("alice"), &target).unwrap(), None);

    s.set_last_choice(&user("alice"), "e:+491", &r).unwrap();
    assert_eq!(s.last_choice(&user("alice"), "e:+491").unwrap(), Some(r));
    assert_eq!(s.last_choice(&user("bob"), "e:+491").unwrap(), None);
}

/// Deleting a user removes the profile, its numbers, assignments, last
/// choices and calls, and nothing of other users.
pub fn delete_user_removes_what_the_user_owns(new: Factory) {
    let s = new();
    for u in ["alice", "bob"] {
        s.put_profile(&profile(u), &[format!("e:+49{}", u.len())]).unwrap();
        s.assign(&user(u), &AssignTarget::Number("e:+491".into()), Some(&HandlingCode::well_known("vip"))).unwrap();
        let r = RecordRef { account: "acc".into(), collection: "ab".into(), id: RecordId::new("c") };
        s.set_last_choice(&user(u), "e:+491", &r).unwrap();
        s.put_call(&call(&format!("{u}-call"), u, "+491", 1)).unwrap();
    }
    assert!(s.delete_user(&user("alice")).unwrap());
    let alice = user("alice");
    assert_eq!(s.profile(&alice).unwrap(), None);
    assert_eq!(s.user_by_called_number("e:+495").unwrap(), None);
    assert_eq!(s.assignment(&alice, &AssignTarget::Number("e:+491".into())).unwrap(), None);
    assert_eq!(s.last_choice(&alice, "e:+491").unwrap(), None);
    assert!(s.calls(&alice, TimeWindow::all(), 10).unwrap().is_empty());
    assert!(s.calls_from(&alice, "e:+491", TimeWindow::all(), 10).unwrap().is_empty());
    assert_eq!(s.call(&crate::model::CallId("alice-call".into())).unwrap(), None);

    let bob = user("bob");
    assert!(s.profile(&bob).unwrap().is_some());
    assert_eq!(s.user_by_called_number("e:+493").unwrap(), Some(bob.clone()));
    assert!(s.assignment(&bob, &AssignTarget::Number("e:+491".into())).unwrap().is_some());
    assert!(s.last_choice(&bob, "e:+491").unwrap().is_some());
    assert_eq!(call_ids(s.calls(&bob, TimeWindow::all(), 10).unwrap()), ["bob-call"]);
}
