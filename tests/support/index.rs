//! Records put straight into a user's index, as one change set of a sync would.

use chrono::Utc;
use contactbridge::connector::Record;
use contactbridge::store::{CollectionScope, IndexBatch, IndexStore};
use contactbridge::sync::Indexer;
use contactbridge::user::UserId;
use std::collections::HashMap;

/// Indexes `records` into `user`'s `account`/`collection` (no checkpoint) and applies them.
pub fn put(store: &dyn IndexStore, user: &UserId, account: &str, collection: &str, records: Vec<Record>) {
    let indexer = Indexer::new(None, HashMap::new());
    store
        .apply(&IndexBatch {
            scope: CollectionScope { user: user.clone(), account: account.into(), collection: collection.into() },
            upserts: records.into_iter().map(|r| indexer.index(r)).collect(),
            deletions: vec![],
            retained: vec![],
            rejected: vec![],
            checkpoint: None,
            snapshot: None,
            at: Utc::now(),
        })
        .unwrap();
}
