//! TLS to PostgreSQL: rustls (with ring, the stack the bridge's other TLS already
//! uses) through `tokio-postgres-rustls`; `postgres-native-tls` would have added
//! OpenSSL beside it.
//!
//! The URL's `sslmode` decides whether TLS is used, as libpq's does: `disable`
//! never, `prefer` (the default) when the server offers it, `require` always (a
//! server without TLS is refused). Whenever TLS is used the server's certificate is
//! verified and its name must match the URL's host — against `[store.postgres]
//! ca_file` when given, else the public web roots. Unlike libpq, there is no
//! "encrypted but anyone's certificate" mode: whoever sits on the path to the
//! database would read every contact and call, so a server with a certificate of
//! its own (Debian's default "snakeoil" one included) needs `ca_file`, or
//! `sslmode=disable` on a network the operator trusts.

use crate::store::{Result, StoreError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// What connections to the server are made with (cheap to clone: one shared config).
pub(crate) type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS set-up: roots from `ca_file` (PEM, one or more certificates), else the public web roots.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let invalid =
                |reason: String| StoreError::Invalid(format!("[store.postgres] ca_file {}: {reason}", path.display()));
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| invalid(e.to_string()))?;
            if certs.is_empty() {
                return Err(invalid("no PEM certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Invalid(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What to do about a connection error, when it is about TLS.
pub(crate) fn hint(error_text: &str) -> Option<&'static str> {
    let t = error_text.to_ascii_lowercase();
    if t.contains("certificate") || t.contains("unknownissuer") || t.contains("notvalidforname") {
        Some(
            "the server's TLS certificate is not trusted: give [store.postgres] ca_file (the CA that signed it; \
             the server's name in the URL must match the certificate), or sslmode=disable in the URL on a network you trust",
        )
    } else if t.contains("server does not support tls") || t.contains("tls was required") {
        Some("the URL asks for sslmode=require but the server has no TLS (postgresql.conf: ssl = on)")
    } else {
        None
    }
}
