//! Graph JSON → contactbridge records (contacts, events, mail metadata, documents, out-of-office).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use contactbridge_connector::{
    BusyStatus, CalendarEvent, Contact, Document, MailDirection, MailMessage, Occurrence, OutOfOffice, Person,
    PhoneKind, PhoneNumber, Record, RecordId,
};
use serde_json::Value;

/// The contact properties we index (`$select`).
pub const CONTACT_SELECT: &str =
    "id,changeKey,displayName,givenName,surname,companyName,jobTitle,businessPhones,homePhones,mobilePhone,emailAddresses,categories";
/// The message properties we index (`$select`): metadata, never the body.
pub const MESSAGE_SELECT: &str =
    "id,subject,bodyPreview,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,webLink";
/// The drive item properties we index (`$select`).
pub const DRIVE_SELECT: &str = "id,name,webUrl,lastModifiedDateTime,file,deleted,createdBy,lastModifiedBy,shared";

/// What one item of a delta page means. Short-lived (moved straight into a change set),
/// so the large `Upsert` variant is not boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Upsert(Record),
    Delete(RecordId),
    /// Not ours to index (a folder in a drive listing).
    Skip,
    Reject {
        id: RecordId,
        reason: String,
    },
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn opt(v: &Value, key: &str) -> Option<String> {
    s(v, key).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string)
}

fn id_of(v: &Value) -> Option<RecordId> {
    s(v, "id").filter(|x| !x.is_empty()).map(RecordId::new)
}

/// A `{"id":…, "@removed":{…}}` entry, or a drive item with the `deleted` facet.
fn removed(v: &Value) -> bool {
    v.get("@removed").is_some() || v.get("deleted").is_some()
}

fn person(v: Option<&Value>) -> Option<Person> {
    let addr = v?.get("emailAddress")?;
    let email = s(addr, "address").unwrap_or_default().trim().to_lowercase();
    let name = opt(addr, "name");
    (!email.is_empty() || name.is_some()).then_some(Person { email, name })
}

fn people(v: Option<&Value>) -> Vec<Person> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(|p| person(Some(p))).collect()).unwrap_or_default()
}

/// Graph `dateTimeTimeZone` (`{"dateTime":"2017-01-01T09:00:00.0000000","timeZone":"UTC"}`) → UTC.
pub fn date_time_zone(v: &Value) -> Result<DateTime<Utc>, String> {
    let text = s(v, "dateTime").ok_or("missing dateTime")?;
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|e| format!("bad dateTime {text:?}: {e}"))?;
    match s(v, "timeZone").unwrap_or("UTC") {
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "tzone://Microsoft/Utc" => Ok(Utc.from_utc_datetime(&naive)),
        zone => {
            let tz: chrono_tz::Tz = zone.parse().map_err(|_| format!("time zone {zone:?} is not an IANA zone"))?;
            tz.from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("{text} does not exist in {zone}"))
        }
    }
}

fn rfc3339(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    s(v, key).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).filter(|x| !x.trim().is_empty())
}

/// A Graph contact.
pub fn contact(v: &Value) -> Item {
    let Some(id) = id_of(v) else { return reject_no_id() };
    if removed(v) {
        return Item::Delete(id);
    }
    Item::Upsert(Record::Contact(contact_record(id, v)))
}

pub fn contact_record(id: RecordId, v: &Value) -> Contact {
    let mut phones = Vec::new();
    phones.extend(strings(v.get("businessPhones")).map(|p| PhoneNumber::new(p, PhoneKind::Work)));
    phones.extend(strings(v.get("homePhones")).map(|p| PhoneNumber::new(p, PhoneKind::Home)));
    if let Some(m) = opt(v, "mobilePhone") {
        phones.push(PhoneNumber::new(m, PhoneKind::Mobile));
    }
    let emails = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| opt(e, "address"))
        .collect();
    Contact {
        uid: id.0.clone(),
        id,
        version: opt(v, "changeKey").or_else(|| opt(v, "@odata.etag")),
        display_name: opt(v, "displayName").unwrap_or_default(),
        given_name: opt(v, "givenName"),
        family_name: opt(v, "surname"),
        company: opt(v, "companyName"),
        job_title: opt(v, "jobTitle"),
        phones,
        emails,
        categories: strings(v.get("categories")).map(str::to_string).collect(),
        handling_code: None,
        photo: None,
    }
}

fn reject_no_id() -> Item {
    Item::Reject { id: RecordId::new("(no id)"), reason: "item without an id".into() }
}

/// An event (or an occurrence) of a calendarView delta.
pub fn event(v: &Value) -> Item {
    let Some(id) = id_of(v) else { return reject_no_id() };
    if removed(v) {
        return Item::Delete(id);
    }
    let times = v.get("start").map(date_time_zone).zip(v.get("end").map(date_time_zone));
    let (start, end) = match times {
        Some((Ok(start), Ok(end))) => (start, end),
        Some((Err(e), _)) | Some((_, Err(e))) => return Item::Reject { id, reason: format!("event time: {e}") },
        None => return Item::Reject { id, reason: "event without start or end".into() },
    };
    let busy = match s(v, "showAs").unwrap_or("busy") {
        "free" => BusyStatus::Free,
        "tentative" => BusyStatus::Tentative,
        "oof" => BusyStatus::OutOfOffice,
        "workingElsewhere" => BusyStatus::WorkingElsewhere,
        _ => BusyStatus::Busy,
    };
    let attendees = v
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| person(Some(a)))
        .map(|p| p.email)
        .filter(|e| !e.is_empty())
        .collect();
    Item::Upsert(Record::Event(CalendarEvent {
        uid: opt(v, "iCalUId").unwrap_or_else(|| id.0.clone()),
        id,
        version: opt(v, "changeKey"),
        subject: opt(v, "subject").unwrap_or_default(),
        location: v.get("location").and_then(|l| opt(l, "displayName")),
        time_zone: None,
        all_day: v.get("isAllDay").and_then(Value::as_bool).unwrap_or(false),
        busy,
        organizer: person(v.get("organizer")).map(|p| p.email).filter(|e| !e.is_empty()),
        attendees,
        occurrences: vec![Occurrence { start, end }],
        web_link: opt(v, "webLink"),
    }))
}

/// A message's metadata; `direction` comes from the folder (Inbox or Sent Items).
pub fn message(v: &Value, direction: MailDirection) -> Item {
    let Some(id) = id_of(v) else { return reject_no_id() };
    if removed(v) {
        return Item::Delete(id);
    }
    let date = match direction {
        MailDirection::Sent => rfc3339(v, "sentDateTime").or_else(|| rfc3339(v, "receivedDateTime")),
        MailDirection::Received => rfc3339(v, "receivedDateTime").or_else(|| rfc3339(v, "sentDateTime")),
    };
    let Some(date) = date else { return Item::Reject { id, reason: "message without a date".into() } };
    let preview: String = s(v, "bodyPreview").unwrap_or_default().chars().take(255).collect();
    Item::Upsert(Record::Mail(MailMessage {
        id,
        direction,
        from: person(v.get("from")).unwrap_or_default(),
        to: people(v.get("toRecipients")),
        cc: people(v.get("ccRecipients")),
        subject: opt(v, "subject").unwrap_or_default(),
        date,
        preview,
        web_link: opt(v, "webLink"),
    }))
}

fn identity_person(v: Option<&Value>) -> Option<Person> {
    let user = v?.get("user")?;
    let email = s(user, "email").unwrap_or_default().trim().to_lowercase();
    let name = opt(user, "displayName");
    (!email.is_empty() || name.is_some()).then_some(Person { email, name })
}

/// A OneDrive item: files only; the people are its creator, last modifier, owner and sharer.
pub fn drive_item(v: &Value) -> Item {
    let Some(id) = id_of(v) else { return reject_no_id() };
    if removed(v) {
        return Item::Delete(id);
    }
    if v.get("file").is_none() {
        return Item::Skip;
    }
    let Some(modified) = rfc3339(v, "lastModifiedDateTime") else {
        return Item::Reject { id, reason: "drive item without lastModifiedDateTime".into() };
    };
    let shared = v.get("shared");
    let mut people: Vec<Person> = [
        identity_person(v.get("createdBy")),
        identity_person(v.get("lastModifiedBy")),
        identity_person(shared.and_then(|s| s.get("owner"))),
        identity_person(shared.and_then(|s| s.get("sharedBy"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut seen = std::collections::HashSet::new();
    // One entry per person: by email where known, else by name.
    people
        .retain(|p| seen.insert(if p.email.is_empty() { p.name.clone().unwrap_or_default() } else { p.email.clone() }));
    Item::Upsert(Record::Document(Document {
        id,
        name: opt(v, "name").unwrap_or_default(),
        web_link: opt(v, "webUrl"),
        modified,
        people,
    }))
}

/// The record id of a mailbox's out-of-office setting.
pub const OOF_ID: &str = "automaticRepliesSetting";

/// `automaticRepliesSetting` → one out-of-office record.
pub fn out_of_office(v: &Value) -> Item {
    let id = RecordId::new(OOF_ID);
    let status = s(v, "status").unwrap_or("disabled");
    let scheduled = match status {
        "scheduled" => {
            let window = v
                .get("scheduledStartDateTime")
                .map(date_time_zone)
                .zip(v.get("scheduledEndDateTime").map(date_time_zone));
            match window {
                Some((Ok(start), Ok(end))) => Some(Occurrence { start, end }),
                Some((Err(e), _)) | Some((_, Err(e))) => {
                    return Item::Reject { id, reason: format!("out-of-office schedule: {e}") }
                }
                None => return Item::Reject { id, reason: "scheduled out-of-office without its window".into() },
            }
        }
        "disabled" | "alwaysEnabled" => None,
        other => return Item::Reject { id, reason: format!("unknown automatic replies status {other:?}") },
    };
    Item::Upsert(Record::OutOfOffice(OutOfOffice { id, enabled: status != "disabled", scheduled }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contact_from_documented_shape() {
        let v = json!({"id":"AAMkAGI2THVSAAA=","changeKey":"EQAAABYAAAB","displayName":"Pavel Bansky",
            "givenName":"Pavel","surname":"Bansky","businessPhones":["+1 732 555 0102"],"homePhones":[],
            "mobilePhone":null,"emailAddresses":[{"address":"pavelb@contoso.onmicrosoft.com","name":"Pavel Bansky"}],
            "categories":["VIP"]});
        let Item::Upsert(Record::Contact(c)) = contact(&v) else { panic!() };
        assert_eq!(c.phones, vec![PhoneNumber::new("+1 732 555 0102", PhoneKind::Work)]);
        assert_eq!(c.emails, vec!["pavelb@contoso.onmicrosoft.com"]);
        assert_eq!(c.version.as_deref(), Some("EQAAABYAAAB"));
        assert!(matches!(contact(&json!({"id":"x","@removed":{"reason":"deleted"}})), Item::Delete(_)));
    }

    #[test]
    fn oof_schedule_in_utc_and_iana() {
        let v = json!({"status":"scheduled","scheduledStartDateTime":{"dateTime":"2016-03-14T07:00:00.0000000","timeZone":"UTC"},
            "scheduledEndDateTime":{"dateTime":"2016-03-28T07:00:00.0000000","timeZone":"Europe/Berlin"}});
        let Item::Upsert(Record::OutOfOffice(o)) = out_of_office(&v) else { panic!() };
        assert!(o.enabled);
        let w = o.scheduled.unwrap();
        assert_eq!(w.start.to_rfc3339(), "2016-03-14T07:00:00+00:00");
        assert_eq!(w.end.to_rfc3339(), "2016-03-28T05:00:00+00:00");
        assert!(matches!(out_of_office(&json!({"status":"weird"})), Item::Reject { .. }));
    }

    #[test]
    fn drive_folders_are_skipped_and_people_deduplicated() {
        assert!(matches!(drive_item(&json!({"id":"f","folder":{}})), Item::Skip));
        let v = json!({"id":"d","name":"Offer.docx","file":{},"lastModifiedDateTime":"2024-01-02T03:04:05Z",
            "createdBy":{"user":{"email":"A@x.com","displayName":"A"}},"lastModifiedBy":{"user":{"email":"a@x.com","displayName":"A"}}});
        let Item::Upsert(Record::Document(d)) = drive_item(&v) else { panic!() };
        assert_eq!(d.people.len(), 1);
        assert!(matches!(drive_item(&json!({"id":"d","deleted":{"state":"deleted"}})), Item::Delete(_)));
    }
}
