//! A client for the bridge's gRPC API with the API key attached to every
//! call: used by the CLI (`lookup` against a running server), the examples and
//! the tests.

use super::pb::admin_client::AdminClient;
use super::pb::call_handling_client::CallHandlingClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Adds `authorization: Bearer <key>` to each request. Its Debug output hides the key.
#[derive(Clone)]
pub struct BearerAuth(MetadataValue<Ascii>);

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(..)")
    }
}

impl BearerAuth {
    pub fn new(key: &str) -> Result<Self, ClientError> {
        format!("Bearer {}", key.trim()).parse().map(Self).map_err(|_| ClientError::BadKey)
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type AuthChannel = InterceptedService<Channel, BearerAuth>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API key contains characters that cannot be sent in a header")]
    BadKey,
    #[error("{endpoint:?} is not a valid address (use http://host:port): {source}")]
    BadEndpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to the bridge at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Both services over one connection.
#[derive(Clone)]
pub struct BridgeClient {
    pub calls: CallHandlingClient<AuthChannel>,
    pub admin: AdminClient<AuthChannel>,
}

impl BridgeClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`; `host:port` is read as http).
    pub async fn connect(endpoint: &str, key: &str) -> Result<Self, ClientError> {
        let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let ep = Endpoint::from_shared(url.clone())
            .map_err(|source| ClientError::BadEndpoint { endpoint: endpoint.to_string(), source })?
            .tcp_nodelay(true);
        Self::connect_with(ep, key).await
    }

    /// Connects through a prepared endpoint (TLS settings, timeouts).
    pub async fn connect_with(endpoint: Endpoint, key: &str) -> Result<Self, ClientError> {
        let auth = BearerAuth::new(key)?;
        let uri = endpoint.uri().to_string();
        let channel = endpoint.connect().await.map_err(|source| ClientError::Connect { endpoint: uri, source })?;
        Ok(Self::from_channel(channel, auth))
    }

    pub fn from_channel(channel: Channel, auth: BearerAuth) -> Self {
        Self {
            calls: CallHandlingClient::with_interceptor(channel.clone(), auth.clone()),
            admin: AdminClient::with_interceptor(channel, auth),
        }
    }
}
