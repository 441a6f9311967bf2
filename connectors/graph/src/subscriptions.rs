//! Graph change notifications: create, renew and delete subscriptions
//! (`POST/PATCH/DELETE /subscriptions`) for a mailbox's contacts, events and messages.
//!
//! Microsoft's rules followed here: the `notificationUrl` must be HTTPS and answer the
//! validation handshake (Graph POSTs `?validationToken=…` and wants it echoed as
//! `text/plain` with 200 within 10 s) before the subscription is created; Outlook
//! resources (contacts, events, messages) allow at most 10,080 minutes (7 days) until
//! expiration; `clientState` (at most 128 characters) is sent back in every
//! notification so the receiver can tell Graph's notifications from forged ones;
//! lifecycle notifications (`reauthorizationRequired`, `subscriptionRemoved`,
//! `missed`) go to the `lifecycleNotificationUrl`.

use crate::client::GraphHttp;
use crate::GraphConnector;
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::Error;
use graph_rs_sdk::http::Method;
use graph_rs_sdk::GraphClient;
use serde_json::{json, Value};

/// Graph's maximum lifetime of an Outlook (contact, event, message) subscription.
pub const MAX_LIFETIME: Duration = Duration::minutes(10_080);

/// What a mailbox is watched for; each is one subscription.
pub const PARTS: [&str; 3] = ["contacts", "events", "messages"];

/// A subscription as Graph returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub expires: DateTime<Utc>,
}

impl Subscription {
    fn from_json(v: &Value) -> Result<Self, Error> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id").ok_or_else(|| Error::invalid_data("a subscription without an id"))?;
        let expires = s("expirationDateTime")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Error::invalid_data("a subscription without a readable expirationDateTime"))?;
        Ok(Self { id, resource: s("resource").unwrap_or_default(), expires })
    }
}

/// The resource path Graph watches for `part` of `mailbox`.
pub fn resource(mailbox: &str, part: &str) -> String {
    let m = urlencoding_path(mailbox);
    match part {
        "events" => format!("users/{m}/events"),
        "messages" => format!("users/{m}/messages"),
        _ => format!("users/{m}/contacts"),
    }
}

/// Mailbox names are user principal names or ids; anything outside their alphabet is
/// percent-encoded so a name cannot change the resource path.
fn urlencoding_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'@' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn expiration(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl GraphConnector {
    fn subscriptions_url(&self, id: Option<&str>) -> Result<graph_rs_sdk::http::Url, Error> {
        let mut url = graph_rs_sdk::http::Url::parse(self.account().graph_base.trim_end_matches('/'))
            .map_err(|e| Error::local(format!("invalid Graph base URL: {e}")))?;
        {
            let mut segs =
                url.path_segments_mut().map_err(|_| Error::local("the Graph base URL cannot have a path"))?;
            segs.push("subscriptions");
            if let Some(id) = id {
                segs.push(id);
            }
        }
        Ok(url)
    }

    /// Subscribes to changes of `part` ([`PARTS`]) of `mailbox`, until `expires` (capped
    /// at [`MAX_LIFETIME`] from now). Graph validates `notification_url` before answering.
    pub async fn subscribe(
        &self,
        mailbox: &str,
        part: &str,
        notification_url: &str,
        lifecycle_url: &str,
        client_state: &str,
        expires: DateTime<Utc>,
    ) -> Result<Subscription, Error> {
        let expires = expires.min(Utc::now() + MAX_LIFETIME - Duration::minutes(1));
        let body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": resource(mailbox, part),
            "expirationDateTime": expiration(expires),
            "clientState": client_state,
        });
        let url = self.subscriptions_url(None)?;
        let what = format!("subscribing to {part} of {mailbox}");
        let make = |g: &GraphClient| GraphHttp::custom(g, Method::POST, &url, Some(&body));
        Subscription::from_json(&self.http().send(mailbox, &what, &make).await?)
    }

    /// Moves a subscription's expiration to `expires` (capped). `NotFound`: Graph removed it; create a new one.
    pub async fn renew(&self, mailbox: &str, id: &str, expires: DateTime<Utc>) -> Result<Subscription, Error> {
        let expires = expires.min(Utc::now() + MAX_LIFETIME - Duration::minutes(1));
        let body = json!({ "expirationDateTime": expiration(expires) });
        let url = self.subscriptions_url(Some(id))?;
        let what = format!("renewing a subscription of {mailbox}");
        let make = |g: &GraphClient| GraphHttp::custom(g, Method::PATCH, &url, Some(&body));
        Subscription::from_json(&self.http().send(mailbox, &what, &make).await?)
    }

    /// Deletes a subscription; one Graph no longer knows counts as deleted.
    pub async fn unsubscribe(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let url = self.subscriptions_url(Some(id))?;
        let what = format!("deleting a subscription of {mailbox}");
        let make = |g: &GraphClient| GraphHttp::custom(g, Method::DELETE, &url, None);
        match self.http().send(mailbox, &what, &make).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == contactbridge_connector::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_keep_the_mailbox_inside_its_segment() {
        assert_eq!(resource("dana@contoso.example", "contacts"), "users/dana@contoso.example/contacts");
        assert_eq!(resource("a/../b?x", "events"), "users/a%2F..%2Fb%3Fx/events");
    }
}
