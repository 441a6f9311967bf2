//! The Admin service's account RPCs on the account registry
//! ([`crate::accounts::Registry`]): register, list, remove, test, sync, status.
//! An admin key reaches only accounts whose users are all in its tenant.

use super::{convert, error, pb, Principal};
use crate::accounts::{settings_json, spec_from_registration, AccountError, AccountSpec, Registration, Registry};
use crate::store::Store;
use crate::user::UserId;
use std::sync::Arc;
use tonic::Status;

fn account_error(e: AccountError) -> Status {
    match e {
        e @ AccountError::NotFound(_) => Status::not_found(e.to_string()),
        e @ AccountError::Exists(_) => Status::already_exists(e.to_string()),
        AccountError::Invalid(m) => Status::invalid_argument(m),
        e @ AccountError::Busy(_) => Status::failed_precondition(e.to_string()),
        AccountError::Source { message, .. } => Status::failed_precondition(message),
        AccountError::Store(e) => error::store(e),
        e @ AccountError::Secret(_) => {
            tracing::error!(error = %e, "account secret failure");
            Status::internal("the bridge could not seal or open an account secret; see the server log")
        }
    }
}

/// Another tenant's account answers exactly as an unknown one.
fn no_account(id: &str) -> Status {
    Status::not_found(format!("no account {:?}", id.trim()))
}

/// The account `id` of the key's tenant: stored as `<tenant>/<id>`, or (registered
/// before ids were scoped) as `id` with every user it feeds in the tenant.
fn own_account(store: &dyn Store, registry: &Registry, who: &Principal, id: &str) -> Result<AccountSpec, Status> {
    if AccountSpec::check_id(id.trim()).is_err() {
        return Err(no_account(id));
    }
    let found = |stored: &str| match registry.get(stored) {
        Ok(spec) => Ok(Some(spec)),
        Err(AccountError::NotFound(_)) => Ok(None),
        Err(e) => Err(account_error(e)),
    };
    let spec = match found(&AccountSpec::scoped_id(&who.tenant, id))? {
        Some(spec) => spec,
        None => match found(id.trim())? {
            Some(legacy) if legacy.tenant.is_none() => legacy,
            _ => return Err(no_account(id)),
        },
    };
    if !all_in_tenant(store, who, &spec.users())? {
        return Err(no_account(id));
    }
    Ok(spec)
}

/// Whether every user exists and is in the key's tenant.
fn all_in_tenant(store: &dyn Store, who: &Principal, users: &[UserId]) -> Result<bool, Status> {
    for u in users {
        match store.profile(u).map_err(error::store)? {
            Some(p) if p.tenant == who.tenant => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn check_users(store: &dyn Store, who: &Principal, users: &[UserId]) -> Result<(), Status> {
    if all_in_tenant(store, who, users)? {
        Ok(())
    } else {
        Err(error::no_user())
    }
}

fn kind_name(kind: i32) -> Result<&'static str, Status> {
    Ok(match pb::AccountKind::try_from(kind).unwrap_or(pb::AccountKind::Unspecified) {
        pb::AccountKind::Graph => "graph",
        pb::AccountKind::Carddav => "carddav",
        pb::AccountKind::Caldav => "caldav",
        pb::AccountKind::Files => "files",
        pb::AccountKind::Unspecified => return Err(Status::invalid_argument("account.kind is required")),
    })
}

fn account(spec: &AccountSpec) -> pb::Account {
    let kind = match spec.source.name() {
        "graph" => pb::AccountKind::Graph,
        "carddav" => pb::AccountKind::Carddav,
        "caldav" => pb::AccountKind::Caldav,
        _ => pb::AccountKind::Files,
    };
    pb::Account {
        id: AccountSpec::public_id(&spec.id).to_string(),
        user_id: spec.user.to_string(),
        kind: kind as i32,
        location: spec.source.location(),
        settings_json: settings_json(spec),
        schedule: spec.schedule.as_ref().map(|s| s.cron.clone()).unwrap_or_default(),
        schedule_time_zone: spec.schedule.as_ref().map(|s| s.time_zone.clone()).unwrap_or_default(),
        enabled: spec.enabled,
    }
}

pub fn register(
    store: &dyn Store,
    registry: &Registry,
    who: &Principal,
    r: pb::RegisterAccountRequest,
) -> Result<pb::Account, Status> {
    let a = r.account.ok_or_else(|| Status::invalid_argument("account is required"))?;
    let registration = Registration {
        id: &a.id,
        user: &a.user_id,
        kind: kind_name(a.kind)?,
        location: &a.location,
        settings_json: &a.settings_json,
        schedule: &a.schedule,
        time_zone: &a.schedule_time_zone,
        secret: &r.secret,
    };
    let mut spec = spec_from_registration(&registration).map_err(account_error)?;
    check_users(store, who, &spec.users())?;
    // Scoped by tenant: another tenant's ids neither collide nor show. Limited by the
    // server's [accounts] settings (files roots, no inner network addresses).
    if own_account(store, registry, who, &spec.id).is_ok() {
        return Err(Status::already_exists(format!("account {:?} already exists", spec.id)));
    }
    spec.id = AccountSpec::scoped_id(&who.tenant, &spec.id);
    spec.tenant = Some(who.tenant.clone());
    spec.operator = false;
    let stored = registry.add(spec).map_err(account_error)?;
    tracing::info!(account = %stored.id, user = %stored.user, kind = stored.source.name(), "account registered");
    Ok(account(&stored))
}

pub fn list(store: &dyn Store, registry: &Registry, who: &Principal, user: &str) -> Result<Vec<pb::Account>, Status> {
    let user = convert::user_id(user)?;
    check_users(store, who, std::slice::from_ref(&user))?;
    let all = registry.list().map_err(account_error)?;
    let ours = |s: &&AccountSpec| s.tenant.as_ref().is_none_or(|t| *t == who.tenant);
    Ok(all.iter().filter(|s| s.users().contains(&user)).filter(ours).map(account).collect())
}

pub fn remove(store: &dyn Store, registry: &Registry, who: &Principal, id: &str) -> Result<u64, Status> {
    let id = &own_account(store, registry, who, id)?.id;
    let n = registry.remove(id).map_err(account_error)?;
    tracing::info!(account = %id, records = n, "account removed");
    Ok(n as u64)
}

pub async fn test(
    store: &dyn Store,
    registry: &Registry,
    who: &Principal,
    id: &str,
) -> Result<pb::TestAccountResponse, Status> {
    let id = &own_account(store, registry, who, id)?.id;
    match registry.test(id).await {
        Ok(()) => Ok(pb::TestAccountResponse { ok: true, message: String::new() }),
        Err(AccountError::Source { message, .. }) => Ok(pb::TestAccountResponse { ok: false, message }),
        Err(e) => Err(account_error(e)),
    }
}

/// Starts a sync in the background; `false` if one is already running.
pub fn sync(store: &dyn Store, registry: &Arc<Registry>, who: &Principal, id: &str) -> Result<bool, Status> {
    let id = &own_account(store, registry, who, id)?.id;
    if registry.progress(id).is_some() {
        return Ok(false);
    }
    let (runtime, registry, id) = (registry.sync_runtime(), registry.clone(), id.to_string());
    runtime.spawn(async move {
        match registry.sync(&id).await {
            Ok(_) => tracing::info!(account = %id, "sync requested over the admin API finished"),
            Err(e) => tracing::warn!(account = %id, error = %e, "sync requested over the admin API failed"),
        }
    });
    Ok(true)
}

pub fn status(store: &dyn Store, registry: &Registry, who: &Principal, id: &str) -> Result<pb::SyncStatus, Status> {
    let id = &own_account(store, registry, who, id)?.id;
    let s = registry.status(id).map_err(account_error)?;
    Ok(pb::SyncStatus {
        collections: s
            .collections
            .iter()
            .map(|c| pb::CollectionStatus {
                collection: c.collection.clone(),
                user_id: c.user.to_string(),
                last_change: c.state.last_change.map(convert::ts),
                last_error: c.state.last_error.clone().unwrap_or_default(),
                last_error_at: c.state.last_error_at.map(convert::ts),
            })
            .collect(),
        records: s.records.iter().map(|(k, v)| (k.clone(), *v as u64)).collect(),
        running: s.progress.is_some(),
        progress: s.progress.as_ref().map(|p| pb::SyncProgress {
            started: p.started.map(convert::ts),
            collections_total: p.collections_total.unwrap_or(0) as u32,
            collections_done: p.collections_done as u32,
            current_collection: p.current.clone().unwrap_or_default(),
            batches: p.batches as u64,
            records: p.records as u64,
        }),
        next_run: s.next_run.map(convert::ts),
        last_finished: s.last_run.as_ref().and_then(|r| r.finished).map(convert::ts),
        last_error: s.last_run.and_then(|r| r.error).unwrap_or_default(),
    })
}
