//! A read-only LDAPv3 directory over the synced address books, for desk phones
//! (Yealink, Snom, Grandstream, Polycom) and PBXs: caller names and contact
//! search. Its own listener (`[ldap] listen`, off by default), StartTLS when
//! `[ldap] tls_cert` and `tls_key` are set. The tree is in [`directory`].
//!
//! **Bind.** Simple bind with an API key of scope `tsps` as the password and
//! a DN that names where the key may look:
//!
//! - `ou=<tenant>,dc=contactbridge` (or `cn=<label>,ou=<tenant>,dc=contactbridge`):
//!   every user of the tenant;
//! - `ou=<user>,ou=<tenant>,dc=contactbridge`: that user's contacts only (a desk phone).
//!
//! A wrong key, a key of another tenant or scope, or a user not in the tenant
//! all answer `invalidCredentials`. Anonymous binds succeed (clients make
//! them) but may only read the root DSE; searches need a bind.
//!
//! **Search.** A base outside the bound tenant (or user) answers
//! `noSuchObject`, exactly as a base that does not exist. At most
//! `[ldap] size_limit` entries (500), or the client's smaller limit; more
//! answer `sizeLimitExceeded` after the entries that fit. Writes answer
//! `unwillingToPerform`.

pub mod directory;

use crate::api::auth::{self, ApiKeyStore, Scope};
use crate::store::{offload, Store};
use crate::user::{UserId, UserProfile};
use directory::{Place, SUFFIX};
use futures::{SinkExt, StreamExt};
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp, LdapPartialAttribute,
    LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// The StartTLS extended operation (RFC 4511 §4.14).
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// "Who am I?" (RFC 4532).
const WHOAMI_OID: &str = "1.3.6.1.4.1.4203.1.11.3";
/// Largest LDAP message accepted; larger ones end the connection.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A connection with no complete request for this long is closed (a message
/// that claims more bytes than arrive waits at most this long, holding at most
/// twice [`MAX_MESSAGE_BYTES`]).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What every connection shares. Cheap to clone.
#[derive(Clone)]
pub struct LdapState {
    store: Arc<dyn Store>,
    keys: Arc<dyn ApiKeyStore>,
    size_limit: usize,
    idle_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("reading the LDAP TLS {what} {path}: {reason}")]
    Pem { what: &'static str, path: String, reason: String },
    #[error("the LDAP TLS certificate and key do not fit together: {0}")]
    Tls(#[from] rustls::Error),
}

impl LdapState {
    pub fn new(store: Arc<dyn Store>, keys: Arc<dyn ApiKeyStore>, size_limit: usize) -> Self {
        Self { store, keys, size_limit: size_limit.max(1), idle_timeout: IDLE_TIMEOUT, tls: None }
    }

    /// Closes connections idle for `idle` instead of [`IDLE_TIMEOUT`].
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Offers StartTLS with this certificate chain and key (PEM files).
    pub fn with_tls(mut self, cert: &Path, key: &Path) -> Result<Self, LdapSetupError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pem = |what, path: &Path, e: rustls::pki_types::pem::Error| LdapSetupError::Pem {
            what,
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem("certificate", cert, e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem("key", key, e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        Ok(self)
    }
}

/// Serves the directory on `listener` until `shutdown` resolves (open connections are dropped then).
pub async fn serve(state: LdapState, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "LDAP connection");
                        connection(state, socket).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an LDAP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::info!("LDAP directory stopped");
}

fn codec() -> LdapCodec {
    LdapCodec::new(Some(MAX_MESSAGE_BYTES), None)
}

async fn connection(state: LdapState, socket: TcpStream) {
    let mut session = Session { state: state.clone(), bound: None, tls: false };
    let framed = Framed::new(socket, codec());
    let Some(plain) = session.run(framed).await else { return };
    let Some(acceptor) = state.tls.clone() else { return };
    match acceptor.accept(plain).await {
        Ok(tls) => {
            session.tls = true;
            session.run(Framed::new(tls, codec())).await;
        }
        Err(e) => tracing::info!(error = %e, "LDAP StartTLS handshake failed"),
    }
}

/// Who bound: the tenant, and the user if the bind named one.
#[derive(Debug, Clone)]
struct Bound {
    tenant: String,
    user: Option<UserId>,
    dn: String,
}

struct Session {
    state: LdapState,
    bound: Option<Bound>,
    tls: bool,
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult { code, matcheddn: String::new(), message: message.to_string(), referral: Vec::new() }
}

fn msg(msgid: i32, op: LdapOp) -> LdapMsg {
    LdapMsg { msgid, op, ctrl: Vec::new() }
}

impl Session {
    /// A copy of the session to answer one request with, off this task.
    fn view(&self) -> Session {
        Session { state: self.state.clone(), bound: self.bound.clone(), tls: self.tls }
    }

    /// Answers requests until the client leaves (`None`) or asks for StartTLS (`Some(socket)`).
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, mut framed: Framed<S, LdapCodec>) -> Option<S> {
        loop {
            let next = match tokio::time::timeout(self.state.idle_timeout, framed.next()).await {
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => return None,
            };
            let request = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::info!(error = ?e, "an LDAP client sent a message that is not valid; closing");
                    let notice = msg(
                        0,
                        LdapOp::ExtendedResponse(LdapExtendedResponse {
                            res: result(LdapResultCode::ProtocolError, "the message is not valid LDAPv3"),
                            name: Some("1.3.6.1.4.1.1466.20036".into()),
                            value: None,
                        }),
                    );
                    let _ = framed.send(notice).await;
                    return None;
                }
            };
            let id = request.msgid;
            let answers = match request.op {
                LdapOp::UnbindRequest => return None,
                LdapOp::AbandonRequest(_) => continue,
                // Binds (an API key lookup) and searches run off the runtime's workers if the backend may block.
                LdapOp::BindRequest(b) => {
                    let mut view = self.view();
                    let (response, bound) = offload(self.state.store.as_ref(), move || {
                        let response = view.bind(&b.dn, b.cred);
                        (response, view.bound)
                    })
                    .await;
                    self.bound = bound;
                    vec![msg(id, LdapOp::BindResponse(response))]
                }
                LdapOp::SearchRequest(s) => {
                    let view = self.view();
                    offload(self.state.store.as_ref(), move || view.search(id, &s)).await
                }
                LdapOp::ExtendedRequest(LdapExtendedRequest { name, .. }) if name == STARTTLS_OID => {
                    if self.state.tls.is_some() && !self.tls {
                        let ok = msg(
                            id,
                            LdapOp::ExtendedResponse(LdapExtendedResponse {
                                res: result(LdapResultCode::Success, ""),
                                name: Some(STARTTLS_OID.into()),
                                value: None,
                            }),
                        );
                        if framed.send(ok).await.is_err() {
                            return None;
                        }
                        let parts = framed.into_parts();
                        if !parts.read_buf.is_empty() {
                            return None; // the client did not wait for the answer: not TLS
                        }
                        return Some(parts.io);
                    }
                    let why = if self.tls { "TLS is already on" } else { "StartTLS is not configured" };
                    vec![extended(id, LdapResultCode::OperationsError, why)]
                }
                LdapOp::ExtendedRequest(LdapExtendedRequest { name, .. }) if name == WHOAMI_OID => {
                    let who = self.bound.as_ref().map(|b| format!("dn:{}", b.dn)).unwrap_or_default();
                    vec![msg(
                        id,
                        LdapOp::ExtendedResponse(LdapExtendedResponse {
                            res: result(LdapResultCode::Success, ""),
                            name: None,
                            value: Some(who.into_bytes()),
                        }),
                    )]
                }
                LdapOp::ExtendedRequest(_) => {
                    vec![extended(id, LdapResultCode::ProtocolError, "this extended operation is not supported")]
                }
                LdapOp::ModifyRequest(_) => vec![msg(id, LdapOp::ModifyResponse(read_only()))],
                LdapOp::AddRequest(_) => vec![msg(id, LdapOp::AddResponse(read_only()))],
                LdapOp::DelRequest(_) => vec![msg(id, LdapOp::DelResponse(read_only()))],
                LdapOp::ModifyDNRequest(_) => vec![msg(id, LdapOp::ModifyDNResponse(read_only()))],
                LdapOp::CompareRequest(_) => vec![msg(id, LdapOp::CompareResult(read_only()))],
                _ => return None, // a response or something only servers send
            };
            for a in answers {
                if framed.feed(a).await.is_err() {
                    return None;
                }
            }
            if framed.flush().await.is_err() {
                return None;
            }
        }
    }

    fn bind(&mut self, dn: &str, cred: LdapBindCred) -> LdapBindResponse {
        self.bound = None;
        let respond = |code, message: &str| LdapBindResponse { res: result(code, message), saslcreds: None };
        let LdapBindCred::Simple(password) = cred else {
            return respond(LdapResultCode::AuthMethodNotSupported, "only simple bind (an API key) is supported");
        };
        if dn.trim().is_empty() && password.is_empty() {
            return respond(LdapResultCode::Success, ""); // anonymous: the root DSE only
        }
        match self.check_bind(dn, &password) {
            Some(b) => {
                tracing::info!(tenant = %b.tenant, user = ?b.user.as_ref().map(|u| u.as_str()), "LDAP bind");
                self.bound = Some(b);
                respond(LdapResultCode::Success, "")
            }
            None => respond(LdapResultCode::InvalidCredentials, "invalid credentials"),
        }
    }

    fn check_bind(&self, dn: &str, password: &str) -> Option<Bound> {
        let (tenant, user) = match directory::place(dn)? {
            Place::Tenant(t) | Place::TenantBinder(t) => (t, None),
            Place::User(t, u) => (t, Some(u)),
            _ => return None,
        };
        let who = match auth::verify(self.state.keys.as_ref(), password) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(reason = %e, "LDAP bind refused");
                return None;
            }
        };
        if who.scope != Scope::Tsps || who.tenant != tenant {
            return None;
        }
        let user = match user {
            Some(u) => Some(self.tenant_user(&tenant, &u)?.id),
            None => None,
        };
        Some(Bound { tenant, user, dn: dn.trim().to_string() })
    }

    /// The user, if it exists and belongs to `tenant`.
    fn tenant_user(&self, tenant: &str, user: &str) -> Option<UserProfile> {
        let id = UserId::parse(user).ok()?;
        let profile = self.state.store.profile(&id).ok()??;
        (profile.tenant == tenant).then_some(profile)
    }

    fn search(&self, id: i32, s: &LdapSearchRequest) -> Vec<LdapMsg> {
        let done = |code, message: &str| msg(id, LdapOp::SearchResultDone(result(code, message)));
        let wanted = directory::wanted(&s.attrs);
        let Some(place) = directory::place(&s.base) else {
            return vec![done(LdapResultCode::NoSuchObject, "no such object")];
        };
        if place == Place::Root {
            if s.scope != LdapSearchScope::Base {
                return vec![done(LdapResultCode::NoSuchObject, "no such object")];
            }
            return vec![msg(id, LdapOp::SearchResultEntry(self.root_dse())), done(LdapResultCode::Success, "")];
        }
        let Some(bound) = &self.bound else {
            return vec![done(LdapResultCode::InsufficentAccessRights, "bind with an API key first")];
        };
        let no_such = || vec![done(LdapResultCode::NoSuchObject, "no such object")];
        // Which users, and which contact (a contact's own DN): a base outside the bind is as if it did not exist.
        let uid = match &place {
            Place::Contact(_, _, c) => Some(c.clone()),
            _ => None,
        };
        let (users, contact_uid, container): (Vec<UserProfile>, Option<String>, Option<LdapSearchResultEntry>) =
            match place {
                Place::Root => unreachable!("answered above"),
                Place::Suffix => (self.users_of(bound), None, None),
                Place::Tenant(t) if t == bound.tenant => {
                    let c = directory::container(directory::tenant_dn(&t), &t, &wanted);
                    (self.users_of(bound), None, Some(c))
                }
                Place::User(t, u) | Place::Contact(t, u, _)
                    if t == bound.tenant && bound.user.as_ref().is_none_or(|b| b.as_str() == u) =>
                {
                    let Some(profile) = self.tenant_user(&t, &u) else { return no_such() };
                    let c = uid
                        .is_none()
                        .then(|| directory::container(directory::user_dn(&t, profile.id.as_str()), &u, &wanted));
                    (vec![profile], uid, c)
                }
                _ => return no_such(),
            };
        if s.scope == LdapSearchScope::Base && contact_uid.is_none() {
            return match container {
                Some(c) => vec![msg(id, LdapOp::SearchResultEntry(c)), done(LdapResultCode::Success, "")],
                None => no_such(),
            };
        }
        let limit = match usize::try_from(s.sizelimit) {
            Ok(n) if n > 0 => n.min(self.state.size_limit),
            _ => self.state.size_limit,
        };
        let mut out = Vec::new();
        let mut exceeded = false;
        for profile in &users {
            let mut matcher = directory::Matcher::new(self.state.store.as_ref(), profile);
            let mut failed = None;
            let scanned = self.state.store.scan_contacts(&profile.id, &mut |c| {
                if let Some(uid) = &contact_uid {
                    if directory::contact_uid(&c.at) != *uid {
                        return true;
                    }
                }
                match matcher.matches(&s.filter, &c) {
                    Ok(true) if out.len() >= limit => {
                        exceeded = true;
                        false
                    }
                    Ok(true) => {
                        out.push(msg(
                            id,
                            LdapOp::SearchResultEntry(directory::entry(&bound.tenant, &profile.id, &c, &wanted)),
                        ));
                        true
                    }
                    Ok(false) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = scanned.err().or(failed) {
                tracing::error!(error = %e, "storage failure while serving an LDAP search");
                return vec![done(LdapResultCode::Other, "the bridge could not read its store; see the server log")];
            }
            if exceeded {
                break;
            }
        }
        if contact_uid.is_some() && out.is_empty() {
            return no_such();
        }
        out.push(if exceeded {
            done(LdapResultCode::SizeLimitExceeded, &format!("more than {limit} entries match; narrow the search"))
        } else {
            done(LdapResultCode::Success, "")
        });
        out
    }

    /// The bound user, or every user of the bound tenant.
    fn users_of(&self, bound: &Bound) -> Vec<UserProfile> {
        if let Some(u) = &bound.user {
            return self.tenant_user(&bound.tenant, u.as_str()).into_iter().collect();
        }
        match self.state.store.profiles() {
            Ok(all) => all.into_iter().filter(|p| p.tenant == bound.tenant).collect(),
            Err(e) => {
                tracing::error!(error = %e, "storage failure while listing users for LDAP");
                Vec::new()
            }
        }
    }

    fn root_dse(&self) -> LdapSearchResultEntry {
        let attr = |a: &str, v: Vec<&str>| LdapPartialAttribute {
            atype: a.to_string(),
            vals: v.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        };
        let mut ext = vec![WHOAMI_OID];
        if self.state.tls.is_some() {
            ext.push(STARTTLS_OID);
        }
        LdapSearchResultEntry {
            dn: String::new(),
            attributes: vec![
                attr("objectClass", vec!["top"]),
                attr("namingContexts", vec![SUFFIX]),
                attr("supportedLDAPVersion", vec!["3"]),
                attr("supportedExtension", ext),
                attr("vendorName", vec!["contactbridge"]),
            ],
        }
    }
}

fn extended(id: i32, code: LdapResultCode, message: &str) -> LdapMsg {
    msg(id, LdapOp::ExtendedResponse(LdapExtendedResponse { res: result(code, message), name: None, value: None }))
}

fn read_only() -> LdapResult {
    result(LdapResultCode::UnwillingToPerform, "the directory is read-only")
}
