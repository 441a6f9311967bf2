//! Writing a contact back to the server: fetch the card, edit it, PUT it with
//! `If-Match`; if someone else changed it in between (412), fetch and edit again once.

use crate::discovery::Dav;
use crate::error::dav_error;
use contactbridge_connector::{Contact, Error, ErrorKind, RecordId};
use libdav::carddav::GetAddressBookResources;
use libdav::dav::{GetEtag, PutResource, WebDavError};

/// Fetches one card: its text and etag.
pub(crate) async fn get_card(dav: &Dav, collection: &str, href: &str) -> Result<(String, String), Error> {
    let response = dav
        .request(GetAddressBookResources::new(collection).with_hrefs([href]))
        .await
        .map_err(|e| dav_error(&format!("fetching {href}"), e))?;
    let resource = response
        .resources
        .into_iter()
        .find(|r| r.href == href)
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{href} is not on the server")))?;
    match resource.content {
        Ok(content) => Ok((content.data, content.etag)),
        Err(status) => Err(Error::new(crate::error::status_kind(status), format!("fetching {href}: {status}"))),
    }
}

/// Applies `edit` to the card at `href` and stores the result with `If-Match`.
/// `edit` returns `None` when the card needs no change. Returns the stored contact
/// with its new etag.
pub(crate) async fn update_card(
    dav: &Dav,
    collection: &str,
    href: &str,
    edit: &mut (dyn FnMut(&str) -> Result<Option<String>, Error> + Send),
) -> Result<Contact, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (text, etag) = get_card(dav, collection, href).await?;
        let Some(edited) = edit(&text)? else {
            return parse(href, etag, &text);
        };
        let put = PutResource::new(href).update(edited.clone(), "text/vcard; charset=utf-8", etag);
        match dav.request(put).await {
            Ok(response) => {
                let etag = match response.etag {
                    Some(etag) => etag,
                    None => {
                        dav.request(GetEtag::new(href))
                            .await
                            .map_err(|e| dav_error(&format!("reading the etag of {href}"), e))?
                            .etag
                    }
                };
                tracing::info!(%href, "card updated on the server");
                return parse(href, etag, &edited);
            }
            Err(WebDavError::BadStatusCode(status)) if status.as_u16() == 412 && attempt == 1 => {
                tracing::info!(%href, "card changed on the server meanwhile: fetching it again");
            }
            Err(WebDavError::BadStatusCode(status)) if status.as_u16() == 412 => {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!("{href} keeps changing on the server (412 twice); try again later"),
                ));
            }
            Err(e) => return Err(dav_error(&format!("storing {href}"), e)),
        }
    }
}

fn parse(href: &str, etag: String, text: &str) -> Result<Contact, Error> {
    contactbridge_formats::parse_vcard(RecordId::new(href), Some(etag), text.as_bytes())
        .map_err(|e| Error::invalid_data(format!("{href} as stored on the server: {}", e.reason)))
}
