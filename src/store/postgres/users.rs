//! User data on PostgreSQL: profiles, called numbers, assignments, last
//! choices, API keys, web tokens and accounts in `user_kv` under sled's keys
//! (the prefix table is in `sled/users.rs`); call records in `calls`.
//! Nothing is cached here (other replicas write the same rows): a write of a
//! profile, called numbers or an assignment sends a `NOTIFY` in its own
//! transaction, which keeps every replica's lookup cache ([`crate::store::cache`]) current.

use super::kv::{Session, Table};
use super::PgStore;
use crate::model::{AccountSpec, CallId, CallRecord, HandlingCode, UserId, UserProfile};
use crate::store::keys::{self, check_part, key, prefix};
use crate::store::sled::users::{decode_profile, target_token, ProfileEntry};
use crate::store::{
    codec, AccountStore, ApiKeyStore, AssignTarget, CallStore, RecordRef, Result, RunRecord, StoreError, StoredKey,
    StoredWebToken, SubscriptionRecord, TimeWindow, UserStore, WebTokenStore,
};
use chrono::{DateTime, Utc};
use postgres::GenericClient;
use std::collections::BTreeMap;

const T: Table = Table::Users;

/// The lock every change of called numbers takes: a number belongs to one user across replicas.
const NUMBERS_LOCK: &[u8] = b"cb:called-numbers";

fn profile_entry<C: GenericClient>(s: &mut Session<'_, C>, user: &UserId) -> Result<Option<ProfileEntry>> {
    s.get(T, "reading a profile", &key(b'u', &[keys::user(user)]))?.map(|v| decode_profile(&v)).transpose()
}

/// Tells every replica's lookup cache ([`crate::store::cache`]) at commit that `user`'s
/// profile, called numbers or assignments changed (`None`: every user's).
pub(super) fn notify_users_changed<C: GenericClient>(s: &mut Session<'_, C>, user: Option<&UserId>) -> Result<()> {
    use crate::store::cache;
    let text = super::bus::inline_text(cache::ORIGIN, cache::TOPIC, &cache::payload(user));
    s.execute("telling the replicas' caches", "SELECT pg_notify($1, $2)", &[&super::bus::CHANNEL, &text])?;
    Ok(())
}

fn decode_opt<V: serde::de::DeserializeOwned>(what: &'static str, v: Option<Vec<u8>>) -> Result<Option<V>> {
    v.map(|v| codec::decode(what, &v)).transpose()
}

impl UserStore for PgStore {
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()> {
        profile.validate().map_err(StoreError::Invalid)?;
        let user = keys::user(&profile.id);
        for k in called_keys {
            check_part("called number", k).map_err(StoreError::Invalid)?;
        }
        let entry = codec::encode(&ProfileEntry { profile: profile.clone(), called_keys: called_keys.to_vec() });
        self.with(|c| {
            c.transaction(|s| {
                s.lock(NUMBERS_LOCK)?;
                let old = profile_entry(s, &profile.id).ok().flatten();
                let mut changes = BTreeMap::new();
                for k in called_keys {
                    if let Some(owner) = s.get(T, "finding a called number", &key(b'n', &[k]))? {
                        if owner != user.as_bytes() {
                            return Err(StoreError::Invalid(format!(
                                "called number {k} already belongs to user {}",
                                String::from_utf8_lossy(&owner)
                            )));
                        }
                    }
                }
                for k in old.iter().flat_map(|o| o.called_keys.iter()) {
                    changes.insert(key(b'n', &[k]), None);
                }
                for k in called_keys {
                    changes.insert(key(b'n', &[k]), Some(user.as_bytes().to_vec()));
                }
                changes.insert(key(b'u', &[user]), Some(entry.clone()));
                s.write(T, "writing a profile", changes)?;
                notify_users_changed(s, Some(&profile.id))
            })
        })
    }

    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>> {
        Ok(self.with(|c| profile_entry(&mut c.session(), user))?.map(|e| e.profile))
    }

    fn profiles(&self) -> Result<Vec<UserProfile>> {
        self.with(|c| {
            c.session()
                .scan_prefix(T, "listing profiles", &[b'u', keys::SEP])?
                .into_iter()
                .map(|(_, v)| Ok(decode_profile(&v)?.profile))
                .collect()
        })
    }

    fn delete_user(&self, user: &UserId) -> Result<bool> {
        let u = keys::user(user);
        self.with(|c| {
            c.transaction(|s| {
                s.lock(NUMBERS_LOCK)?;
                let Some(entry) = profile_entry(s, user)? else { return Ok(false) };
                s.execute("deleting a user's calls", "DELETE FROM calls WHERE user_id = $1", &[&u])?;
                let mut changes = BTreeMap::new();
                for k in &entry.called_keys {
                    changes.insert(key(b'n', &[k]), None);
                }
                for p in [b'g', b'l'] {
                    for (k, _) in s.scan_prefix(T, "deleting a user", &prefix(p, &[u]))? {
                        changes.insert(k, None);
                    }
                }
                changes.insert(key(b'u', &[u]), None);
                s.write(T, "deleting a user", changes)?;
                notify_users_changed(s, Some(user))?;
                Ok(true)
            })
        })
    }

    fn user_by_called_number(&self, k: &str) -> Result<Option<UserId>> {
        match self.with(|c| c.session().get(T, "finding a called number", &key(b'n', &[k])))? {
            Some(v) => UserId::parse(&String::from_utf8_lossy(&v))
                .map(Some)
                .map_err(|reason| StoreError::Corrupt { what: "called number", reason }),
            None => Ok(None),
        }
    }

    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>> {
        let k = key(b'g', &[keys::user(user), &target_token(target)]);
        decode_opt("assignment", self.with(|c| c.session().get(T, "reading an assignment", &k))?)
    }

    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()> {
        let token = target_token(target);
        check_part("assignment target", &token).map_err(StoreError::Invalid)?;
        let k = key(b'g', &[keys::user(user), &token]);
        self.with(|c| {
            c.transaction(|s| {
                match code {
                    Some(code) => s.put(T, "writing an assignment", k.clone(), codec::encode(code))?,
                    None => s.remove(T, "writing an assignment", &k).map(|_| ())?,
                }
                notify_users_changed(s, Some(user))
            })
        })
    }

    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>> {
        let k = key(b'l', &[keys::user(user), number_key]);
        decode_opt("last choice", self.with(|c| c.session().get(T, "reading a last choice", &k))?)
    }

    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()> {
        check_part("number key", number_key).map_err(StoreError::Invalid)?;
        let k = key(b'l', &[keys::user(user), number_key]);
        self.with(|c| c.session().put(T, "writing a last choice", k, codec::encode(contact)))
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn calls_of(rows: Vec<postgres::Row>) -> Result<Vec<CallRecord>> {
    rows.iter().map(|r| codec::decode("call record", r.get::<_, &[u8]>(0))).collect()
}

impl CallStore for PgStore {
    fn put_call(&self, call: &CallRecord) -> Result<()> {
        // Backups keep calls under sled-style keys: no NUL in their parts.
        check_part("call id", call.id.as_str()).map_err(StoreError::Invalid)?;
        if let Some(caller) = &call.caller_key {
            check_part("caller key", caller).map_err(StoreError::Invalid)?;
        }
        let v = codec::encode(call);
        self.with(|c| {
            c.session().execute(
                "writing a call record",
                "INSERT INTO calls (id, user_id, caller_key, at_us, v) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, caller_key = excluded.caller_key, \
                 at_us = excluded.at_us, v = excluded.v",
                &[&call.id.as_str(), &call.user.as_str(), &call.caller_key, &micros(call.at), &v],
            )?;
            Ok(())
        })
    }

    fn call(&self, id: &CallId) -> Result<Option<CallRecord>> {
        let rows = self.with(|c| {
            c.session().query("reading a call record", "SELECT v FROM calls WHERE id = $1", &[&id.as_str()])
        })?;
        Ok(calls_of(rows)?.pop())
    }

    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        if window.from >= window.to || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        calls_of(self.with(|c| {
            c.session().query(
                "listing calls",
                "SELECT v FROM calls WHERE user_id = $1 AND at_us >= $2 AND at_us < $3 \
                 ORDER BY at_us DESC, id DESC LIMIT $4",
                &[&user.as_str(), &micros(window.from), &micros(window.to), &limit],
            )
        })?)
    }

    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        if window.from >= window.to || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        calls_of(self.with(|c| {
            c.session().query(
                "listing calls from a caller",
                "SELECT v FROM calls WHERE user_id = $1 AND caller_key = $2 AND at_us >= $3 AND at_us < $4 \
                 ORDER BY at_us DESC, id DESC LIMIT $5",
                &[&user.as_str(), &caller_key, &micros(window.from), &micros(window.to), &limit],
            )
        })?)
    }
}

const ACCOUNT: u8 = b'A';
const SECRET: u8 = b'S';
const RUN: u8 = b'R';
const SUBSCRIPTION: u8 = b'N';

impl AccountStore for PgStore {
    fn put_account(&self, spec: &AccountSpec, sealed_secret: Option<&[u8]>) -> Result<()> {
        check_part("account id", &spec.id).map_err(StoreError::Invalid)?;
        let mut changes = BTreeMap::from([(key(ACCOUNT, &[&spec.id]), Some(codec::encode(spec)))]);
        if let Some(sealed) = sealed_secret {
            changes.insert(key(SECRET, &[&spec.id]), Some(sealed.to_vec()));
        }
        self.with(|c| c.transaction(|s| s.write(T, "writing an account", changes)))
    }

    fn account(&self, id: &str) -> Result<Option<AccountSpec>> {
        if check_part("account id", id).is_err() {
            return Ok(None);
        }
        decode_opt("account", self.with(|c| c.session().get(T, "reading an account", &key(ACCOUNT, &[id])))?)
    }

    fn accounts(&self) -> Result<Vec<AccountSpec>> {
        self.with(|c| {
            c.session()
                .scan_prefix(T, "listing accounts", &prefix(ACCOUNT, &[]))?
                .into_iter()
                .map(|(_, v)| codec::decode("account", &v))
                .collect()
        })
    }

    fn sealed_secret(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| c.session().get(T, "reading a secret", &key(SECRET, &[id])))
    }

    fn put_sealed_secret(&self, id: &str, sealed: &[u8]) -> Result<()> {
        check_part("account id", id).map_err(StoreError::Invalid)?;
        self.with(|c| c.session().put(T, "writing a secret", key(SECRET, &[id]), sealed.to_vec()))
    }

    fn delete_account(&self, id: &str) -> Result<bool> {
        self.with(|c| {
            c.transaction(|s| {
                let existed = s.remove(T, "deleting an account", &key(ACCOUNT, &[id]))?;
                s.write(
                    T,
                    "deleting an account",
                    BTreeMap::from([(key(SECRET, &[id]), None), (key(RUN, &[id]), None)]),
                )?;
                Ok(existed)
            })
        })
    }

    fn run_record(&self, id: &str) -> Result<Option<RunRecord>> {
        decode_opt("sync outcome", self.with(|c| c.session().get(T, "reading a sync outcome", &key(RUN, &[id])))?)
    }

    fn put_run_record(&self, id: &str, run: &RunRecord) -> Result<()> {
        check_part("account id", id).map_err(StoreError::Invalid)?;
        self.with(|c| c.session().put(T, "writing a sync outcome", key(RUN, &[id]), codec::encode(run)))
    }

    fn subscriptions(&self) -> Result<Vec<(String, SubscriptionRecord)>> {
        self.with(|c| {
            c.session()
                .scan_prefix(T, "listing subscriptions", &prefix(SUBSCRIPTION, &[]))?
                .into_iter()
                .map(|(k, v)| {
                    let id = keys::parts(&k).first().map(|p| p.to_string()).unwrap_or_default();
                    Ok((id, codec::decode("subscription", &v)?))
                })
                .collect()
        })
    }

    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        if check_part("subscription id", id).is_err() {
            return Ok(None);
        }
        decode_opt(
            "subscription",
            self.with(|c| c.session().get(T, "reading a subscription", &key(SUBSCRIPTION, &[id])))?,
        )
    }

    fn put_subscription(&self, id: &str, s: &SubscriptionRecord) -> Result<()> {
        check_part("subscription id", id).map_err(StoreError::Invalid)?;
        self.with(|c| c.session().put(T, "writing a subscription", key(SUBSCRIPTION, &[id]), codec::encode(s)))
    }

    fn delete_subscription(&self, id: &str) -> Result<()> {
        if check_part("subscription id", id).is_err() {
            return Ok(());
        }
        self.with(|c| c.session().remove(T, "deleting a subscription", &key(SUBSCRIPTION, &[id]))).map(drop)
    }
}

impl ApiKeyStore for PgStore {
    fn put_key(&self, k: &StoredKey) -> Result<()> {
        check_part("key id", &k.id).map_err(StoreError::Invalid)?;
        self.with(|c| c.session().put(T, "writing an API key", key(b'a', &[&k.id]), codec::encode(k)))
    }

    fn key(&self, id: &str) -> Result<Option<StoredKey>> {
        if check_part("key id", id).is_err() {
            return Ok(None);
        }
        decode_opt("API key", self.with(|c| c.session().get(T, "reading an API key", &key(b'a', &[id])))?)
    }

    fn keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>> {
        let mut out = Vec::new();
        for (_, v) in self.with(|c| c.session().scan_prefix(T, "listing API keys", &prefix(b'a', &[])))? {
            let k: StoredKey = codec::decode("API key", &v)?;
            if tenant.is_none_or(|t| t == k.tenant) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn delete_key(&self, id: &str) -> Result<bool> {
        self.with(|c| c.session().remove(T, "deleting an API key", &key(b'a', &[id])))
    }
}

impl WebTokenStore for PgStore {
    fn put_web_token(&self, t: &StoredWebToken) -> Result<()> {
        check_part("token hash", &t.sha256).map_err(StoreError::Invalid)?;
        self.with(|c| c.session().put(T, "writing a web token", key(b'w', &[&t.sha256]), codec::encode(t)))
    }

    fn web_token(&self, sha256: &str) -> Result<Option<StoredWebToken>> {
        if check_part("token hash", sha256).is_err() {
            return Ok(None);
        }
        decode_opt("web token", self.with(|c| c.session().get(T, "reading a web token", &key(b'w', &[sha256])))?)
    }

    fn delete_web_token(&self, sha256: &str) -> Result<bool> {
        self.with(|c| c.session().remove(T, "deleting a web token", &key(b'w', &[sha256])))
    }

    fn purge_web_tokens(&self, now: DateTime<Utc>) -> Result<usize> {
        self.with(|c| {
            c.transaction(|s| {
                let mut changes = BTreeMap::new();
                for (k, v) in s.scan_prefix(T, "listing web tokens", &prefix(b'w', &[]))? {
                    let t: StoredWebToken = codec::decode("web token", &v)?;
                    if t.expires <= now {
                        changes.insert(k, None);
                    }
                }
                let n = changes.len();
                s.write(T, "deleting web tokens", changes)?;
                Ok(n)
            })
        })
    }
}
