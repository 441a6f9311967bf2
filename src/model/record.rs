//! Where a record lives in a user's index.

use contactbridge_connector::RecordId;
use serde::{Deserialize, Serialize};

/// Where a record lives: account, collection, id. Unique within a user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    pub account: String,
    pub collection: String,
    pub id: RecordId,
}

impl RecordRef {
    /// `account/collection/id` for display and APIs; [`RecordRef::parse`] reverses it
    /// (ids may contain `/`, accounts may not).
    pub fn to_token(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.account, self.collection, self.id)
    }

    pub fn parse(token: &str) -> Option<RecordRef> {
        let mut it = token.splitn(3, '\u{1f}');
        Some(RecordRef { account: it.next()?.into(), collection: it.next()?.into(), id: RecordId::new(it.next()?) })
    }
}
