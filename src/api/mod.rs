//! The gRPC interface (tonic): `contactbridge.v1.CallHandling` for the phone
//! system (TSPS) and `contactbridge.v1.Admin` for tenant admins, with API-key
//! auth, grpc.health.v1, server reflection and Prometheus metrics.
//!
//! The services are thin: decode, authorise ([`auth`]), call the resolver, the
//! store or the live-call hub ([`crate::live`]), encode. The schemas live in
//! `schemas/contactbridge/v1/*.proto` and are compiled by `build.rs` (protox,
//! no system `protoc`).

mod accounts;
mod admin;
pub mod auth;
mod call_handling;
pub mod client;
// Public only for the fuzz targets (fuzz/fuzz_targets/grpc_convert.rs), which run the
// request conversions the handlers run; not a supported interface.
#[doc(hidden)]
pub mod convert;
mod error;
pub mod metrics;
pub mod panics;
mod server;

pub use auth::{ApiKeyStore, Principal, Scope};
pub use server::{grpc_layers, serve, LookupStore, RunningServer, ServeError, ServerOptions, TlsFiles};

/// The generated protobuf types, clients and servers of `contactbridge.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("contactbridge.v1");

    /// The encoded file descriptor set of `schemas/` (for server reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/contactbridge_descriptor.bin"));
}

use tonic::{Request, Status};

/// The principal the auth interceptor attached to a request.
fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing API key: send `authorization: Bearer <key>`"))
}

impl Principal {
    /// PERMISSION_DENIED unless the key has one of `scopes`.
    fn require(&self, scopes: &[Scope], rpc: &str) -> Result<(), Status> {
        if scopes.contains(&self.scope) {
            return Ok(());
        }
        let wanted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(Status::permission_denied(format!(
            "{rpc} needs a key of scope {}; this key has scope {}",
            wanted.join(" or "),
            self.scope
        )))
    }

    /// `unknown()` (the answer for an object that does not exist) unless
    /// `tenant` is the key's tenant: "not yours" looks like "does not exist".
    fn same_tenant(&self, tenant: &str, unknown: impl FnOnce() -> Status) -> Result<(), Status> {
        if self.tenant == tenant {
            Ok(())
        } else {
            Err(unknown())
        }
    }
}
