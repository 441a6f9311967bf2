//! Handling codes users set on synced contacts, written back to the source (issue 12 §1).
//!
//! [`assign_code`] is the one place every assignment goes through (CLI `user assign`, the admin API's
//! AssignHandlingCode): it applies the choice locally at once and, when the contact's account writes
//! codes back, records it as pending in the account ([`crate::model::CodeWriteBack`]). Each sync of
//! the account then writes due choices as categories ([`write_back`]) after syncing its collections,
//! and applies the rule for conflicts documented in [`crate::model::WriteBackState`]'s module.

use super::registry::AccountError;
use crate::model::{AccountSpec, CodeWriteBack, SourceKind, WriteBackState};
use crate::store::{AssignTarget, RegistryStore, StoredContact};
use crate::sync::Indexer;
use crate::user::{HandlingCode, UserId};
use chrono::{DateTime, Utc};
use contactbridge_connector::{echo, Collection, Connector};

/// What became of an assignment beyond the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignOutcome {
    /// Kept in the bridge only, with why (a number, write-back off, no category mapped).
    Local(String),
    /// Applied locally; the next sync of the account writes it to the source.
    Pending { account: String },
}

impl std::fmt::Display for AssignOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(why) => write!(f, "kept in the bridge only: {why}"),
            Self::Pending { account } => {
                write!(f, "written back to the source with the next sync of account {account}")
            }
        }
    }
}

/// Assigns `code` (`None`: removes the code) to `target` for `user`: locally at once, and for a
/// contact of an account that writes codes back, as a pending write-back. A contact must be in the
/// user's own index: another user's or tenant's contact is refused as unknown.
pub fn assign_code<S: RegistryStore + ?Sized>(
    store: &S,
    user: &UserId,
    target: &AssignTarget,
    code: Option<&HandlingCode>,
    now: DateTime<Utc>,
) -> Result<AssignOutcome, AccountError> {
    let AssignTarget::Contact(at) = target else {
        store.assign(user, target, code)?;
        return Ok(AssignOutcome::Local("a number is not a contact at the source".into()));
    };
    let stored = store.contact(user, at)?.ok_or_else(|| {
        AccountError::Invalid(format!(
            "{user} has no contact {} in account {}",
            echo(at.id.as_str()),
            echo(&at.account)
        ))
    })?;
    let spec = store.account(&at.account)?.filter(|s| s.users().contains(user));
    let Some(mut spec) = spec.filter(|s| s.write_back_codes) else {
        store.assign(user, target, code)?;
        return Ok(AssignOutcome::Local(format!("account {} does not write codes back", at.account)));
    };
    let indexer = indexer(store, &spec, user)?;
    let categories = match code {
        Some(c) => category_for(&spec, &indexer, c).into_iter().collect(),
        // Removing: every category of the contact that gives the code it has now.
        None => stored
            .contact
            .categories
            .iter()
            .filter(|cat| indexer.category_codes.get(&cat.trim().to_lowercase()) == stored.handling_code.as_ref())
            .cloned()
            .collect::<Vec<_>>(),
    };
    let (state, outcome) = if categories.is_empty() {
        let reason = match code {
            Some(c) => format!("no category is mapped to code {c}"),
            None => "the contact has no category that carries a code".into(),
        };
        (WriteBackState::LocalOnly { reason: reason.clone() }, AssignOutcome::Local(reason))
    } else {
        (WriteBackState::Pending, AssignOutcome::Pending { account: spec.id.clone() })
    };
    // A removal applies at once over the category still at the source: `default` until written.
    let local = match code {
        None if !categories.is_empty() => Some(HandlingCode::well_known(HandlingCode::DEFAULT)),
        other => other.cloned(),
    };
    // Two writes: the assignment, then the account's pending write-back. Should the second fail
    // (a full disk, the server gone), the first is taken back: a code applied here that the source
    // never gets, or loses at the next sync, would be half a change.
    let before = store.assignment(user, target)?;
    store.assign(user, target, local.as_ref())?;
    spec.code_write_backs.insert(
        CodeWriteBack::key(user, at),
        CodeWriteBack {
            user: user.clone(),
            contact: at.clone(),
            code: code.cloned(),
            categories,
            chosen_at: now,
            base_version: stored.contact.version.clone(),
            base_code: stored.handling_code.clone(),
            state,
        },
    );
    if let Err(e) = store.put_account(&spec, None) {
        if let Err(undo) = store.assign(user, target, before.as_ref()) {
            tracing::error!(user = %user, error = %undo, "a handling code whose write-back could not be recorded stays set");
        }
        return Err(e.into());
    }
    Ok(outcome)
}

/// The category that carries `code` at the source: the account's own mapping (as written there),
/// else a category named like the code when the user's default mapping reads it back.
fn category_for(spec: &AccountSpec, indexer: &Indexer, code: &HandlingCode) -> Option<String> {
    let graph = match &spec.source {
        SourceKind::Graph(g) => g.category_for_code(code.as_str()).map(str::to_string),
        _ => None,
    };
    spec.category_codes
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(cat, _)| cat.clone())
        .or(graph)
        .or_else(|| (indexer.category_codes.get(code.as_str()) == Some(code)).then(|| code.as_str().to_string()))
}

fn indexer<S: RegistryStore + ?Sized>(store: &S, spec: &AccountSpec, user: &UserId) -> Result<Indexer, AccountError> {
    let profile = store
        .profile(user)?
        .ok_or_else(|| AccountError::Invalid(format!("account {} feeds user {user}, who no longer exists", spec.id)))?;
    Ok(Indexer::for_profile(&profile, &super::registry::category_codes(spec)))
}

/// The contact carries what the choice wants: its category (a code) or none of them (a removal).
fn agrees(w: &CodeWriteBack, stored: &StoredContact) -> bool {
    let has = |cat: &String| stored.contact.categories.iter().any(|c| c.trim().eq_ignore_ascii_case(cat.trim()));
    match w.code {
        Some(_) => w.categories.iter().any(has),
        None => !w.categories.iter().any(has),
    }
}

/// Writes the account's due choices back through `connector` (after its collections synced, so the
/// index holds what the source has), and lets changes the source made after a choice win. Returns
/// how many were written and how many failed.
pub(crate) async fn write_back<S: RegistryStore + ?Sized>(
    store: &S,
    account: &str,
    connector: &dyn Connector,
    collections: &[Collection],
) -> Result<(usize, usize), AccountError> {
    let Some(mut spec) = store.account(account)? else { return Ok((0, 0)) };
    if !spec.write_back_codes || spec.code_write_backs.is_empty() {
        return Ok((0, 0));
    }
    let users = spec.users();
    let (mut written, mut failed) = (0, 0);
    let mut changed = false;
    for w in spec.code_write_backs.values_mut() {
        let now = Utc::now();
        let watching = w.state.is_due() || matches!(w.state, WriteBackState::Written { .. });
        if !watching {
            continue;
        }
        let stored = if users.contains(&w.user) && w.contact.account == account {
            store.contact(&w.user, &w.contact)?
        } else {
            None
        };
        let Some(stored) = stored else {
            // Gone at the source (or never this account's): nothing to write to.
            w.state = WriteBackState::LocalOnly { reason: "the contact is no longer in this account".into() };
            changed = true;
            continue;
        };
        let source_changed = match &w.state {
            WriteBackState::Written { version, .. } => {
                stored.contact.version != *version && stored.contact.version != w.base_version && !agrees(w, &stored)
            }
            _ => stored.contact.version != w.base_version && stored.handling_code != w.base_code,
        };
        if source_changed {
            tracing::info!(account, user = %w.user, contact = %w.contact.id, "the source changed the contact's categories after the user's choice: the source wins");
            store.assign(&w.user, &AssignTarget::Contact(w.contact.clone()), None)?;
            w.state = WriteBackState::Superseded { at: now };
            changed = true;
            continue;
        }
        if !w.state.is_due() {
            continue;
        }
        changed = true;
        let Some(collection) = collections.iter().find(|c| c.id == w.contact.collection) else {
            w.state = failure(&w.state, now, "the contact's collection was not listed by the source".into());
            failed += 1;
            continue;
        };
        // The version the choice is applied on: until the index sees the written one, it is no change.
        w.base_version = stored.contact.version.clone();
        let mut result = Ok(None);
        for cat in &w.categories {
            let r = match w.code {
                Some(_) => connector.write_handling_code(collection, &stored.contact, cat).await,
                None => connector.remove_handling_code(collection, &stored.contact, cat).await,
            };
            match r {
                Ok(c) => result = Ok(c.version),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        match result {
            Ok(version) => {
                tracing::info!(account, user = %w.user, contact = %w.contact.id, "handling code written back");
                w.state = WriteBackState::Written { at: now, version };
                written += 1;
            }
            Err(e) if e.kind == contactbridge_connector::ErrorKind::Unsupported => {
                // A source that cannot be written (files): say so once instead of failing every sync.
                w.state = WriteBackState::LocalOnly { reason: e.to_string() };
            }
            Err(e) => {
                tracing::warn!(account, user = %w.user, contact = %w.contact.id, error = %e, "writing the handling code back failed; tried again with the next sync");
                w.state = failure(&w.state, now, e.to_string());
                failed += 1;
            }
        }
    }
    if changed {
        // Choices made while this ran were stored meanwhile: keep them, update the rest.
        let mut fresh = store.account(account)?.unwrap_or_else(|| spec.clone());
        for (key, w) in spec.code_write_backs {
            match fresh.code_write_backs.get(&key) {
                Some(now) if now.chosen_at != w.chosen_at => {}
                _ => {
                    fresh.code_write_backs.insert(key, w);
                }
            }
        }
        store.put_account(&fresh, None)?;
    }
    Ok((written, failed))
}

fn failure(previous: &WriteBackState, at: DateTime<Utc>, error: String) -> WriteBackState {
    let attempts = match previous {
        WriteBackState::Failed { attempts, .. } => attempts + 1,
        _ => 1,
    };
    WriteBackState::Failed { at, attempts, error: error.chars().take(300).collect() }
}
