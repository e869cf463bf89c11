//! A stream's request: check its head against the limits `h2` does not
//! enforce, and build the app's `Request<RequestBody>` with its features.

use std::sync::Arc;

use h2::{Reason, RecvStream};
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use kestrel_core::events;
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{RequestAborted, RequestBody, RequestFeatures, StreamReset, UpgradeFeature};

use super::end::AbortOnDrop;
use super::{Started, StreamCtx};
use crate::body::StreamState;

impl StreamCtx<'_> {
    /// Check the request head against the limits `h2` does not enforce:
    /// `Err` is the answer the stream gets instead of running the app.
    fn check_head(&self, req: &Request<RecvStream>, stream_id: u32) -> Result<(), Rejection> {
        let c = self.config;
        // Kestrel applies MaxRequestLineSize to the pseudo-headers.
        let uri = req.uri();
        let pseudo = req.method().as_str().len()
            + uri.scheme_str().map_or(0, str::len)
            + uri.authority().map_or(0, |a| a.as_str().len())
            + uri.path_and_query().map_or(0, |p| p.as_str().len());
        if pseudo > c.max_request_line_size {
            self.log_stream_error(
                stream_id,
                Reason::PROTOCOL_ERROR,
                "the request pseudo-headers are longer than max_request_line_size",
            );
            return Err(Rejection::Reset(Reason::PROTOCOL_ERROR));
        }
        // `h2` checks CONNECT's pseudo-headers but lets one without
        // :authority through (RFC 9113 §8.5 requires it; an extended CONNECT
        // may omit it, RFC 8441 §4).
        if req.method() == Method::CONNECT
            && uri.authority().is_none()
            && req.extensions().get::<h2::ext::Protocol>().is_none()
        {
            self.log_stream_error(
                stream_id,
                Reason::PROTOCOL_ERROR,
                "a CONNECT request without :authority",
            );
            return Err(Rejection::Reset(Reason::PROTOCOL_ERROR));
        }
        let headers = req.headers();
        if headers.len() > c.max_request_header_count {
            self.log_bad_request(
                stream_id,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "TooManyHeaders",
            );
            return Err(Rejection::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ));
        }
        let field_max = c.limits.max_request_header_field_size as usize;
        let mut total = 0usize;
        for (name, value) in headers {
            let size = name.as_str().len() + value.len();
            total += size;
            if size > field_max {
                self.log_bad_request(
                    stream_id,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "HeaderFieldTooLarge",
                );
                return Err(Rejection::Status(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ));
            }
        }
        if total > c.max_request_headers_total_size {
            self.log_bad_request(
                stream_id,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HeadersExceedMaxTotalSize",
            );
            return Err(Rejection::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ));
        }
        Ok(())
    }
}

/// How a request refused by the checks is answered.
pub(super) enum Rejection {
    Status(StatusCode),
    Reset(Reason),
}

/// Check the request head and build the app's request (a plain `fn`, so the
/// head is not part of the stream's future).
pub(super) fn start_request(
    ctx: &StreamCtx<'_>,
    req: Request<RecvStream>,
    stream_id: u32,
) -> Result<(Request<RequestBody>, Started), Rejection> {
    ctx.check_head(&req, stream_id)?;
    // An extended CONNECT (RFC 8441): `h2` checked the pseudo-headers
    // (CONNECT with :scheme and :path, and SETTINGS_ENABLE_CONNECT_PROTOCOL sent).
    let upgrade = req
        .extensions()
        .get::<h2::ext::Protocol>()
        .filter(|_| req.method() == Method::CONNECT)
        .map(|p| UpgradeFeature::extended_connect(ctx.handle.clone(), p.as_str()));
    let (mut parts, recv) = req.into_parts();
    let end_stream = recv.is_end_stream();
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let expect_continue = !end_stream
        && parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let values = ctx.config.limit_values();
    let cell = LimitsCell::new(values);
    let limits = cell.begin(1, values);
    if upgrade.is_some() {
        // Its DATA frames are the tunnel's, not a body: no body-size limit,
        // no data rate, and nothing for the app to change (as in Kestrel).
        cell.freeze();
        cell.remove_body_size_limit();
    }
    let span = events::request_span(
        &parts.method,
        parts.uri.path(),
        parts.version,
        ctx.conn_id,
        Some(stream_id),
    );
    let state = StreamState::new(stream_id, recv, cell, declared_len, expect_continue, span);
    if upgrade.is_none() {
        // A tunnel has no data rates; every other stream may have them (the
        // app can turn them on or off for its request).
        match ctx.rated.lock() {
            Ok(mut rated) => rated.push(state.clone()),
            Err(poisoned) => poisoned.into_inner().push(state.clone()),
        }
    }
    // In HTTP/2 `:authority` stands for Host (Kestrel copies it over Host).
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    // Every feature in one extension value: one allocation, not one per feature.
    parts.extensions.insert(
        RequestFeatures::new()
            .with_connection(ctx.info.cloned())
            .with_limits(limits)
            .with_aborted(RequestAborted::new(
                state.clone() as Arc<dyn kestrel_core::aborted::AbortSource>
            ))
            .with_upgrade(upgrade.clone())
            .with_reset(StreamReset::new(state.clone())),
    );
    let abort_on_drop = AbortOnDrop::new(state.clone());
    let is_head = parts.method == Method::HEAD;
    let metrics_start = kestrel_core::metrics::ENABLED.then(|| {
        if let Ok(mut m) = ctx.metrics.lock() {
            m.started(&parts.method);
        }
        (ctx.clock.now(), parts.method.clone())
    });
    let body = if end_stream || upgrade.is_some() {
        RequestBody::empty()
    } else {
        RequestBody::from_source(state.clone(), 0)
    };
    let started = Started {
        abort_on_drop,
        state,
        upgrade,
        metrics_start,
        is_head,
    };
    Ok((Request::from_parts(parts, body), started))
}
