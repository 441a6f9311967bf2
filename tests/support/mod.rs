//! Test scaffolding shared by the integration tests (`mod support;`): the tools from
//! tests/setup-tools.sh, the real servers they start (Radicale, Xandikos), the
//! `contactbridge` binary, and the phone-system fixture (HTTP lookup, LDAP directory).
//! Each test file uses what it needs of it.
#![allow(dead_code)]

pub mod binary;
pub mod index;
pub mod lookup;
pub mod radicale;
pub mod tools;
pub mod xandikos;
