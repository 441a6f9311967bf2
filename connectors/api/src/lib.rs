//! The connector contract of contactbridge.
//!
//! A **connector** fetches data from one kind of source (Microsoft Graph, CardDAV,
//! CalDAV, local files) for one **account**. An account exposes **collections**
//! (an address book, a calendar, a mail folder, a drive, a mailbox's settings).
//! A collection holds **records** ([`Record`]: contacts, calendar events, mail
//! metadata, documents, out-of-office settings), each with a source-stable
//! [`RecordId`] and an optional version (an etag, a change key).
//!
//! A connector never writes to the index itself. It hands [`ChangeSet`]s to a
//! [`ChangeSink`]; each change set carries the [`Checkpoint`] that is valid once it
//! is applied (a delta link, a sync token, a resume position), and the sink commits
//! both together or neither. When a connector lists a collection in full (first
//! sync, expired token, HTTP 410) it marks its change sets as parts of a
//! [`Snapshot`]; the sink then removes, at the end, every record of the collection
//! that the snapshot did not mention.
//!
//! Bad input is not fatal: an item that cannot be parsed is reported as
//! [`Rejected`] in the change set, and the rest of the collection syncs.

mod change;
mod connector;
pub mod echo;
mod error;
pub mod net;
mod record;
mod secret;
mod throttle;

pub use change::{ChangeSet, ChangeSink, Checkpoint, KnownVersions, NoKnownVersions, Rejected, Snapshot, VecSink};
pub use connector::{Collection, CollectionKind, Connector, SyncRequest};
pub use echo::{echo, shorten_quoted};
pub use error::{Error, ErrorKind};
pub use net::NetPolicy;
pub use record::{
    BusyStatus, CalendarEvent, Contact, Document, MailDirection, MailMessage, Occurrence, OutOfOffice, Person,
    PhoneKind, PhoneNumber, PhotoRef, Record, RecordId, RecordKind, FORMAT_VERSION,
};
pub use secret::Secret;
pub use throttle::{ThrottleTally, Throttling};
