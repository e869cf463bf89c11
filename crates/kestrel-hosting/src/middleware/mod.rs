//! Built-in middleware for the [`pipeline`](crate::pipeline): host filtering,
//! forwarded headers, static files and health checks, after ASP.NET Core's.

pub mod forwarded_headers;
pub mod health_checks;
pub mod host_filtering;
pub mod static_files;

pub use forwarded_headers::{
    ForwardedHeader, ForwardedHeaders, ForwardedInfo, IpNetwork, IpNetworkError,
};
pub use health_checks::{
    HealthCheck, HealthCheckEndpoint, HealthCheckResult, HealthChecks, HealthReport, HealthStatus,
};
pub use host_filtering::{EmptyHostPolicy, HostFiltering, HostFilteringError};
pub use static_files::StaticFiles;
