//! The sled store passes the conformance suite (a temporary store each).

crate::store_conformance!(|| std::sync::Arc::new(super::SledStore::temporary().unwrap()));
