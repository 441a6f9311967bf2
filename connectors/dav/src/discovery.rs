//! Finding the server's context path (URL, `/.well-known/`, or RFC 6764 SRV/TXT for a
//! domain), then the principal, its home sets and every collection in them.

use crate::account::{DavAccount, Server};
use crate::error::{dav_error, request_error};
use crate::http::DavHttp;
use crate::DavKind;
use contactbridge_connector::{Collection, CollectionKind, Error, ErrorKind};
use http::header::LOCATION;
use http::{Request, StatusCode, Uri};
use libdav::caldav::{FindCalendarHomeSet, FindCalendars};
use libdav::carddav::{FindAddressBookHomeSet, FindAddressBooks};
use libdav::dav::CheckSupport;
use libdav::dav::{FindCurrentUserPrincipalError, FoundCollection, WebDavClient};
use libdav::names;
use libdav::sd::{find_context_url, BootstrapError, ContextUrl, DiscoverableService};
use libdav::CheckSupportError;

/// The libdav client every request goes through.
pub type Dav = WebDavClient<DavHttp>;

fn service(kind: DavKind, https: bool) -> DiscoverableService {
    match (kind, https) {
        (DavKind::CardDav, true) => DiscoverableService::CardDavs,
        (DavKind::CardDav, false) => DiscoverableService::CardDav,
        (DavKind::CalDav, true) => DiscoverableService::CalDavs,
        (DavKind::CalDav, false) => DiscoverableService::CalDav,
    }
}

/// Builds a client whose base URL is the server's context path.
pub(crate) async fn connect(account: &DavAccount, kind: DavKind, http: DavHttp) -> Result<Dav, Error> {
    match &account.server {
        Server::Url(url) => from_url(url, kind, http).await,
        Server::Domain(domain) => from_domain(domain, kind, http).await,
    }
}

/// A URL: used as given, except that a bare host (path `/`) first tries its
/// `/.well-known/carddav` or `/.well-known/caldav` redirect (RFC 6764 §5).
async fn from_url(url: &str, kind: DavKind, http: DavHttp) -> Result<Dav, Error> {
    let uri: Uri = url.parse().map_err(|e| Error::local(format!("invalid server URL {url:?}: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Error::local(format!("server URL {url:?} must start with https:// (or http://)"))),
    };
    uri.host().ok_or_else(|| Error::local(format!("server URL {url:?} has no host")))?;
    let mut client = WebDavClient::new(uri.clone(), http);
    if uri.path() == "/" || uri.path().is_empty() {
        if let Some(found) = well_known(&client, kind, https).await? {
            tracing::debug!(%found, "context path from .well-known");
            client.base_url = found;
        }
    }
    Ok(client)
}

/// Follows the `/.well-known/carddav` (or `caldav`) redirects of the client's host
/// (RFC 6764 §5) to the first location that advertises the service in its `DAV` header.
async fn well_known(client: &Dav, kind: DavKind, https: bool) -> Result<Option<Uri>, Error> {
    let service = service(kind, https);
    let context = "looking up the .well-known path";
    let mut uri =
        client.relative_uri(service.well_known_path()).map_err(|e| Error::local(format!("{context}: {e}")))?;
    for _ in 0..5 {
        let request = Request::get(&uri).body(String::new()).map_err(|e| Error::local(format!("{context}: {e}")))?;
        let (head, _) = client.request_raw(request).await.map_err(|e| request_error(context, e))?;
        if head.status == StatusCode::UNAUTHORIZED {
            return Err(Error::auth(format!("{context}: the server answered 401: check the username and password")));
        }
        let location = head.headers.get(LOCATION).and_then(|l| l.to_str().ok());
        let (true, Some(location)) = (head.status.is_redirection(), location) else {
            return Ok(None);
        };
        let next = resolve(&uri, location)?;
        match client.request(CheckSupport::new(&next, service.access_field())).await {
            Ok(()) => return Ok(Some(next)),
            Err(CheckSupportError::Request(e)) => return Err(request_error(context, e)),
            Err(e) => tracing::debug!(%next, error = %e, "redirect target does not advertise the service"),
        }
        uri = next;
    }
    Ok(None)
}

/// A `Location` header value made absolute against `base`.
fn resolve(base: &Uri, location: &str) -> Result<Uri, Error> {
    let invalid = |e: &dyn std::fmt::Display| Error::invalid_data(format!("unusable redirect to {location:?}: {e}"));
    let parsed: Uri = location.parse().map_err(|e| invalid(&e))?;
    if parsed.authority().is_some() {
        return Ok(parsed);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = parsed.path_and_query().cloned();
    Uri::from_parts(parts).map_err(|e| invalid(&e))
}

/// A domain or email address: SRV/TXT records, then `/.well-known/` over HTTPS.
async fn from_domain(domain: &str, kind: DavKind, http: DavHttp) -> Result<Dav, Error> {
    let domain = domain.rsplit('@').next().unwrap_or(domain).trim();
    if domain.is_empty() || domain.contains('/') {
        return Err(Error::local(format!("{domain:?} is not a domain name")));
    }
    let uri: Uri =
        format!("https://{domain}/").parse().map_err(|e| Error::local(format!("invalid domain {domain:?}: {e}")))?;
    let mut client = WebDavClient::new(uri, http);
    let found = find_context_url(&client, service(kind, true)).await.map_err(|e| bootstrap_error(domain, e.into()))?;
    match found {
        ContextUrl::BaseUrl => {}
        ContextUrl::Found(url) => client.base_url = url,
        ContextUrl::NotAvailable => return Err(bootstrap_error(domain, BootstrapError::NotAvailable)),
        ContextUrl::NotFound => return Err(bootstrap_error(domain, BootstrapError::NotFound)),
    }
    Ok(client)
}

fn bootstrap_error(domain: &str, error: BootstrapError) -> Error {
    let kind = match error {
        BootstrapError::Dns(_) => ErrorKind::Unreachable,
        BootstrapError::NotAvailable | BootstrapError::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Local,
    };
    Error::new(kind, format!("discovering the DAV service of {domain}: {error}"))
}

/// The current user's principal, if the server names one.
pub(crate) async fn principal(dav: &Dav) -> Result<Option<Uri>, Error> {
    dav.find_current_user_principal().await.map_err(|e| match e {
        FindCurrentUserPrincipalError::RequestError(e) => dav_error("finding the user principal", e),
        FindCurrentUserPrincipalError::InvalidInput(e) => Error::local(format!("finding the user principal: {e}")),
    })
}

/// Every address book or calendar in the principal's home sets, in href order.
pub(crate) async fn collections(dav: &Dav, kind: DavKind) -> Result<Vec<Collection>, Error> {
    let homes = match principal(dav).await? {
        Some(principal) => {
            let homes = match kind {
                DavKind::CardDav => {
                    dav.request(FindAddressBookHomeSet::new(principal.path())).await.map(|r| r.home_sets)
                }
                DavKind::CalDav => dav.request(FindCalendarHomeSet::new(principal.path())).await.map(|r| r.home_sets),
            }
            .map_err(|e| dav_error("finding the home set", e))?;
            if homes.is_empty() {
                vec![dav.base_url().clone()]
            } else {
                homes
            }
        }
        None => vec![dav.base_url().clone()],
    };
    let mut found: Vec<Collection> = Vec::new();
    for home in homes {
        let listed = match kind {
            DavKind::CardDav => dav.request(FindAddressBooks::new(home.path())).await.map(|r| r.addressbooks),
            DavKind::CalDav => dav.request(FindCalendars::new(home.path())).await.map(|r| r.calendars),
        }
        .map_err(|e| dav_error(&format!("listing collections in {}", home.path()), e))?;
        for collection in listed {
            if !found.iter().any(|c| c.id == collection.href) {
                found.push(to_collection(collection, kind));
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn to_collection(found: FoundCollection, kind: DavKind) -> Collection {
    let display = found
        .properties
        .iter()
        .find(|(name, _)| **name == names::DISPLAY_NAME)
        .and_then(|(_, value)| value.clone())
        .filter(|v| !v.trim().is_empty());
    let name = display
        .unwrap_or_else(|| found.href.trim_end_matches('/').rsplit('/').next().unwrap_or(&found.href).to_string());
    let kind = match kind {
        DavKind::CardDav => CollectionKind::AddressBook,
        DavKind::CalDav => CollectionKind::Calendar,
    };
    Collection { id: found.href, name, kind, owner: None }
}
