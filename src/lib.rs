//! contactbridge (vocabulary written out in the crate docs once the modules land).
pub use contactbridge_connector as connector;

pub mod calls;
pub mod config;
// pub mod demo; (PENDING-FILES: enabled when contactbridge-files lands)
pub mod phone;
pub mod resolve;
pub mod store;
pub mod sync;
pub mod user;
