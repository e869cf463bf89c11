//! A Prometheus scrape endpoint for Kestrel's metrics (feature `prometheus`):
//! installs a Prometheus recorder for the `metrics` facade and serves
//! `GET /metrics` on its own listener, separate from the app's endpoints, so
//! it is never exposed on them by accident. Hosting starts it when the
//! configuration has `Metrics:Prometheus:Url`.
//!
//! The exposition text is rendered by `metrics-exporter-prometheus`; the
//! listener is a [`KestrelServer`] (the exporter's own HTTP listener, which
//! would pull hyper in, is not used).

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{KestrelServer, RequestBody, RunningServer, StartError};

/// Why the Prometheus endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusError {
    /// Another `metrics` recorder is already installed in this process.
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
    /// The listener could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A running `/metrics` endpoint.
#[derive(Debug)]
pub struct PrometheusEndpoint {
    server: RunningServer,
    handle: PrometheusHandle,
}

impl PrometheusEndpoint {
    /// Install the recorder and serve `/metrics` on `url` (e.g. `http://127.0.0.1:9464`).
    pub async fn start(url: &str) -> Result<Self, PrometheusError> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| PrometheusError::Recorder(e.to_string()))?;
        let render = handle.clone();
        let app = move |req: Request<RequestBody>| {
            let render = render.clone();
            async move {
                let (status, body, allow) = match (req.method(), req.uri().path()) {
                    (&Method::GET | &Method::HEAD, "/metrics") => {
                        (StatusCode::OK, render.render(), false)
                    }
                    (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, String::new(), true),
                    _ => (StatusCode::NOT_FOUND, String::new(), false),
                };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = status;
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                if allow {
                    r.headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                }
                r
            }
        };
        let server = KestrelServer::default().urls([url]).start(app).await?;
        for a in server.addresses().iter() {
            tracing::info!(target: "kestrel", "Prometheus metrics on {a}/metrics");
        }
        Ok(PrometheusEndpoint { server, handle })
    }

    /// The listener's addresses.
    pub fn addresses(&self) -> &crate::ServerAddresses {
        self.server.addresses()
    }

    /// The exposition text, as a scrape would see it.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Stop the listener (the recorder stays installed).
    pub async fn stop(self) {
        self.server.stop().await
    }
}
