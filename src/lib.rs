//! contactbridge tells a phone system who is calling, how the called user wants
//! the call handled, and what the user knows about the caller.
//!
//! # Vocabulary
//!
//! These words mean one thing each, everywhere in the code, the API and the docs.
//!
//! - **TSPS** — the telephony service provider system: the phone system that
//!   receives a call and asks the bridge what to do with it.
//! - **user** — a person calls are for. Identified to the TSPS by their
//!   **called numbers** (DIDs); belongs to a **tenant** (an organisation).
//! - **account** — one registered source of a user's data: a Microsoft 365
//!   mailbox, a CardDAV or CalDAV login, a folder of files. An admin registers it.
//! - **connector** — the code that fetches from one kind of source (Graph,
//!   CardDAV, CalDAV, files). It implements [`connector::Connector`].
//! - **collection** — a part of an account that syncs on its own: an address
//!   book, a calendar, a mail folder, a drive, a mailbox's settings.
//! - **record** — one item of a collection: a contact, a calendar event, mail
//!   metadata, a document, an out-of-office setting ([`connector::Record`]).
//! - **checkpoint** — where a collection's sync stands (a delta link, a sync
//!   token, a resume position). It is committed together with the changes it
//!   covers, or not at all.
//! - **index** — the store's part that holds records, searchable by phone key,
//!   email, time. Rebuildable from the sources; lookups read only the index.
//! - **user data** — what only users own: profiles, handling tables, local
//!   assignments, call history, API keys, web tokens, accounts and their
//!   sealed secrets. Never rebuilt, so backed up (`backup` / `restore`).
//! - **backend** — one implementation of every store trait (today sled;
//!   chosen by `[store] backend`), held by the rest as `Arc<dyn Backend>`.
//! - **handling code** — what the user thinks of a caller: `vip`, `blocked`,
//!   `default` (a known contact), `unknown` (no contact matches), `withheld` (no
//!   number), or a code of the user's own. It comes from the contact in the
//!   user's contact system (a category, an `X-` property) or from a local
//!   assignment by the user.
//! - **status** — the user's state at the moment of the call: available,
//!   working elsewhere, tentative, busy (in a meeting), out of office, do not
//!   disturb. Derived from the calendar, out-of-office replies and a manual status.
//! - **handling method** — what the TSPS does with the call: forward to a number,
//!   an IVR, notify the user's computer, voicemail, the attendant, reject. The
//!   user's **handling table** maps handling code × status to a method.
//! - **decision** — the resolver's answer for one call: user, caller, contact
//!   candidates, handling code, status and the rule that set it, handling method
//!   and target. The user or the attendant may overrule it while the call rings
//!   (a **directive**); a **dial** directive asks the TSPS to place a new call
//!   from the user's phone.
//! - **call phase** — where a call stands, folded from its journal: ringing,
//!   answered (by whom), forwarded (where), voicemail, rejected, missed, ended.
//!   Every change of a call reaches the windows through one channel of the call
//!   hub ([`live::CallHub::watch_changes`]).
//! - **context** — what the notification window shows about the caller: mail
//!   both ways, meetings together, documents, call history, within the user's
//!   criteria.
//!
//! # Data flow
//!
//! ```text
//!  sources ──▶ connectors ──▶ sync ──────────────▶ store (index) ──▶ resolve ──▶ api (gRPC), CLI
//!  Graph,      fetch, emit     derives keys,        sled, scoped      pure: index
//!  DAV, files  change sets     commits each change   by user          + clock →
//!              + checkpoints   set with checkpoint                    decision
//! ```
//!
//! - [`sync`] runs a connector and commits its change sets ([`sync::IndexSink`]).
//! - [`store`] keeps the index and every piece of user-owned data behind one
//!   set of traits ([`store::Backend`]; [`store::Store`] for the lookup path),
//!   opened by [`store::open`]; each backend passes [`store::conformance`].
//! - [`model`] defines the plain types the store keeps (users, profiles,
//!   handling codes and tables, statuses, call records, accounts); it and the
//!   store import nothing from the layers above them (`tests/layers.rs`).
//! - [`phone`] turns stored numbers and incoming CLIs into the same lookup keys.
//! - [`resolve`] decides ([`resolve::Resolver::resolve`]) and fetches context.
//! - [`user`], [`calls`] and [`accounts`] add behaviour to the model's types
//!   (profile files, the account registry) and re-export them.
//!
//! Layers, bottom up: `connector` (the contract) and `phone` → `model` →
//! `store` → `sync`, `resolve`, `accounts` → `api`, `web`, `http_lookup`,
//! `ldap`, `live` → the CLI. A layer uses only those below it.
//!
//! # Invariants
//!
//! - A change set and its checkpoint commit together, or neither does.
//! - A full listing (a snapshot) ends by removing the records of its collection
//!   it did not see.
//! - Every key in the store begins with the user: no query crosses users.
//! - Nothing on the lookup path talks to the network; if a backend's store
//!   calls may, they run off the async runtime's workers ([`store::offload`]).

pub use contactbridge_connector as connector;

pub mod accounts;
pub mod api;
pub mod calls;
pub mod config;
pub mod demo;
pub mod http_lookup;
pub mod ldap;
pub mod live;
pub mod model;
pub mod phone;
pub mod resolve;
pub mod secrets;
pub mod shutdown;
pub mod store;
pub mod sync;
pub mod tokens;
pub mod user;
pub mod web;
