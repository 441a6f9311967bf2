//! `contactbridge.v1.Admin`: a tenant's users, handling tables, assignments,
//! manual status, call history, and accounts (on the account registry, when
//! the server has one).

use super::pb::admin_server::Admin;
use super::{accounts, convert, error, pb, principal, Principal, Scope};
use crate::accounts::Registry;
use crate::phone::history_key_if_number;
use crate::store::{AssignTarget, Store, TimeWindow};
use crate::user::{HandlingCode, ManualStatus, UserProfile};
use chrono::DateTime;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    accounts: Option<Arc<Registry>>,
    web_logins: Option<crate::web::auth::WebLogins>,
}

impl AdminService {
    pub fn new(store: Arc<dyn Store>, accounts: Option<Arc<Registry>>) -> Self {
        Self { store, accounts, web_logins: None }
    }

    /// Lets `IssueWebLogin` issue links to the notification window.
    pub fn with_web_logins(self, web_logins: Option<crate::web::auth::WebLogins>) -> Self {
        Self { web_logins, ..self }
    }

    fn registry(&self, rpc: &str) -> Result<&Arc<Registry>, Status> {
        self.accounts
            .as_ref()
            .ok_or_else(|| Status::unimplemented(format!("{rpc}: this server runs without the account registry")))
    }

    /// The admin key behind a request.
    fn admin<T>(req: &Request<T>, rpc: &str) -> Result<Principal, Status> {
        let who = principal(req)?;
        who.require(&[Scope::Admin], rpc)?;
        Ok(who)
    }

    /// A user of the key's tenant; another tenant's answers as an unknown one.
    fn own_profile(&self, who: &Principal, user: &str) -> Result<UserProfile, Status> {
        let id = convert::user_id(user)?;
        let profile = self.store.profile(&id).map_err(error::store)?.ok_or_else(error::no_user)?;
        who.same_tenant(&profile.tenant, error::no_user)?;
        Ok(profile)
    }

    fn save(&self, profile: &UserProfile) -> Result<(), Status> {
        crate::user::put_profile(self.store.as_ref(), profile).map_err(error::store)
    }

    /// Open web sessions re-check their viewer now (a user deleted, an attendant designation changed).
    fn web_sessions_changed(&self) {
        if let Some(w) = &self.web_logins {
            w.sessions.recheck();
        }
    }
}

/// New users of tenant `t` are called `t` or `t.<name>`: user ids are global, and
/// without a namespace a taken id would tell another tenant's users apart.
fn new_user_id_in_tenant(id: &crate::user::UserId, tenant: &str) -> Result<(), Status> {
    let id = id.as_str();
    let inside = id == tenant || id.strip_prefix(tenant).is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'));
    if inside {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "profile.id: new users of tenant {tenant:?} are called {tenant:?} or \"{tenant}.<name>\""
        )))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn put_user(&self, req: Request<pb::PutUserRequest>) -> Result<Response<pb::UserProfile>, Status> {
        let who = Self::admin(&req, "PutUser")?;
        let mut given = req.into_inner().profile.ok_or_else(|| Status::invalid_argument("profile is required"))?;
        if given.tenant.trim().is_empty() {
            given.tenant = who.tenant.clone();
        }
        let profile = convert::from_profile(&given)?;
        if profile.tenant != who.tenant {
            return Err(Status::permission_denied(format!(
                "profile.tenant: this API key writes users of tenant {:?} only",
                who.tenant
            )));
        }
        let existing = self.store.profile(&profile.id).map_err(error::store)?;
        if existing.as_ref().is_none_or(|e| e.tenant != who.tenant) {
            // A new user: its id must be in the tenant's namespace, so that ids of other
            // tenants' users (taken or not) get the same answer as any id outside it.
            new_user_id_in_tenant(&profile.id, &who.tenant)?;
            if existing.is_some() {
                return Err(Status::invalid_argument(format!("user id {:?} cannot be used", profile.id.as_str())));
            }
        }
        if let Some(user) = profile.attendant.as_ref().and_then(|a| a.user.as_ref()) {
            // The attendant sees the user's calls and acts on them: only a user of the same
            // tenant; another tenant's user answers as an unknown one.
            let same = user == &profile.id
                || self.store.profile(user).map_err(error::store)?.is_some_and(|p| p.tenant == who.tenant);
            if !same {
                return Err(Status::invalid_argument(format!(
                    "profile.attendant.user: no user {:?} in this tenant",
                    user.as_str()
                )));
            }
        }
        profile.validate().map_err(Status::invalid_argument)?;
        for n in &profile.called_numbers {
            let key = crate::phone::called_number_key(n)
                .map_err(|e| Status::invalid_argument(format!("called number {}: {e}", crate::connector::echo(n))))?;
            if let Some(owner) = self.store.user_by_called_number(&key).map_err(error::store)? {
                if owner != profile.id {
                    return Err(Status::invalid_argument(format!(
                        "called number {} is already assigned to another user",
                        crate::connector::echo(n)
                    )));
                }
            }
        }
        self.save(&profile)?;
        self.web_sessions_changed();
        tracing::info!(user = %profile.id, tenant = %profile.tenant, "profile stored");
        Ok(Response::new(convert::profile(&profile)))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Result<Response<pb::UserProfile>, Status> {
        let who = Self::admin(&req, "GetUser")?;
        let profile = self.own_profile(&who, &req.get_ref().user_id)?;
        Ok(Response::new(convert::profile(&profile)))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Result<Response<pb::ListUsersResponse>, Status> {
        let who = Self::admin(&req, "ListUsers")?;
        let users = self
            .store
            .profiles()
            .map_err(error::store)?
            .iter()
            .filter(|p| p.tenant == who.tenant)
            .map(convert::profile)
            .collect();
        Ok(Response::new(pb::ListUsersResponse { users }))
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let who = Self::admin(&req, "DeleteUser")?;
        let profile = match self.own_profile(&who, &req.get_ref().user_id) {
            Ok(p) => p,
            Err(s) if s.code() == tonic::Code::NotFound => {
                return Ok(Response::new(pb::DeleteUserResponse { deleted: false }))
            }
            Err(s) => return Err(s),
        };
        let deleted = self.store.delete_user(&profile.id).map_err(error::store)?;
        self.web_sessions_changed();
        tracing::info!(user = %profile.id, "user deleted");
        Ok(Response::new(pb::DeleteUserResponse { deleted }))
    }

    async fn set_handling_method(
        &self,
        req: Request<pb::SetHandlingMethodRequest>,
    ) -> Result<Response<pb::HandlingTable>, Status> {
        let who = Self::admin(&req, "SetHandlingMethod")?;
        let r = req.into_inner();
        let mut profile = self.own_profile(&who, &r.user_id)?;
        let code = convert::from_code_match(&r.code)?;
        let status = convert::from_status_match(r.status, "status")?;
        let method = convert::from_method(r.method.as_ref(), "method")?;
        profile.handling.set(code, status, method);
        self.save(&profile)?;
        Ok(Response::new(convert::handling_table(&profile.handling)))
    }

    async fn assign_handling_code(
        &self,
        req: Request<pb::AssignHandlingCodeRequest>,
    ) -> Result<Response<pb::AssignHandlingCodeResponse>, Status> {
        use pb::assign_handling_code_request::Target;
        let who = Self::admin(&req, "AssignHandlingCode")?;
        let r = req.into_inner();
        let profile = self.own_profile(&who, &r.user_id)?;
        let target = match r.target {
            Some(Target::ContactId(id)) => AssignTarget::Contact(convert::from_contact_id(&id)?),
            Some(Target::Number(n)) => {
                let region = profile.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok());
                let key = history_key_if_number(&n, region.as_ref())
                    .map_err(|e| {
                        Status::invalid_argument(format!("number {} is not valid: {e}", crate::connector::echo(&n)))
                    })?
                    .ok_or_else(|| {
                        Status::invalid_argument(format!("{} is not a phone number", crate::connector::echo(&n)))
                    })?;
                AssignTarget::Number(key)
            }
            None => return Err(Status::invalid_argument("give a contact_id or a number")),
        };
        let code = if r.code.trim().is_empty() {
            None
        } else {
            Some(HandlingCode::parse(&r.code).map_err(Status::invalid_argument)?)
        };
        match &self.accounts {
            // The registry's store: a contact of an account that writes codes back gets its write-back.
            Some(registry) => {
                registry.assign_code(&profile.id, &target, code.as_ref(), chrono::Utc::now()).map_err(|e| match e {
                    crate::accounts::AccountError::Invalid(m) => Status::not_found(m),
                    crate::accounts::AccountError::Store(e) => error::store(e),
                    other => Status::internal(other.to_string()),
                })?;
            }
            None => self.store.assign(&profile.id, &target, code.as_ref()).map_err(error::store)?,
        }
        Ok(Response::new(pb::AssignHandlingCodeResponse {}))
    }

    async fn set_manual_status(
        &self,
        req: Request<pb::SetManualStatusRequest>,
    ) -> Result<Response<pb::UserProfile>, Status> {
        let who = Self::admin(&req, "SetManualStatus")?;
        let r = req.into_inner();
        let mut profile = self.own_profile(&who, &r.user_id)?;
        profile.manual_status = convert::from_status(r.status, "status")?
            .map(|status| Ok::<_, Status>(ManualStatus { status, until: convert::from_ts(r.until.as_ref(), "until")? }))
            .transpose()?;
        self.save(&profile)?;
        Ok(Response::new(convert::profile(&profile)))
    }

    async fn list_calls(&self, req: Request<pb::ListCallsRequest>) -> Result<Response<pb::ListCallsResponse>, Status> {
        let who = Self::admin(&req, "ListCalls")?;
        let r = req.into_inner();
        let profile = self.own_profile(&who, &r.user_id)?;
        let window = TimeWindow {
            from: convert::from_ts(r.from.as_ref(), "from")?.unwrap_or(DateTime::<chrono::Utc>::MIN_UTC),
            to: convert::from_ts(r.to.as_ref(), "to")?.unwrap_or(DateTime::<chrono::Utc>::MAX_UTC),
        };
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let calls = self.store.calls(&profile.id, window, limit).map_err(error::store)?;
        Ok(Response::new(pb::ListCallsResponse { calls: convert::calls_within_budget(&calls) }))
    }

    async fn register_account(
        &self,
        req: Request<pb::RegisterAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let who = Self::admin(&req, "RegisterAccount")?;
        let registry = self.registry("RegisterAccount")?;
        Ok(Response::new(accounts::register(self.store.as_ref(), registry, &who, req.into_inner())?))
    }

    async fn list_accounts(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let who = Self::admin(&req, "ListAccounts")?;
        let registry = self.registry("ListAccounts")?;
        let list = accounts::list(self.store.as_ref(), registry, &who, &req.get_ref().user_id)?;
        Ok(Response::new(pb::ListAccountsResponse { accounts: list }))
    }

    async fn remove_account(
        &self,
        req: Request<pb::RemoveAccountRequest>,
    ) -> Result<Response<pb::RemoveAccountResponse>, Status> {
        let who = Self::admin(&req, "RemoveAccount")?;
        let registry = self.registry("RemoveAccount")?;
        let records_removed = accounts::remove(self.store.as_ref(), registry, &who, &req.get_ref().account_id)?;
        Ok(Response::new(pb::RemoveAccountResponse { records_removed }))
    }

    async fn test_account(
        &self,
        req: Request<pb::TestAccountRequest>,
    ) -> Result<Response<pb::TestAccountResponse>, Status> {
        let who = Self::admin(&req, "TestAccount")?;
        let registry = self.registry("TestAccount")?;
        Ok(Response::new(accounts::test(self.store.as_ref(), registry, &who, &req.get_ref().account_id).await?))
    }

    async fn sync_account(
        &self,
        req: Request<pb::SyncAccountRequest>,
    ) -> Result<Response<pb::SyncAccountResponse>, Status> {
        let who = Self::admin(&req, "SyncAccount")?;
        let registry = self.registry("SyncAccount")?;
        let started = accounts::sync(self.store.as_ref(), registry, &who, &req.get_ref().account_id)?;
        Ok(Response::new(pb::SyncAccountResponse { started }))
    }

    async fn get_sync_status(
        &self,
        req: Request<pb::GetSyncStatusRequest>,
    ) -> Result<Response<pb::SyncStatus>, Status> {
        let who = Self::admin(&req, "GetSyncStatus")?;
        let registry = self.registry("GetSyncStatus")?;
        Ok(Response::new(accounts::status(self.store.as_ref(), registry, &who, &req.get_ref().account_id)?))
    }

    async fn issue_web_login(
        &self,
        req: Request<pb::IssueWebLoginRequest>,
    ) -> Result<Response<pb::IssueWebLoginResponse>, Status> {
        let who = Self::admin(&req, "IssueWebLogin")?;
        let web = self
            .web_logins
            .as_ref()
            .ok_or_else(|| Status::unimplemented("IssueWebLogin: this server runs without the notification window"))?;
        let r = req.into_inner();
        let profile = self.own_profile(&who, &r.user_id)?;
        let valid = match r.valid_seconds {
            0 => crate::web::auth::LOGIN_VALID,
            s if s > 30 * 86_400 => return Err(Status::invalid_argument("valid_seconds is at most 30 days")),
            s => chrono::Duration::seconds(s.into()),
        };
        let token = crate::web::auth::issue_login(
            web.tokens.as_ref(),
            self.store.as_ref(),
            &profile.id,
            valid,
            chrono::Utc::now(),
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(user = %profile.id, key = %who.key_id, "web login link issued");
        Ok(Response::new(pb::IssueWebLoginResponse {
            url: format!("{}{}", web.base_url.trim_end_matches('/'), crate::web::auth::login_path(&token)),
            expires: Some(convert::ts(token.expires)),
        }))
    }
}
