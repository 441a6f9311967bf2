//! vCard components → [`Contact`]s: names, phones with kinds, emails,
//! categories, handling code and photo.

use crate::content::{self, Component, Prop};
use crate::prepass::{Dialect, SIZE_PARAM};
use crate::values::{decoded, split_unescaped, strip_mailto, text};
use crate::ParseError;
use contactbridge_connector::{Contact, PhoneKind, PhoneNumber, PhotoRef, RecordId};

/// Inline photos up to this decoded size are kept in the record.
pub const MAX_INLINE_PHOTO: u64 = 4096;

/// Properties that carry a handling code directly.
const HANDLING_CODE_PROPS: [&str; 2] = ["X-CONTACTBRIDGE-CODE", "X-HANDLING-CODE"];

/// The cards of a text, in order (nested AGENT cards excluded).
pub(crate) fn cards(bytes: &[u8]) -> Vec<Component> {
    content::parse(bytes, Dialect::VCard).into_iter().filter(|c| c.name == "VCARD").collect()
}

/// Maps one card; `id` is used when given, else the UID, else `fallback_id`.
pub(crate) fn to_contact(card: &Component, id: Option<RecordId>, fallback_id: &str) -> Result<Contact, ParseError> {
    if !card.complete {
        return Err(ParseError::new("missing END:VCARD (the card is cut off)"));
    }
    let first_text = |name: &str| card.props(name).map(text).find(|t| !t.is_empty());
    let uid = first_text("UID").unwrap_or_default();
    let mut contact = Contact {
        id: id.unwrap_or_else(|| RecordId::new(if uid.is_empty() { fallback_id.to_string() } else { uid.clone() })),
        uid,
        display_name: first_text("FN").unwrap_or_default(),
        job_title: first_text("TITLE"),
        ..Default::default()
    };
    if let Some(n) = card.prop("N") {
        let parts = split_unescaped(&decoded(n), ';');
        let part = |i: usize| parts.get(i).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        contact.family_name = part(0);
        contact.given_name = part(1);
    }
    contact.company = card
        .props("ORG")
        .filter_map(|p| split_unescaped(&decoded(p), ';').into_iter().next())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty());
    contact.phones = card.props("TEL").filter_map(|p| phone(card, p)).collect();
    contact.emails =
        card.props("EMAIL").map(|p| strip_mailto(&text(p)).to_string()).filter(|e| !e.is_empty()).collect();
    for p in card.props("CATEGORIES") {
        for cat in split_unescaped(&decoded(p), ',') {
            let cat = cat.trim();
            if !cat.is_empty() && !contact.categories.iter().any(|c| c.eq_ignore_ascii_case(cat)) {
                contact.categories.push(cat.to_string());
            }
        }
    }
    contact.handling_code = HANDLING_CODE_PROPS.iter().find_map(|name| first_text(name));
    contact.photo = card.prop("PHOTO").and_then(photo);

    let has_name = !contact.display_name.is_empty() || contact.given_name.is_some() || contact.family_name.is_some();
    if !has_name && contact.company.is_none() && contact.emails.is_empty() && contact.phones.is_empty() {
        return Err(ParseError::new("the card has no name (FN or N), organisation, email or phone number"));
    }
    Ok(contact)
}

fn phone(card: &Component, prop: &Prop) -> Option<PhoneNumber> {
    let mut raw = text(prop);
    // `get`, not indexing: a number may start with multi-byte characters (full-width digits).
    if raw.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tel:")) {
        raw = raw[4..].trim().to_string();
    }
    if raw.is_empty() {
        return None;
    }
    let mut labels: Vec<String> = prop.param_values("TYPE").map(str::to_ascii_lowercase).collect();
    if let Some(group) = &prop.group {
        let same_group =
            card.props.iter().filter(|p| p.group.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(group)));
        labels.extend(same_group.filter(|p| p.name == "X-ABLABEL").map(|p| ab_label(&text(p))));
    }
    Some(PhoneNumber::new(raw, phone_kind(&labels)))
}

/// `_$!<WorkFAX>!$_` → `workfax`; custom labels are kept (lower-cased).
fn ab_label(label: &str) -> String {
    label.trim_start_matches("_$!<").trim_end_matches(">!$_").to_ascii_lowercase()
}

/// The kind a set of TYPE values / labels names. Fax and pager win over
/// work/home (`TYPE=WORK,FAX` is a fax), then mobile, work, home.
pub(crate) fn phone_kind(labels: &[String]) -> PhoneKind {
    let has = |words: &[&str]| labels.iter().any(|l| words.iter().any(|w| l.contains(w)));
    if has(&["fax"]) {
        PhoneKind::Fax
    } else if has(&["pager"]) {
        PhoneKind::Pager
    } else if has(&["cell", "mobile", "iphone"]) {
        PhoneKind::Mobile
    } else if has(&["work"]) {
        PhoneKind::Work
    } else if has(&["home"]) {
        PhoneKind::Home
    } else {
        PhoneKind::Other
    }
}

fn photo(prop: &Prop) -> Option<PhotoRef> {
    if let Some(size) = prop.param(SIZE_PARAM).and_then(|s| s.parse().ok()) {
        return Some(PhotoRef::AtSource { bytes: size });
    }
    let value = prop.value.trim();
    if value.is_empty() {
        return None;
    }
    let is_uri = prop.param_is("VALUE", "uri") || prop.param_is("VALUE", "url");
    let (media_type, data) = match value.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("data:") => {
            let (head, data) = value[5..].split_once(',')?;
            let media = head.split(';').next().unwrap_or_default();
            (if media.is_empty() { None } else { Some(media.to_ascii_lowercase()) }, data)
        }
        _ if is_uri || value.contains("://") => return Some(PhotoRef::Url(value.to_string())),
        _ => (None, value),
    };
    let base64: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    let size = crate::prepass::estimate_base64_size(&base64);
    if size > MAX_INLINE_PHOTO {
        return Some(PhotoRef::AtSource { bytes: size });
    }
    let media_type = media_type
        .or_else(|| prop.param("MEDIATYPE").map(str::to_ascii_lowercase))
        .or_else(|| {
            prop.param_values("TYPE").find(|t| !t.eq_ignore_ascii_case("pref")).map(|t| {
                let t = t.to_ascii_lowercase();
                if t.contains('/') {
                    t
                } else {
                    format!("image/{t}")
                }
            })
        })
        .unwrap_or_else(|| sniff_media_type(&base64).to_string());
    Some(PhotoRef::Inline { media_type, base64 })
}

fn sniff_media_type(base64: &str) -> &'static str {
    if base64.starts_with("/9j/") {
        "image/jpeg"
    } else if base64.starts_with("iVBOR") {
        "image/png"
    } else if base64.starts_with("R0lGOD") {
        "image/gif"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn phone_kinds() {
        assert_eq!(phone_kind(&labels(&["work", "fax"])), PhoneKind::Fax);
        assert_eq!(phone_kind(&labels(&["cell", "voice", "pref"])), PhoneKind::Mobile);
        assert_eq!(phone_kind(&labels(&["work", "cell", "voice", "video", "text"])), PhoneKind::Mobile);
        assert_eq!(phone_kind(&labels(&["home", "voice"])), PhoneKind::Home);
        assert_eq!(phone_kind(&labels(&["workfax"])), PhoneKind::Fax);
        assert_eq!(phone_kind(&labels(&["pager"])), PhoneKind::Pager);
        assert_eq!(phone_kind(&labels(&["voice"])), PhoneKind::Other);
        assert_eq!(phone_kind(&labels(&["assistantphone"])), PhoneKind::Other);
    }
}
