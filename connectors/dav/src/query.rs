//! Every card of an address book in one request: `addressbook-query` without a
//! filter, for a first sync.
//!
//! Radicale and Xandikos answer a query without a filter with every card; it reads
//! each card once, where a listing followed by multigets reads each twice and pays
//! per href for the multigets (Radicale: 10,000 cards, query 6.5 s against listing
//! 14–17 s plus multigets 14–16 s, busy machine). RFC 6352 makes the filter
//! mandatory, so a server may refuse it; the caller then lists and multigets.
//!
//! libdav's own query (`GetAddressBookResources` without hrefs) filters on `FN`
//! being defined, which would leave out cards without `FN` (Radicale and Xandikos
//! refuse to store such cards, other servers may not); this sends the same request
//! without that filter and parses the answer with libdav.

use http::{Request, Uri};
use libdav::carddav::{GetAddressBookResources, GetAddressBookResourcesResponse};
use libdav::dav::WebDavError;
use libdav::requests::{DavRequest, ParseResponseError};

/// The filter libdav puts into its query (see its tests), removed from the body.
const LIBDAV_FILTER: &str = r#"<CARD:filter><CARD:prop-filter name="FN"/></CARD:filter>"#;

/// `addressbook-query` for every card of a collection, with etag and data.
pub(crate) struct AllCards<'a>(GetAddressBookResources<'a>);

impl<'a> AllCards<'a> {
    pub(crate) fn new(collection_href: &'a str) -> Self {
        Self(GetAddressBookResources::new(collection_href))
    }
}

impl DavRequest for AllCards<'_> {
    type Response = GetAddressBookResourcesResponse;
    type ParseError = ParseResponseError;
    type Error<E> = WebDavError<E>;

    fn prepare_request(&self, base_url: Uri) -> Result<Request<String>, http::Error> {
        let request = self.0.prepare_request(base_url)?;
        let (parts, body) = request.into_parts();
        // If libdav ever renders it differently, the filtered query still works
        // (cards without FN are then missing until the next full listing).
        Ok(Request::from_parts(parts, body.replacen(LIBDAV_FILTER, "", 1)))
    }

    fn parse_response(&self, parts: &http::response::Parts, body: &[u8]) -> Result<Self::Response, Self::ParseError> {
        self.0.parse_response(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_asks_for_every_card_without_a_filter() {
        let request = AllCards::new("/bench/contacts/").prepare_request(Uri::from_static("http://h")).unwrap();
        assert_eq!(request.method().as_str(), "REPORT");
        assert_eq!(request.headers()["Depth"], "1");
        let body = request.body();
        assert!(body.contains("addressbook-query") && body.contains("address-data"), "{body}");
        assert!(!body.contains("filter"), "{body}");
    }
}
