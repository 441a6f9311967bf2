//! contactbridge (vocabulary written out in the crate docs once the modules land).
pub use contactbridge_connector as connector;

pub mod api;

pub mod calls;
pub mod config;
pub mod demo;
pub mod live;
pub mod phone;
pub mod resolve;
pub mod store;
pub mod sync;
pub mod user;
