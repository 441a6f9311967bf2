//! Call records: defined in [`crate::model::calls`] (below the store, which
//! keeps them); re-exported here under their old path.

pub use crate::model::calls::*;
