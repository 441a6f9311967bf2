//! Tokens for Graph: OAuth2 flows (client credentials, device code, refresh) on the `oauth2`
//! crate, and a [`TokenCache`] with single-flight refresh shared by every request of an account.

use crate::config::{Credential, GraphAccount, Secret};
use async_trait::async_trait;
use contactbridge_connector::{Error, ErrorKind};
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Anything that hands out a valid bearer token (Graph here; the DAV connector for Microsoft 365 later).
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A token valid for at least the cache's refresh margin.
    async fn token(&self) -> Result<String, Error>;
}

/// How long before expiry a token is renewed.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

struct Cached {
    token: Secret,
    expires_at: Instant,
}

enum Grant {
    ClientCredentials {
        secret: Secret,
    },
    /// Client credentials proven by a JWT signed with the certificate's key.
    Certificate {
        key: jsonwebtoken::EncodingKey,
        x5t: String,
    },
    /// Delegated: the current refresh token, rotated when the server sends a new one.
    Refresh {
        refresh_token: std::sync::Mutex<Secret>,
    },
}

/// A per-account token cache. Concurrent callers wait for one refresh (the lock is held
/// while fetching), and a token is renewed `margin` before it expires.
pub struct TokenCache {
    client_id: String,
    token_url: String,
    scopes: Vec<String>,
    grant: Grant,
    http: reqwest::Client,
    state: tokio::sync::Mutex<Option<Cached>>,
    margin: Duration,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The HTTP client for the identity provider: no redirects (a redirected token request
/// could carry the secret elsewhere), HTTPS only unless the account says otherwise.
pub(crate) fn oauth_http_client(https_only: bool) -> Result<reqwest::Client, Error> {
    reqwest::ClientBuilder::new()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(https_only)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::local(format!("cannot build the OAuth HTTP client: {e}")))
}

fn token_url(account: &GraphAccount) -> Result<TokenUrl, Error> {
    TokenUrl::new(account.token_url()).map_err(|e| Error::local(format!("invalid token URL: {e}")))
}

/// The identity provider's HTTP client, keeping the last response's HTTP status
/// (oauth2 drops it from its errors).
struct Recording {
    http: reqwest::Client,
    status: std::sync::Mutex<Option<u16>>,
}

impl Recording {
    fn new(http: &reqwest::Client) -> Self {
        Self { http: http.clone(), status: std::sync::Mutex::new(None) }
    }

    fn status(&self) -> Option<u16> {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type HttpFuture<'c> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<oauth2::HttpResponse, oauth2::HttpClientError<reqwest::Error>>>
            + Send
            + 'c,
    >,
>;

impl<'c> oauth2::AsyncHttpClient<'c> for Recording {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = HttpFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = oauth2::AsyncHttpClient::call(&self.http, request).await?;
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(response.status().as_u16());
            Ok(response)
        })
    }
}

/// The Entra ID error code (`AADSTS90002`) in an identity provider's message, if any.
pub fn entra_code(text: &str) -> Option<&str> {
    let at = text.find("AADSTS")?;
    let digits = text[at + 6..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| &text[at..at + 6 + digits])
}

/// Maps an oauth2 error to a connector error without the request or response bodies of a
/// success (they may hold tokens); keeps the HTTP status and the identity provider's error
/// code (OAuth `error` and Entra's `AADSTS…`), and chooses the kind by them: an unknown
/// tenant or app is [`ErrorKind::NotFound`], not a credential problem.
fn token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    what: &str,
    err: RequestTokenError<RE, T>,
    status: Option<u16>,
) -> Error {
    let http = status.map(|s| format!("HTTP {s} ")).unwrap_or_default();
    match err {
        RequestTokenError::ServerResponse(resp) => {
            // The standard error response: code and description, never the request.
            let json = serde_json::to_value(&resp).unwrap_or_default();
            let code = json.get("error").and_then(|v| v.as_str()).unwrap_or("unknown");
            let desc = json.get("error_description").and_then(|v| v.as_str()).unwrap_or("");
            // Entra's description runs over lines (trace and correlation ids): the first is the reason.
            let desc = desc.lines().next().unwrap_or("").trim();
            let kind = match entra_code(desc) {
                // Tenant not found / invalid tenant name; application not found in the tenant.
                Some("AADSTS90002" | "AADSTS900023" | "AADSTS90013" | "AADSTS50128" | "AADSTS700016") => {
                    ErrorKind::NotFound
                }
                _ if status == Some(404) => ErrorKind::NotFound,
                _ if status.is_some_and(|s| s >= 500) => ErrorKind::Unreachable,
                _ if code == "invalid_request" && status == Some(400) && entra_code(desc).is_none() => {
                    ErrorKind::InvalidData
                }
                _ => ErrorKind::Auth,
            };
            let message = format!("{what}: the identity provider refused ({http}{code}): {desc}");
            Error::new(kind, message.trim_end().trim_end_matches(':').to_string())
        }
        RequestTokenError::Request(e) => {
            let reason = crate::client::network_failure(&e).unwrap_or_else(|| e.to_string());
            Error::unreachable(format!("{what}: cannot reach the identity provider: {reason}"))
        }
        RequestTokenError::Parse(e, body) => {
            let kind = match status {
                Some(404) => ErrorKind::NotFound,
                Some(s) if s >= 500 => ErrorKind::Unreachable,
                Some(s) if s >= 400 => ErrorKind::Auth,
                _ => ErrorKind::InvalidData,
            };
            // The body of an error answer says why (a success's body could hold a token).
            let detail = match status {
                Some(s) if s >= 400 => {
                    let text = String::from_utf8_lossy(&body);
                    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", contactbridge_connector::echo(&text))
                    }
                }
                _ => format!(": {e}"),
            };
            let hint = if status == Some(404) { " (check the tenant id and the authority URL)" } else { "" };
            Error::new(
                kind,
                format!("{what}: the identity provider answered {http}with no token response{hint}{detail}"),
            )
        }
        RequestTokenError::Other(msg) => Error::auth(format!("{what}: {http}{msg}")),
    }
}

impl TokenCache {
    /// A cache for `account`'s credential.
    pub fn new(account: &GraphAccount) -> Result<Self, Error> {
        let grant = match &account.credential {
            Credential::ClientSecret { secret } => Grant::ClientCredentials { secret: secret.clone() },
            Credential::Certificate { private_key_pem, thumbprint } => Grant::Certificate {
                key: jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                    .map_err(|e| Error::local(format!("the certificate's private key is not an RSA PEM key: {e}")))?,
                x5t: x5t(thumbprint)?,
            },
            Credential::DeviceCode { refresh_token } => {
                Grant::Refresh { refresh_token: std::sync::Mutex::new(refresh_token.clone()) }
            }
        };
        token_url(account)?;
        Ok(Self {
            client_id: account.client_id.clone(),
            token_url: account.token_url(),
            scopes: account.effective_scopes(),
            grant,
            http: oauth_http_client(account.https_only)?,
            state: tokio::sync::Mutex::new(None),
            margin: DEFAULT_REFRESH_MARGIN,
            fetches: AtomicU64::new(0),
        })
    }

    /// Renew tokens this long before they expire (default 60 s).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How many tokens were fetched from the identity provider so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The current refresh token of a delegated account (it rotates): persist it.
    pub fn refresh_token(&self) -> Option<Secret> {
        match &self.grant {
            Grant::Refresh { refresh_token } => Some(refresh_token.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Grant::ClientCredentials { .. } | Grant::Certificate { .. } => None,
        }
    }

    /// Forgets `token` if it is the cached one (the server rejected it with 401).
    pub async fn invalidate(&self, token: &str) {
        let mut state = self.state.lock().await;
        if state.as_ref().is_some_and(|c| c.token.expose() == token) {
            *state = None;
        }
    }

    /// The cached token if it is still fresh, without waiting.
    pub fn cached(&self) -> Option<String> {
        let state = self.state.try_lock().ok()?;
        state.as_ref().filter(|c| c.expires_at > Instant::now() + self.margin).map(|c| c.token.expose().to_string())
    }

    async fn fetch(&self) -> Result<BasicTokenResponse, Error> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let scopes = self.scopes.iter().map(|s| Scope::new(s.clone()));
        let url = TokenUrl::new(self.token_url.clone()).map_err(|e| Error::local(format!("invalid token URL: {e}")))?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(url)
            .set_auth_type(AuthType::RequestBody);
        let http = Recording::new(&self.http);
        let status = || http.status();
        match &self.grant {
            Grant::ClientCredentials { secret } => client
                .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                .exchange_client_credentials()
                .add_scopes(scopes)
                .request_async(&http)
                .await
                .map_err(|e| token_error("client credentials", e, status())),
            Grant::Certificate { key, x5t } => {
                let assertion = client_assertion(&self.client_id, &self.token_url, key, x5t)?;
                client
                    .exchange_client_credentials()
                    .add_scopes(scopes)
                    .add_extra_param("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    .add_extra_param("client_assertion", assertion)
                    .request_async(&http)
                    .await
                    .map_err(|e| token_error("certificate credentials", e, status()))
            }
            Grant::Refresh { refresh_token } => {
                let current =
                    RefreshToken::new(refresh_token.lock().unwrap_or_else(|p| p.into_inner()).expose().into());
                let resp = client
                    .exchange_refresh_token(&current)
                    .add_scopes(scopes)
                    .request_async(&http)
                    .await
                    .map_err(|e| token_error("refresh token", e, status()))?;
                if let Some(rotated) = resp.refresh_token() {
                    *refresh_token.lock().unwrap_or_else(|p| p.into_inner()) = Secret::new(rotated.secret().clone());
                }
                Ok(resp)
            }
        }
    }
}

/// The `x5t` header of a client assertion: the base64url SHA-1 thumbprint of the certificate.
fn x5t(thumbprint_hex: &str) -> Result<String, Error> {
    use base64::Engine;
    let hex: String = thumbprint_hex.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .filter(|b| b.len() == 20)
        .ok_or_else(|| Error::local("the certificate thumbprint must be 40 hex digits (SHA-1)"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A signed client assertion for the Microsoft identity platform, valid 10 minutes.
fn client_assertion(
    client_id: &str,
    token_url: &str,
    key: &jsonwebtoken::EncodingKey,
    x5t: &str,
) -> Result<String, Error> {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": format!("{:032x}", fastrand::u128(..)),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(x5t.to_string());
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| Error::local(format!("cannot sign the client assertion: {e}")))
}

#[async_trait]
impl TokenSource for TokenCache {
    async fn token(&self) -> Result<String, Error> {
        let mut state = self.state.lock().await;
        if let Some(c) = state.as_ref().filter(|c| c.expires_at > Instant::now() + self.margin) {
            return Ok(c.token.expose().to_string());
        }
        let resp = self.fetch().await?;
        let lifetime = resp.expires_in().unwrap_or(Duration::from_secs(3600));
        let token = resp.access_token().secret().clone();
        tracing::debug!(lifetime_secs = lifetime.as_secs(), "fetched a Graph access token");
        *state = Some(Cached { token: Secret::new(token.clone()), expires_at: Instant::now() + lifetime });
        Ok(token)
    }
}

#[async_trait]
impl TokenSource for Arc<TokenCache> {
    async fn token(&self) -> Result<String, Error> {
        self.as_ref().token().await
    }
}

/// graph-rs-sdk's view of the cache: every request the SDK sends takes its token here.
#[derive(Clone)]
pub struct GraphApp(pub Arc<TokenCache>);

#[async_trait]
impl graph_rs_sdk::identity::ClientApplication for GraphApp {
    fn get_token_silent(&mut self) -> graph_rs_sdk::error::AuthExecutionResult<String> {
        self.0.cached().ok_or_else(|| {
            graph_rs_sdk::error::AuthExecutionError::Authorization(
                graph_rs_sdk::error::AuthorizationFailure::RequiredValue {
                    name: "access_token".into(),
                    message: Some("no fresh token cached; the blocking client is not supported".into()),
                },
            )
        })
    }

    async fn get_token_silent_async(&mut self) -> graph_rs_sdk::error::AuthExecutionResult<String> {
        self.0.token().await.map_err(|e| graph_rs_sdk::error::AuthExecutionError::Other(Box::new(e)))
    }

    fn with_force_token_refresh(&mut self, force: graph_core::identity::ForceTokenRefresh) {
        if force != graph_core::identity::ForceTokenRefresh::Never {
            if let Ok(mut state) = self.0.state.try_lock() {
                *state = None;
            }
        }
    }
}

/// A delegated sign-in by the device-code flow: show [`DeviceLogin::user_code`] and
/// [`DeviceLogin::verification_uri`] to the user, then [`DeviceLogin::finish`] polls
/// until they have signed in and returns the refresh token to store in the account.
pub struct DeviceLogin {
    account: GraphAccount,
    details: StandardDeviceAuthorizationResponse,
    http: reqwest::Client,
}

impl std::fmt::Debug for DeviceLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLogin")
            .field("user_code", &self.user_code())
            .field("verification_uri", &self.verification_uri())
            .finish_non_exhaustive()
    }
}

/// The tokens a finished device-code sign-in yields.
#[derive(Debug, Clone)]
pub struct DelegatedTokens {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<Duration>,
}

impl DeviceLogin {
    /// Asks the identity provider for a device code.
    pub async fn start(account: &GraphAccount) -> Result<Self, Error> {
        let http = oauth_http_client(account.https_only)?;
        let device_url = DeviceAuthorizationUrl::new(account.device_code_url())
            .map_err(|e| Error::local(format!("invalid device-code URL: {e}")))?;
        let client = BasicClient::new(ClientId::new(account.client_id.clone()))
            .set_token_uri(token_url(account)?)
            .set_device_authorization_url(device_url)
            .set_auth_type(AuthType::RequestBody);
        let scopes = account.effective_scopes().into_iter().map(Scope::new);
        let recording = Recording::new(&http);
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(scopes)
            .request_async(&recording)
            .await
            .map_err(|e| token_error("device code", e, recording.status()))?;
        Ok(Self { account: account.clone(), details, http })
    }

    pub fn user_code(&self) -> &str {
        self.details.user_code().secret()
    }

    pub fn verification_uri(&self) -> &str {
        self.details.verification_uri().as_str()
    }

    /// Polls the token endpoint (at the interval the server asked for) until the user
    /// has signed in, refused, or `timeout` has passed.
    pub async fn finish(self, timeout: Duration) -> Result<DelegatedTokens, Error> {
        let client = BasicClient::new(ClientId::new(self.account.client_id.clone()))
            .set_token_uri(token_url(&self.account)?)
            .set_auth_type(AuthType::RequestBody);
        let resp = client
            .exchange_device_access_token(&self.details)
            .request_async(&self.http, tokio::time::sleep, Some(timeout))
            .await
            .map_err(|e| token_error("device code sign-in", e, None))?;
        Ok(DelegatedTokens {
            access_token: Secret::new(resp.access_token().secret().clone()),
            refresh_token: resp.refresh_token().map(|r| Secret::new(r.secret().clone())),
            expires_in: resp.expires_in(),
        })
    }
}
