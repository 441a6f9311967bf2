//! The PostgreSQL backend's own mechanics: migrations, its connection
//! failing, and the lookup path inside a tokio runtime.
