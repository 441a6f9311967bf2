//! Microsoft Graph connector for contactbridge.
//!
//! One **account** is an app registration in a tenant with either app-only access
//! (client credentials) to a list of **mailboxes**, or delegated access (device code) to
//! one. Each mailbox exposes these **collections** (`Collection::id` = `{mailbox}/{part}`):
//! `contacts` and `contactFolders/{id}` (contacts, by delta), `calendarView` (events of a
//! rolling window, by calendarView delta), `inbox` and `sentitems` (mail metadata, by delta,
//! with a lookback), `drive` (OneDrive files and the people on them, by drive delta) and
//! `automaticRepliesSetting` (out-of-office, listed whole).
//!
//! A collection's **checkpoint** is its delta link, or, in the middle of a full listing,
//! the next link of that listing ([`delta::DeltaState`]): a restart resumes there.
//!
//! Requests go through graph-rs-sdk (URLs, tokens) with our own page loop, bounded
//! retries honouring `Retry-After` and at most 4 concurrent requests per mailbox
//! ([`client`]). Tokens come from the `oauth2` crate through a shared [`auth::TokenCache`].

pub mod auth;
pub mod client;
pub mod config;
mod connector;
pub mod delta;
pub mod map;
pub mod search;
pub mod subscriptions;

pub use auth::{DelegatedTokens, DeviceLogin, TokenCache, TokenSource};
pub use config::{Credential, GraphAccount, RetryPolicy, Secret, Window};
pub use connector::GraphConnector;
