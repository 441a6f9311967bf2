//! Shared by the phone-system interface tests (HTTP lookup, LDAP directory).
#![allow(dead_code)]

pub mod lookup;
