//! # kestrel-core
//!
//! The protocol-independent heart of Kestrel for Rust:
//!
//! * [`options`] and [`limits`]: `KestrelServerOptions`, `ListenOptions`,
//!   `ServerLimits` and `Http2Limits` with Kestrel's defaults, validated at start-up;
//! * [`endpoint`]: Kestrel's URL forms (`http://localhost:5000`, `http://*:80`,
//!   `http://unix:/path`, …) and the display names of bound addresses;
//! * [`connection`]: connection ids, the concurrent-connection limit, per-connection
//!   deadlines and shutdown signals; [`heartbeat`]: the 1 s tick and the cached `Date`;
//! * [`app`]: the [`Application`] trait; [`body`]: [`RequestBody`];
//!   [`body_state`]: the request-body state machine every driver uses;
//!   [`features`]: every per-request feature in one [`RequestFeatures`]
//!   value; [`aborted`]: the request-aborted signal;
//! * [`runtime`]: [`ConnectionRuntime`], the clock, heartbeat, admission and
//!   graceful shutdown in one object, for authors who run the drivers over
//!   their own accept loop (see `docs/embedding.md`); [`selection`]: the
//!   choice between HTTP/1 and HTTP/2 (cleartext preface sniffing, ALPN);
//! * [`events`]: Kestrel's log events, one function per event id;
//! * [`middleware`]: connection middleware (`ListenOptions::use_middleware`).
//!
//! This crate must not depend on any protocol crate (`kestrel-http1`,
//! `kestrel-http2`), TLS or hosting: they depend on it. Its only `kestrel-*`
//! dependency is `kestrel-transport`.

pub mod aborted;
pub mod app;
pub mod body;
pub mod body_state;
pub mod connection;
pub mod connection_logging;
pub mod data_rate;
pub mod endpoint;
pub mod events;
pub mod features;
pub mod framing;
pub mod heartbeat;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod options;
pub mod protocols;
pub mod request_limits;
pub mod runtime;
pub mod selection;
pub mod upgrade;

pub use aborted::RequestAborted;
pub use app::{Application, IntoAppResult};
pub use body::{BodyError, BodySource, BoxError, RequestBody};
pub use connection::{ConnectionGuard, ConnectionHandle, ConnectionId, ConnectionManager};
pub use endpoint::{BindTarget, BoundAddress, CustomTransport, Scheme, ServerUrl, UrlError};
pub use features::{
    ConnectionInfo, RequestFeatures, RequestFeaturesExt, ServerAddresses, StreamReset, TlsInfo,
};
pub use heartbeat::Clock;
/// The transport types [`ConnectionRuntime::admit`] takes.
pub use kestrel_transport::{Address, BoxIo, Connection, TransportKind};
pub use limits::{Http2Limits, MinDataRate, ServerLimits, HEARTBEAT_INTERVAL};
pub use middleware::{ConnectionMiddleware, MiddlewareLimits};
pub use options::{Http1Options, KestrelServerOptions, ListenOptions, OptionsError};
pub use protocols::HttpProtocols;
pub use request_limits::{FeatureError, RequestLimits};
pub use runtime::{AdmittedConnection, ConnectionRuntime};
pub use selection::{SelectedProtocol, SelectionLimits};
pub use upgrade::{OnUpgrade, UpgradeError, UpgradeFeature, Upgraded};
