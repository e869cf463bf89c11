//! Dispatch: turning a parsed head into the application's request, running
//! the application, and deciding what the connection does next.

use super::*;

impl Driver {
    /// Set up the body state and build the app's request (a plain `fn`, so
    /// the request is not part of the connection future's saved state).
    pub(super) fn begin_request(
        &mut self,
        head: RequestHead,
        token: u64,
    ) -> (Request<RequestBody>, Started) {
        let RequestHead {
            method,
            uri,
            version,
            headers,
            body,
            keep_alive,
            expect_continue,
            upgrade,
            ..
        } = head;
        let is_head = method == Method::HEAD;
        // Read the clock and keep the method only when metrics are compiled in.
        let metrics_start = metrics::ENABLED.then(|| {
            self.request_metrics.started(&method);
            (self.clock.now(), method.clone())
        });
        {
            let parser = &self.config.parser;
            let mut c = self.shared.lock();
            c.body = BodyState {
                token,
                active: true,
                decoder: match body {
                    BodyKind::Empty => None,
                    BodyKind::Length(n) => Some(Decoder::Length(LengthDecoder::new(n))),
                    BodyKind::Chunked => Some(Decoder::Chunked(ChunkedDecoder::new(
                        parser.max_request_headers_total_size,
                        parser.max_request_header_count,
                    ))),
                },
                continue_written: 0,
                waker: None,
                state: RequestBodyState::new(
                    body != BodyKind::Empty,
                    match body {
                        BodyKind::Length(n) => Some(n),
                        _ => None,
                    },
                    expect_continue,
                    self.config.max_request_body_size,
                ),
            };
        }
        let req_body = if body == BodyKind::Empty {
            RequestBody::empty()
        } else {
            RequestBody::from_source(self.shared.clone(), token)
        };
        let mut request = Request::new(req_body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        // A fresh signal unless the last one is unshared and did not fire.
        if Arc::strong_count(&self.abort) > 1 || self.abort.is_aborted() {
            self.abort = Arc::new(AbortSignal::new());
        }
        // An upgrade request that has a body is handled as a normal request.
        let upgrade = (upgrade && body == BodyKind::Empty)
            .then(|| UpgradeFeature::for_request(self.handle.clone(), request.headers()));
        // Every feature in one extension value: one allocation, not one per feature.
        request.extensions_mut().insert(
            RequestFeatures::new()
                .with_connection(self.info.clone())
                .with_limits(self.shared.limits.begin(token, self.config.limit_values()))
                .with_aborted(RequestAborted::new(
                    self.abort.clone() as Arc<dyn AbortSource>
                ))
                .with_upgrade(upgrade.clone()),
        );
        let started = Started {
            is_head,
            version,
            keep_alive,
            upgrade,
            metrics_start,
        };
        (request, started)
    }

    /// Build the app's request from `head`, open the request's span, call
    /// the app and seat its future in the connection's reused slot. A plain
    /// `fn`: the request goes from here straight into the app's future and
    /// is never part of the connection future's state (each move of it costs
    /// a copy of a few hundred bytes).
    pub(super) fn start_app<'s, B, F, M>(
        &mut self,
        call: &M,
        app_slot: &'s mut Option<Pin<Box<F>>>,
        head: RequestHead,
        token: u64,
    ) -> (Pin<&'s mut F>, tracing::Span, Started)
    where
        F: Future<Output = Result<Response<B>, BoxError>>,
        M: Fn(Request<RequestBody>) -> F,
    {
        let (request, started) = self.begin_request(head, token);
        // A span per request (method, path, protocol) so a subscriber can
        // correlate the app's events; a disabled span costs next to nothing.
        // It is entered around each poll of the app's future (rather than
        // wrapping it, which would move the future once more per request).
        let span = events::request_span(
            request.method(),
            request.uri().path(),
            request.version(),
            self.handle.id(),
            None,
        );
        let fut = call(request);
        let fut = match app_slot {
            Some(slot) => {
                slot.set(fut);
                slot.as_mut()
            }
            None => app_slot.insert(Box::pin(fut)).as_mut(),
        };
        (fut, span, started)
    }

    /// Run the app's request (started by [`Driver::start_app`]) to its end:
    /// its response, the drain of what it left of the body, the upgrade.
    /// The connection stays open (`Continue`) or closes.
    pub(super) async fn serve_request<B, F>(
        &mut self,
        fut: Pin<&mut F>,
        span: tracing::Span,
        started: Started,
    ) -> Result<ControlFlow<Http1Close>, Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
        F: Future<Output = Result<Response<B>, BoxError>>,
    {
        let Started {
            is_head,
            version,
            keep_alive,
            upgrade,
            metrics_start,
        } = started;
        let mut outcome = self.run_app(fut, &span).await?;

        if let Some(u) = &upgrade {
            match outcome {
                AppOutcome::Response(resp)
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS && u.is_accepted() =>
                {
                    // Boxed: upgrades are rare, and the connection future
                    // would otherwise reserve room for this path.
                    return Box::pin(self.finish_upgrade(resp, u, version))
                        .await
                        .map(|()| ControlFlow::Break(Http1Close::Done));
                }
                other => outcome = other,
            }
            u.cancel();
        }
        if let AppOutcome::Response(r) = &outcome {
            if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                outcome = AppOutcome::Failed(
                    "a 101 response requires accepting the upgrade with UpgradeFeature::upgrade first".into(),
                );
            }
        }

        let rejection = self.shared.lock().body.rejection();
        if let Some(r) = rejection {
            if r == RequestRejection::UnexpectedEndOfRequestContent {
                // The client left in the middle of the body.
                self.abort_request("the client closed the connection during the request body");
            }
            // The body was malformed or too large: that decides the answer,
            // whatever the app made of it.
            self.end_request();
            self.write_rejection(r);
            return Err(Http1Error::BadRequest(r));
        }
        let facts = RequestFacts {
            is_head,
            version,
            keep_alive: keep_alive && !self.handle.is_close_requested(),
            add_server_header: self.config.add_server_header,
        };
        let status = match &outcome {
            AppOutcome::Response(r) => r.status(),
            AppOutcome::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut next = match outcome {
            AppOutcome::Response(resp) => match self.write_response(resp, &facts).await {
                Ok(next) => next,
                Err(e) => {
                    // The response could not be completed.
                    self.abort_request("the response was not completed");
                    return Err(e);
                }
            },
            AppOutcome::Failed(e) => {
                self.log_app_error(&e);
                if self.write_simple(StatusCode::INTERNAL_SERVER_ERROR, &facts, None) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(Http1Close::Done)
                }
            }
        };
        if let Some((started, method)) = metrics_start {
            self.request_metrics
                .stopped(&method, status, started.elapsed());
        }
        // One look at the body's state (the common case: it is complete).
        let (mut complete, continue_unanswered) = {
            let c = self.shared.lock();
            let complete = c.body.is_complete();
            (complete, c.body.state.is_awaiting_continue())
        };
        if next.is_continue() {
            if continue_unanswered {
                // The client may still be waiting for `100 Continue` before
                // it sends the body; the connection cannot be reused.
                next = ControlFlow::Break(Http1Close::Done);
            } else if !complete {
                next = self.drain_body().await?;
                complete = self.shared.lock().body.is_complete();
            }
        }
        if !complete {
            self.linger = true;
        }
        self.end_request();
        if next.is_continue() && self.handle.is_close_requested() {
            next = ControlFlow::Break(Http1Close::Done);
        }
        Ok(next)
    }

    pub(super) fn end_request(&self) {
        self.shared.lock().body.active = false;
        self.shared.limits.end();
        self.handle.rates().end_read();
    }

    /// Write the app's 101, then hand the raw connection (and any bytes read
    /// past the request head) to the app's `OnUpgrade`.
    pub(super) async fn finish_upgrade<B>(
        &mut self,
        resp: Response<B>,
        upgrade: &UpgradeFeature,
        version: Version,
    ) -> Result<(), Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let facts = RequestFacts {
            is_head: false,
            version,
            keep_alive: false,
            add_server_header: self.config.add_server_header,
        };
        // The connection becomes the app's stream after the 101, whatever
        // the framing said.
        let _after_101 = self.write_response(resp, &facts).await?;
        self.flush().await?;
        self.end_request();
        self.shared.limits.remove_body_size_limit();
        let (io, buffered) = {
            let mut c = self.shared.lock();
            let buffered = std::mem::take(&mut c.read_buf).freeze();
            (c.io.take(), buffered)
        };
        let Some(io) = io else {
            upgrade.cancel();
            return Err(Http1Error::Aborted);
        };
        tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "connection upgraded");
        // If the app dropped its OnUpgrade, the connection just closes.
        let _ = upgrade.complete(Upgraded::new(io, buffered, self.guard.take()));
        Ok(())
    }

    /// Run the app; while it is pending, keep flushing earlier responses and
    /// watch for an abort.
    pub(super) async fn run_app<B, F>(
        &mut self,
        mut fut: Pin<&mut F>,
        span: &tracing::Span,
    ) -> Result<AppOutcome<B>, Http1Error>
    where
        F: Future<Output = Result<Response<B>, BoxError>>,
    {
        let shared = &self.shared;
        let wb = &mut self.wb;
        let (abort, read_ahead) = (&self.abort, self.config.read_ahead);
        let result = poll_fn(|cx| {
            // A panic in the app is its error, not the server's.
            let polled = {
                let _in_span = span.enter();
                kestrel_core::app::poll_app(fut.as_mut(), cx)
            };
            if let Poll::Ready(r) = polled {
                return Poll::Ready(Ok(r));
            }
            match shared.handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(None)),
                Poll::Ready(Signal::TimedOut(TimeoutReason::ReadDataRate)) => {
                    events::request_body_minimum_data_rate_not_satisfied(shared.handle.id(), None);
                    shared.lock().reject_body(RequestRejection::RequestBodyTimeout);
                }
                Poll::Ready(Signal::TimedOut(reason)) => {
                    tracing::debug!(target: "kestrel::connections", connection_id = %shared.handle.id(), ?reason, "aborting the connection: deadline passed while the application ran");
                    return Poll::Ready(Err(Some(reason)));
                }
                _ => {}
            }
            if !wb.buf.is_empty() {
                // Errors surface at the next write.
                let _ = shared.lock().poll_write_buf(cx, wb, &mut Bytes::new());
            }
            // Watch for the client leaving while the app works.
            if !abort.is_aborted() && shared.lock().poll_client_gone(cx, read_ahead) {
                fire_abort(abort, &shared.handle, "the client closed the connection");
            }
            Poll::Pending
        })
        .await;
        match result {
            Err(deadline) => {
                self.abort_request("the connection was aborted");
                Err(deadline.map_or(Http1Error::Aborted, Http1Error::Deadline))
            }
            Ok(Ok(Ok(resp))) => Ok(AppOutcome::Response(resp)),
            Ok(Ok(Err(e))) => Ok(AppOutcome::Failed(e)),
            Ok(Err(panic)) => Ok(AppOutcome::Failed(Box::new(panic))),
        }
    }

    pub(super) fn log_app_error(&self, e: &BoxError) {
        events::application_error(self.handle.id(), None, e);
    }
}
