//! The PostgreSQL store passes the conformance suite: each backend the suite
//! asks for is a fresh database on the shared test server (`testing`).

use super::testing::{shared_database, TestDatabase};
use super::{PgOptions, PgStore};

/// A store on a fresh database; the database is dropped with the last handle.
fn fresh() -> std::sync::Arc<PgStore> {
    let db = shared_database();
    let store = PgStore::open(&PgOptions { pool_size: 2, ..PgOptions::new(db.url.clone()) }, std::path::Path::new(""))
        .expect("opening a fresh PostgreSQL database");
    KEEP.with(|k| k.borrow_mut().push(db));
    std::sync::Arc::new(store)
}

thread_local! {
    /// The test's databases, dropped when its thread ends.
    static KEEP: std::cell::RefCell<Vec<TestDatabase>> = const { std::cell::RefCell::new(Vec::new()) };
}

crate::store_conformance!(fresh);
