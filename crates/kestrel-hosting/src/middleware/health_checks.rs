//! Health checks (ASP.NET Core's `AddHealthChecks` + `MapHealthChecks`):
//! the app registers checks, each with a timeout and tags; an endpoint runs
//! them (all of them, or those with given tags) and answers with the worst
//! status.
//!
//! | Status | HTTP | Meaning |
//! |---|---|---|
//! | `Healthy` | 200 | every check passed |
//! | `Degraded` | 200 | working, but a check reported trouble |
//! | `Unhealthy` | 503 | a check failed, timed out or panicked |
//!
//! The body is the status's name (`text/plain`), or with
//! [`HealthCheckEndpoint::json`] a JSON report of every check (status,
//! description, duration, tags). Responses are never cached
//! (`Cache-Control: no-store, no-cache`, as ASP.NET Core sends).
//!
//! **Liveness and readiness.** Tags split the checks: a liveness endpoint
//! (say `/healthz/live`, tag `live`) tells an orchestrator whether to restart
//! the process; a readiness endpoint (`/healthz/ready`, tag `ready`) whether
//! to send it traffic. [`HealthChecks::add_shutdown_check`] registers a check
//! that turns `Unhealthy` as soon as the host's graceful shutdown begins, so
//! readiness answers 503 while the server still serves (during the host's
//! `shutdownDelaySeconds`, see `docs/deployment.md`) and load balancers take
//! the instance out before it stops accepting.
//!
//! ```
//! use std::time::Duration;
//! use kestrel_hosting::middleware::health_checks::{
//!     HealthCheckEndpoint, HealthCheckResult, HealthChecks,
//! };
//! use kestrel_hosting::ApplicationLifetime;
//!
//! let lifetime = ApplicationLifetime::new(); // the host's: WebHostBuilder::lifetime()
//! let checks = HealthChecks::new()
//!     .add_check("self", || async { HealthCheckResult::healthy() })
//!     .add_check_with("database", || async { HealthCheckResult::degraded("slow") },
//!         Duration::from_secs(2), ["ready"])
//!     .add_shutdown_check(&lifetime, ["ready"]);
//! let mut app = kestrel_hosting::pipeline::ApplicationBuilder::new();
//! app.use_middleware(HealthCheckEndpoint::new("/healthz", &checks).json(true));
//! app.use_middleware(HealthCheckEndpoint::new("/healthz/live", &checks).tags(["live"]));
//! app.use_middleware(HealthCheckEndpoint::new("/healthz/ready", &checks).tags(["ready"]));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use kestrel_core::RequestBody;

use crate::lifetime::ApplicationLifetime;
use crate::pipeline::{box_body, BoxResponseFuture, Middleware, Next};

/// The default timeout of a check registered without one.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the check [`HealthChecks::add_shutdown_check`] registers.
pub const SHUTDOWN_CHECK_NAME: &str = "shutdown";

/// A health status (ASP.NET Core's `HealthStatus`), ordered worst first, so
/// the overall status is the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// A check failed: the endpoint answers 503.
    Unhealthy,
    /// A check reported trouble, but the app works: 200.
    Degraded,
    /// Everything is fine: 200.
    Healthy,
}

impl HealthStatus {
    /// The status's name, as ASP.NET Core writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Unhealthy => "Unhealthy",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Healthy => "Healthy",
        }
    }

    /// The HTTP status ASP.NET Core answers with by default.
    pub fn http_status(&self) -> StatusCode {
        match self {
            HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::Degraded | HealthStatus::Healthy => StatusCode::OK,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check found (ASP.NET Core's `HealthCheckResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckResult {
    /// The status.
    pub status: HealthStatus,
    /// Why, for people reading the JSON report.
    pub description: Option<String>,
}

impl HealthCheckResult {
    /// `Healthy`, without a description.
    pub fn healthy() -> Self {
        HealthCheckResult {
            status: HealthStatus::Healthy,
            description: None,
        }
    }

    /// `Degraded`, with a description.
    pub fn degraded(description: impl Into<String>) -> Self {
        HealthCheckResult {
            status: HealthStatus::Degraded,
            description: Some(description.into()),
        }
    }

    /// `Unhealthy`, with a description.
    pub fn unhealthy(description: impl Into<String>) -> Self {
        HealthCheckResult {
            status: HealthStatus::Unhealthy,
            description: Some(description.into()),
        }
    }
}

/// A boxed check future.
pub type HealthCheckFuture = Pin<Box<dyn Future<Output = HealthCheckResult> + Send + 'static>>;

/// A health check (ASP.NET Core's `IHealthCheck`). Closures returning a
/// future of [`HealthCheckResult`] are checks.
pub trait HealthCheck: Send + Sync + 'static {
    /// Run the check once.
    fn check(&self) -> HealthCheckFuture;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HealthCheckResult> + Send + 'static,
{
    fn check(&self) -> HealthCheckFuture {
        Box::pin(self())
    }
}

#[derive(Clone)]
struct Registration {
    name: String,
    check: Arc<dyn HealthCheck>,
    timeout: Duration,
    tags: Vec<String>,
}

/// The registered checks (ASP.NET Core's `AddHealthChecks()` builder).
/// Cheap to clone; endpoints made from it share the checks.
#[derive(Clone, Default)]
pub struct HealthChecks {
    checks: Arc<Vec<Registration>>,
}

impl fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|r| (&r.name, &r.tags, r.timeout)))
            .finish()
    }
}

impl HealthChecks {
    /// No checks yet (an endpoint then answers `Healthy`).
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, r: Registration) -> Self {
        Arc::make_mut(&mut self.checks).push(r);
        self
    }

    /// Register `check` as `name`, with the default timeout (30 s) and no tags.
    pub fn add_check(self, name: impl Into<String>, check: impl HealthCheck) -> Self {
        self.add_check_with(
            name,
            check,
            DEFAULT_CHECK_TIMEOUT,
            std::iter::empty::<String>(),
        )
    }

    /// Register `check` as `name`. A check that has not answered within
    /// `timeout` is `Unhealthy` ("timed out"). `tags` select the endpoints
    /// that run it (e.g. `["ready"]`).
    pub fn add_check_with<T: Into<String>>(
        self,
        name: impl Into<String>,
        check: impl HealthCheck,
        timeout: Duration,
        tags: impl IntoIterator<Item = T>,
    ) -> Self {
        self.push(Registration {
            name: name.into(),
            check: Arc::new(check),
            timeout,
            tags: tags.into_iter().map(Into::into).collect(),
        })
    }

    /// Register the `shutdown` check: `Healthy` until the graceful shutdown
    /// of `lifetime` begins (its stopping hooks fire), `Unhealthy` from then
    /// on. Tag it for readiness (`["ready"]`).
    pub fn add_shutdown_check<T: Into<String>>(
        self,
        lifetime: &ApplicationLifetime,
        tags: impl IntoIterator<Item = T>,
    ) -> Self {
        let lifetime = lifetime.clone();
        self.add_check_with(
            SHUTDOWN_CHECK_NAME,
            move || {
                let stopping = lifetime.is_stopping();
                async move {
                    if stopping {
                        HealthCheckResult::unhealthy("the application is shutting down")
                    } else {
                        HealthCheckResult::healthy()
                    }
                }
            },
            DEFAULT_CHECK_TIMEOUT,
            tags,
        )
    }

    /// Run the checks `filter` selects, concurrently, and report.
    pub async fn run(&self, filter: &TagFilter) -> HealthReport {
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let selected: Vec<usize> = self
            .checks
            .iter()
            .enumerate()
            .filter(|(_, r)| filter.selects(&r.tags))
            .map(|(i, _)| i)
            .collect();
        for &i in &selected {
            let r = &self.checks[i];
            let fut = r.check.check();
            let timeout = r.timeout;
            set.spawn(async move {
                let t = Instant::now();
                let result = match tokio::time::timeout(timeout, fut).await {
                    Ok(result) => result,
                    Err(_) => HealthCheckResult::unhealthy(format!(
                        "the check timed out after {}",
                        format_duration(timeout)
                    )),
                };
                (i, result, t.elapsed())
            });
        }
        let mut results: Vec<Option<(HealthCheckResult, Duration)>> = vec![None; self.checks.len()];
        while let Some(joined) = set.join_next().await {
            // A panicking check is left `None`: reported Unhealthy below.
            if let Ok((i, result, took)) = joined {
                results[i] = Some((result, took));
            }
        }
        let entries: Vec<HealthReportEntry> = selected
            .into_iter()
            .map(|i| {
                let r = &self.checks[i];
                let (result, duration) = results[i].take().unwrap_or_else(|| {
                    (
                        HealthCheckResult::unhealthy("the check panicked"),
                        Duration::ZERO,
                    )
                });
                if result.status != HealthStatus::Healthy {
                    tracing::debug!(target: "kestrel::hosting::health_checks", check = %r.name, status = %result.status, description = ?result.description, "health check not healthy");
                }
                HealthReportEntry {
                    name: r.name.clone(),
                    status: result.status,
                    description: result.description,
                    duration,
                    tags: r.tags.clone(),
                }
            })
            .collect();
        let status = entries
            .iter()
            .map(|e| e.status)
            .min()
            .unwrap_or(HealthStatus::Healthy);
        HealthReport {
            status,
            total_duration: started.elapsed(),
            entries,
        }
    }
}

/// Which checks an endpoint runs: all of them, or those carrying at least
/// one of some tags (ASP.NET Core's `HealthCheckOptions.Predicate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    any_of: Option<Vec<String>>,
}

impl TagFilter {
    /// Every check.
    pub fn all() -> Self {
        TagFilter { any_of: None }
    }

    /// Checks with at least one of `tags` (none at all when `tags` is empty).
    pub fn any_of<T: Into<String>>(tags: impl IntoIterator<Item = T>) -> Self {
        TagFilter {
            any_of: Some(tags.into_iter().map(Into::into).collect()),
        }
    }

    fn selects(&self, tags: &[String]) -> bool {
        match &self.any_of {
            None => true,
            Some(wanted) => tags
                .iter()
                .any(|t| wanted.iter().any(|w| w.eq_ignore_ascii_case(t))),
        }
    }
}

/// One check's outcome in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReportEntry {
    /// The check's name.
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// Its description.
    pub description: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The outcome of one run (ASP.NET Core's `HealthReport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The worst status of the checks (`Healthy` when none ran).
    pub status: HealthStatus,
    /// How long the run took.
    pub total_duration: Duration,
    /// Each check, in registration order.
    pub entries: Vec<HealthReportEntry>,
}

/// A duration as .NET writes a `TimeSpan` (`00:00:00.0012345`).
fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:07}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_nanos() / 100
    )
}

impl HealthReport {
    /// The JSON report: `{"status":…,"totalDuration":…,"entries":{name:
    /// {"status","description","duration","tags"}}}` (the shape of the
    /// common ASP.NET Core health-checks UI writer).
    pub fn to_json(&self) -> serde_json::Value {
        let mut entries = serde_json::Map::new();
        for e in &self.entries {
            entries.insert(
                e.name.clone(),
                serde_json::json!({
                    "status": e.status.as_str(),
                    "description": e.description,
                    "duration": format_duration(e.duration),
                    "tags": e.tags,
                }),
            );
        }
        serde_json::json!({
            "status": self.status.as_str(),
            "totalDuration": format_duration(self.total_duration),
            "entries": entries,
        })
    }
}

/// The health-check endpoint middleware (ASP.NET Core's
/// `MapHealthChecks(path)`): `GET` or `HEAD` of exactly `path` runs the
/// selected checks; other requests pass on.
#[derive(Debug, Clone)]
pub struct HealthCheckEndpoint {
    path: String,
    checks: HealthChecks,
    filter: TagFilter,
    json: bool,
}

impl HealthCheckEndpoint {
    /// Answer at `path` (a missing leading `/` is added) with every check of `checks`.
    pub fn new(path: &str, checks: &HealthChecks) -> Self {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        HealthCheckEndpoint {
            path,
            checks: checks.clone(),
            filter: TagFilter::all(),
            json: false,
        }
    }

    /// Run only the checks carrying at least one of `tags`.
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.filter = TagFilter::any_of(tags);
        self
    }

    /// Answer with the JSON report (`application/json`) instead of the
    /// status's name.
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }
}

impl Middleware for HealthCheckEndpoint {
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        if req.uri().path() != self.path || !matches!(*req.method(), Method::GET | Method::HEAD) {
            return next.run(req);
        }
        let checks = self.checks.clone();
        let filter = self.filter.clone();
        let json = self.json;
        Box::pin(async move {
            let report = checks.run(&filter).await;
            let (body, content_type) = if json {
                (report.to_json().to_string(), "application/json")
            } else {
                (report.status.as_str().to_string(), "text/plain")
            };
            let mut response = Response::new(box_body(Full::new(Bytes::from(body))));
            *response.status_mut() = report.status.http_status();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            h.insert(
                header::EXPIRES,
                HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
            );
            Ok(response)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_worst_first_and_map_to_http() {
        assert!(HealthStatus::Unhealthy < HealthStatus::Degraded);
        assert!(HealthStatus::Degraded < HealthStatus::Healthy);
        assert_eq!(HealthStatus::Healthy.http_status(), 200);
        assert_eq!(HealthStatus::Degraded.http_status(), 200);
        assert_eq!(HealthStatus::Unhealthy.http_status(), 503);
        assert_eq!(
            format_duration(Duration::from_micros(1_500)),
            "00:00:00.0015000"
        );
        assert_eq!(
            format_duration(Duration::from_secs(3_723)),
            "01:02:03.0000000"
        );
    }

    #[tokio::test]
    async fn the_worst_status_wins_and_tags_select() {
        let checks = HealthChecks::new()
            .add_check("a", || async { HealthCheckResult::healthy() })
            .add_check_with(
                "b",
                || async { HealthCheckResult::degraded("slow") },
                Duration::from_secs(1),
                ["ready"],
            )
            .add_check_with(
                "c",
                || async { HealthCheckResult::unhealthy("down") },
                Duration::from_secs(1),
                ["db"],
            );
        assert_eq!(
            checks.run(&TagFilter::all()).await.status,
            HealthStatus::Unhealthy
        );
        let ready = checks.run(&TagFilter::any_of(["READY"])).await;
        assert_eq!(ready.status, HealthStatus::Degraded);
        assert_eq!(ready.entries.len(), 1);
        assert_eq!(ready.entries[0].name, "b");
        let none = checks.run(&TagFilter::any_of(["live"])).await;
        assert_eq!(none.status, HealthStatus::Healthy);
        assert!(none.entries.is_empty());
    }

    #[tokio::test]
    async fn a_slow_check_times_out_and_a_panicking_one_is_unhealthy() {
        let checks = HealthChecks::new()
            .add_check_with(
                "slow",
                || async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    HealthCheckResult::healthy()
                },
                Duration::from_millis(100),
                ["x"],
            )
            .add_check_with(
                "boom",
                || async {
                    #[allow(clippy::panic)]
                    if true {
                        panic!("check failed hard");
                    }
                    HealthCheckResult::healthy()
                },
                Duration::from_secs(1),
                ["y"],
            );
        let t = Instant::now();
        let slow = checks.run(&TagFilter::any_of(["x"])).await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert_eq!(slow.status, HealthStatus::Unhealthy);
        assert!(
            slow.entries[0]
                .description
                .as_deref()
                .unwrap()
                .contains("timed out after 00:00:00.1000000"),
            "{slow:?}"
        );
        let boom = checks.run(&TagFilter::any_of(["y"])).await;
        assert_eq!(boom.status, HealthStatus::Unhealthy);
        assert_eq!(
            boom.entries[0].description.as_deref(),
            Some("the check panicked")
        );
    }

    #[tokio::test]
    async fn the_shutdown_check_flips_when_stopping_begins() {
        let lifetime = ApplicationLifetime::new();
        let checks = HealthChecks::new().add_shutdown_check(&lifetime, ["ready"]);
        let ready = TagFilter::any_of(["ready"]);
        assert_eq!(checks.run(&ready).await.status, HealthStatus::Healthy);
        lifetime.fire_stopping();
        let report = checks.run(&ready).await;
        assert_eq!(report.status, HealthStatus::Unhealthy);
        let json = report.to_json();
        assert_eq!(json["status"], "Unhealthy");
        assert_eq!(json["entries"]["shutdown"]["tags"][0], "ready");
        assert_eq!(
            json["entries"]["shutdown"]["description"],
            "the application is shutting down"
        );
    }
}
