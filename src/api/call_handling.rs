//! `contactbridge.v1.CallHandling`: what the phone system asks while a call comes in.

use super::metrics::Metrics;
use super::pb::call_handling_server::CallHandling;
use super::{convert, error, pb, principal, Scope};
use crate::calls::{CallId, MAX_NUMBER_CHARS, MAX_TSPS_CALL_ID_CHARS};
use crate::connector::echo;
use crate::live::{CallHub, DirectiveAction};
use crate::phone::history_key_if_number;
use crate::resolve::{CallQuery, ContextQuery, ContextSubject, Resolver};
use crate::store::{offload, Store, TimeWindow};
use crate::user::UserProfile;
use chrono::Utc;
use futures::{Stream, StreamExt};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tonic::{Request, Response, Status};

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct CallHandlingService {
    resolver: Resolver,
    hub: Arc<CallHub>,
    /// Turns true when the server shuts down: ends open directive streams.
    shutdown: watch::Receiver<bool>,
    /// Where calls answered without a call record are counted.
    metrics: Option<Arc<Metrics>>,
}

impl CallHandlingService {
    pub fn new(store: Arc<dyn Store>, hub: Arc<CallHub>, shutdown: watch::Receiver<bool>) -> Self {
        Self { resolver: Resolver::new(store), hub, shutdown, metrics: None }
    }

    /// Counts calls answered without a call record in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn store(&self) -> &dyn Store {
        self.resolver.store().as_ref()
    }

    /// The user's profile, if the key's tenant may see it.
    fn own_profile(&self, tenant: &str, user: &str) -> Result<UserProfile, Status> {
        let id = convert::user_id(user)?;
        let profile = self.store().profile(&id).map_err(error::store)?.ok_or_else(error::no_user)?;
        if profile.tenant != tenant {
            return Err(error::no_user());
        }
        Ok(profile)
    }

    /// `GetCallerContext` after the key's scope was checked: reads only the store.
    fn caller_context(
        &self,
        who: &crate::api::auth::Principal,
        r: pb::GetCallerContextRequest,
    ) -> Result<pb::GetCallerContextResponse, Status> {
        let profile = self.own_profile(&who.tenant, &r.user_id)?;
        let user = &profile.id;
        let now = convert::from_ts(r.now.as_ref(), "now")?.unwrap_or_else(Utc::now);
        let region = profile.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok());
        let store = self.store();

        let mut contact = None;
        if !r.contact_id.is_empty() {
            let at = convert::from_contact_id(&r.contact_id)?;
            contact = Some(
                store.contact(user, &at).map_err(error::store)?.ok_or_else(|| Status::not_found("no such contact"))?,
            );
        }
        let caller_key = if !r.cli.is_empty() {
            history_key_if_number(&r.cli, region.as_ref()).map_err(|e| {
                Status::invalid_argument(format!("calling number (CLI) {} is not valid: {e}", echo(&r.cli)))
            })?
        } else if let Some(c) = &contact {
            c.contact.phones.iter().find_map(|p| history_key_if_number(&p.raw, region.as_ref()).ok().flatten())
        } else {
            return Err(Status::invalid_argument("give the caller's cli or a contact_id"));
        };
        if contact.is_none() {
            if let Some(key) = &caller_key {
                // An exact number match, else the contact of the caller's last call.
                contact = store.contacts_by_phone(user, key).map_err(error::store)?.into_iter().next();
                if contact.is_none() {
                    let last = store.calls_from(user, key, TimeWindow::all(), 1).map_err(error::store)?;
                    if let Some(at) = last.first().and_then(|c| c.contact.clone()) {
                        contact = store.contact(user, &at).map_err(error::store)?;
                    }
                }
            }
        }

        let criteria = convert::merge_criteria(&profile.context, r.criteria.as_ref());
        criteria.check().map_err(|e| Status::invalid_argument(format!("criteria.{e}")))?;
        let subject = ContextSubject { contact: contact.clone(), caller_key };
        let ctx = self.resolver.context(user, &subject, &ContextQuery { now, criteria }).map_err(error::resolve)?;
        let kinds: HashSet<i32> = r.kinds.iter().copied().collect();
        let want = |k: pb::ContextKind| kinds.is_empty() || kinds.contains(&(k as i32));
        let mut out =
            pb::GetCallerContextResponse { contact: contact.as_ref().map(convert::contact), ..Default::default() };
        if want(pb::ContextKind::Mail) {
            out.mail_received = ctx.mail_received.iter().map(convert::mail).collect();
            out.mail_sent = ctx.mail_sent.iter().map(convert::mail).collect();
        }
        if want(pb::ContextKind::Events) {
            out.events = ctx.events.iter().map(convert::event).collect();
        }
        if want(pb::ContextKind::Documents) {
            out.documents = ctx.documents.iter().map(convert::document).collect();
        }
        if want(pb::ContextKind::Calls) {
            out.calls = convert::calls_within_budget(&ctx.calls);
        }
        Ok(out)
    }
}

type DirectiveStream = Pin<Box<dyn Stream<Item = Result<pb::Directive, Status>> + Send>>;

#[tonic::async_trait]
impl CallHandling for CallHandlingService {
    async fn resolve_call(
        &self,
        req: Request<pb::ResolveCallRequest>,
    ) -> Result<Response<pb::ResolveCallResponse>, Status> {
        let who = principal(&req)?;
        who.require(&[Scope::Tsps], "ResolveCall")?;
        let r = req.into_inner();
        convert::check_len("called_number", &r.called_number, MAX_NUMBER_CHARS)?;
        convert::check_len("cli", &r.cli, MAX_NUMBER_CHARS)?;
        convert::check_len("tsps_call_id", &r.tsps_call_id, MAX_TSPS_CALL_ID_CHARS)?;
        let at = convert::from_ts(r.at.as_ref(), "at")?.unwrap_or_else(Utc::now);
        let resolver = self.resolver.clone();
        // The store and resolver work, off the runtime's workers if the backend may block.
        let (profile, decision) = offload(self.resolver.store().as_ref(), move || {
            // The tenant check comes before anything is written or looked up for the user.
            let profile = resolver.user_for_called(&r.called_number).map_err(error::resolve)?;
            who.same_tenant(&profile.tenant, || error::unknown_called_number(&r.called_number))?;
            let query = CallQuery {
                called: r.called_number,
                cli: r.cli,
                tsps_call_id: Some(r.tsps_call_id).filter(|s| !s.is_empty()),
                at,
            };
            let decision = resolver.resolve_for(&profile, &query).map_err(error::resolve)?;
            Ok::<_, Status>((profile, decision))
        })
        .await?;
        if !decision.recorded {
            // The call rings all the same; the answer says so (`not_recorded`), the resolver logged why.
            if let Some(m) = &self.metrics {
                m.call_not_recorded();
            }
        }
        self.hub.announce(&decision);
        tracing::debug!(call = %decision.call_id, user = %decision.user, code = %decision.handling_code, method = decision.method.name(), "resolved");
        Ok(Response::new(convert::decision(&decision, &profile)))
    }

    async fn get_caller_context(
        &self,
        req: Request<pb::GetCallerContextRequest>,
    ) -> Result<Response<pb::GetCallerContextResponse>, Status> {
        let who = principal(&req)?;
        who.require(&[Scope::Tsps], "GetCallerContext")?;
        let r = req.into_inner();
        let service = self.clone();
        // The store and resolver work, off the runtime's workers if the backend may block.
        let out = offload(self.store(), move || service.caller_context(&who, r)).await?;
        Ok(Response::new(out))
    }

    type WatchDirectivesStream = DirectiveStream;

    async fn watch_directives(
        &self,
        req: Request<pb::WatchDirectivesRequest>,
    ) -> Result<Response<Self::WatchDirectivesStream>, Status> {
        let who = principal(&req)?;
        who.require(&[Scope::Tsps], "WatchDirectives")?;
        let r = req.into_inner();
        for u in &r.user_ids {
            self.own_profile(&who.tenant, u)?;
        }
        let users: HashSet<String> = r.user_ids.into_iter().collect();
        let rx = self.hub.watch_directives(&who.tenant);
        let mut shutdown = self.shutdown.clone();
        let stopped = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        let key = who.key_id.clone();
        tracing::info!(key = %key, users = users.len(), "directive stream opened");
        // Ends with UNAVAILABLE when the server stops: the phone system reconnects (elsewhere).
        let ended = futures::stream::once(async { Err(Status::unavailable("server shutting down; reconnect")) });
        let stream = BroadcastStream::new(rx)
            .filter_map(move |item| {
                let out = match item {
                    Ok(d) if users.is_empty() || users.contains(d.user.as_str()) => Some(Ok(convert::directive(&d))),
                    Ok(_) => None,
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        tracing::warn!(key = %key, missed = n, "a directive stream fell behind and lost directives");
                        None
                    }
                };
                std::future::ready(out)
            })
            .take_until(stopped)
            .chain(ended);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn send_directive(
        &self,
        req: Request<pb::SendDirectiveRequest>,
    ) -> Result<Response<pb::SendDirectiveResponse>, Status> {
        let who = principal(&req)?;
        who.require(&[Scope::Tsps, Scope::Admin], "SendDirective")?;
        let r = req.into_inner();
        let action = convert::from_directive_action(r.action, &r.target)?;
        let by = Some(r.by.trim().to_string()).filter(|s| !s.is_empty());
        let call = CallId(r.call_id);
        let (d, delivered) = match &action {
            DirectiveAction::Dial { to } => {
                if !call.as_str().is_empty() {
                    return Err(Status::invalid_argument("DIAL places a new call: leave call_id empty"));
                }
                let user = self.own_profile(&who.tenant, &r.user_id)?.id;
                self.hub.dial(&user, &who.tenant, to, by, Utc::now()).map_err(|e| error::live(e, &call))?
            }
            _ => {
                self.hub.direct(&call, action, by, Some(&who.tenant), Utc::now()).map_err(|e| error::live(e, &call))?
            }
        };
        Ok(Response::new(pb::SendDirectiveResponse {
            delivered: delivered as u32,
            directive: Some(convert::directive(&d)),
        }))
    }

    async fn report_call_event(
        &self,
        req: Request<pb::ReportCallEventRequest>,
    ) -> Result<Response<pb::ReportCallEventResponse>, Status> {
        let who = principal(&req)?;
        who.require(&[Scope::Tsps], "ReportCallEvent")?;
        let r = req.into_inner();
        let kind = convert::from_event_kind(r.kind, &r.target)?;
        let at = convert::from_ts(r.at.as_ref(), "at")?.unwrap_or_else(Utc::now);
        let by = Some(r.by.trim().to_string()).filter(|s| !s.is_empty());
        let id = CallId(r.call_id);
        let call = self.hub.report(&id, kind, by, Some(&who.tenant), at).map_err(|e| error::live(e, &id))?;
        Ok(Response::new(pb::ReportCallEventResponse { call: Some(convert::call(&call)) }))
    }

    async fn ping(&self, req: Request<pb::PingRequest>) -> Result<Response<pb::PingResponse>, Status> {
        principal(&req)?;
        Ok(Response::new(pb::PingResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::Principal;
    use crate::store::conformance::Remote;
    use crate::store::SledStore;
    use std::time::{Duration, Instant};

    fn request<T>(message: T) -> Request<T> {
        let mut req = Request::new(message);
        req.extensions_mut().insert(Principal { key_id: "k".into(), tenant: "t".into(), scope: Scope::Tsps });
        req
    }

    /// How long a Ping waits while a ResolveCall runs on a store whose every
    /// call takes 100 ms, on a runtime with one worker.
    fn ping_wait_beside_a_slow_resolve(blocking: bool) -> Duration {
        let sled = Arc::new(SledStore::temporary().unwrap());
        let mut profile = UserProfile::new(crate::model::UserId::parse("u").unwrap(), "t");
        profile.called_numbers = vec!["+4930901820".into()];
        crate::user::put_profile(sled.as_ref(), &profile).unwrap();
        let store: Arc<dyn Store> = Arc::new(Remote { inner: sled, delay: Duration::from_millis(100), blocking });
        let (_stop, shutdown) = watch::channel(false);
        let service = CallHandlingService::new(store.clone(), CallHub::new(store), shutdown);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let resolving = tokio::spawn({
                let service = service.clone();
                async move {
                    let r = pb::ResolveCallRequest {
                        called_number: "+4930901820".into(),
                        cli: "+4930123456".into(),
                        ..Default::default()
                    };
                    service.resolve_call(request(r)).await
                }
            });
            // Until the resolve is in its store calls (a thread sleep: the timer needs a free worker).
            std::thread::sleep(Duration::from_millis(50));
            let asked = Instant::now();
            let pinged = tokio::spawn(async move { service.ping(request(pb::PingRequest {})).await });
            pinged.await.unwrap().unwrap();
            let waited = asked.elapsed();
            resolving.await.unwrap().unwrap();
            waited
        })
    }

    #[test]
    fn a_resolve_on_a_blocking_backend_does_not_hold_up_other_requests() {
        let waited = ping_wait_beside_a_slow_resolve(true);
        assert!(waited < Duration::from_millis(150), "Ping waited {waited:?} behind the resolve's store calls");
        // The control: the same store run inline (as sled is) holds the only worker for the whole resolve.
        let waited = ping_wait_beside_a_slow_resolve(false);
        assert!(waited >= Duration::from_millis(250), "Ping waited only {waited:?}");
    }
}
