//! contactbridge (vocabulary written out in the crate docs once the modules land).
pub use contactbridge_connector as connector;

pub mod phone;
