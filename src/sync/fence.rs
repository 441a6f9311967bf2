//! Mailboxes fenced off by policy within one sync of an organisation-wide account: when
//! the first collection of a mailbox tried in the run answers 403 (none has synced), the
//! mailbox's other collections are not asked in this run; they fail for the same reason.
//! A 403 after a collection of the mailbox synced (a drive without a licence) fences nothing.

use contactbridge_connector::{echo, Collection, Error, ErrorKind};
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub(super) struct Fences {
    /// Mailbox → (the collection whose 403 fenced it, that error's message).
    fenced: HashMap<String, (String, String)>,
    /// Mailboxes with a collection synced in this run.
    reached: HashSet<String>,
}

impl Fences {
    /// The error for `collection` if its mailbox is fenced in this run.
    pub fn refusal(&self, collection: &Collection) -> Option<Error> {
        let (first, message) = self.fenced.get(collection.owner.as_ref()?)?;
        Some(Error::new(
            ErrorKind::Forbidden,
            format!("not tried: its mailbox refused {} in this sync ({message})", echo(first)),
        ))
    }

    /// Notes how `collection`'s sync ended.
    pub fn observe(&mut self, collection: &Collection, error: Option<&Error>) {
        let Some(owner) = &collection.owner else { return };
        match error {
            None => {
                self.reached.insert(owner.clone());
            }
            Some(e) if e.kind == ErrorKind::Forbidden && !self.reached.contains(owner) => {
                self.fenced.entry(owner.clone()).or_insert_with(|| (collection.id.clone(), e.message.clone()));
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contactbridge_connector::CollectionKind;

    fn c(mailbox: &str, part: &str) -> Collection {
        Collection {
            id: format!("{mailbox}/{part}"),
            name: part.into(),
            kind: CollectionKind::AddressBook,
            owner: Some(mailbox.into()),
        }
    }

    #[test]
    fn a_first_403_fences_the_mailbox_a_later_one_does_not() {
        let denied = Error::new(ErrorKind::Forbidden, "403 ErrorAccessDenied");
        let mut f = Fences::default();
        f.observe(&c("otto@x", "contacts"), Some(&denied));
        let e = f.refusal(&c("otto@x", "inbox")).expect("fenced");
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(e.message.contains("otto@x/contacts") && e.message.contains("ErrorAccessDenied"), "{e}");
        assert!(f.refusal(&c("dana@x", "inbox")).is_none(), "other mailboxes go on");
        // Dana's contacts synced; her drive's 403 (no licence) leaves her settings to be tried.
        f.observe(&c("dana@x", "contacts"), None);
        f.observe(&c("dana@x", "drive"), Some(&denied));
        assert!(f.refusal(&c("dana@x", "automaticRepliesSetting")).is_none());
        // Another error kind fences nothing; collections without an owner never are.
        f.observe(&c("mia@x", "contacts"), Some(&Error::new(ErrorKind::Unreachable, "reset")));
        assert!(f.refusal(&c("mia@x", "inbox")).is_none());
        let own = Collection { owner: None, ..c("a", "b") };
        f.observe(&own, Some(&denied));
        assert!(f.refusal(&own).is_none());
    }
}
