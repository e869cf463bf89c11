//! Reading: request heads off the connection, under the request-headers and
//! keep-alive deadlines, and draining a body the application left unread.

use super::*;

impl Driver {
    /// Take a request head from what is buffered, without waiting: a whole
    /// head, a rejection, the end of the input, or a partial head (maybe
    /// none at all). A plain `fn`, so that the parsed head goes straight to
    /// the app's request without passing through an `async` frame.
    pub(super) fn take_head(&self) -> Buffered {
        let mut c = self.shared.lock();
        if !c.read_buf.is_empty() {
            match self.config.parser.parse(&mut c.read_buf) {
                Ok(Some(head)) => {
                    self.handle.timeout().cancel();
                    return Buffered::Head(head);
                }
                Ok(None) => {}
                Err(r) => {
                    self.handle.timeout().cancel();
                    return Buffered::Reject(r);
                }
            }
        }
        if c.eof {
            if !c.read_buf.is_empty() {
                tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "the client closed the connection in the middle of a request head");
            }
            return Buffered::Closed(Http1Close::Done);
        }
        Buffered::Partial {
            any: !c.read_buf.is_empty(),
        }
    }

    /// Wait for more of a request head (`Continue`), or for the reason to
    /// stop: the connection closes quietly (keep-alive timeout, shutdown
    /// while idle) or the head is rejected (408).
    ///
    /// The first request of a connection is under the request-headers
    /// deadline from the moment the connection opened (so a client that
    /// connects and sends nothing is dropped then, quietly); later requests
    /// wait under the keep-alive timeout until their first byte. `armed` is
    /// the deadline set so far for this head.
    pub(super) async fn wait_for_head<F>(
        &mut self,
        first: bool,
        buffered: bool,
        armed: &mut Option<TimeoutReason>,
        app_slot: &mut Option<Pin<Box<F>>>,
    ) -> Result<ControlFlow<HeadStop>, Http1Error> {
        // The headers timer starts at the first byte of a request; before
        // that the connection is idle and the keep-alive timer runs.
        let want = if buffered || first {
            TimeoutReason::RequestHeaders
        } else {
            TimeoutReason::KeepAlive
        };
        if *armed != Some(want) {
            let timeout = match want {
                TimeoutReason::RequestHeaders => self.config.request_headers_timeout,
                _ => self.config.keep_alive_timeout,
            };
            self.arm(want, timeout);
            *armed = Some(want);
        }
        // Before waiting for input, send what earlier (pipelined) requests produced.
        self.flush().await?;
        let shared = &self.shared;
        let event = poll_fn(|cx| {
            match shared.handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(Http1Error::Aborted)),
                Poll::Ready(Signal::TimedOut(r)) => return Poll::Ready(Ok(Some(r))),
                Poll::Ready(Signal::CloseRequested) if !buffered => {
                    return Poll::Ready(Ok(Some(TimeoutReason::None)));
                }
                Poll::Ready(Signal::Idle) if !buffered => {
                    return Poll::Ready(Ok(Some(TimeoutReason::None)));
                }
                _ => {}
            }
            shared
                .lock()
                .poll_fill(cx)
                .map(|r| r.map(|_| None).map_err(Http1Error::Io))
        })
        .await?;
        match event {
            None => self.handle.set_buffers_released(false),
            Some(TimeoutReason::None)
                if self.handle.check_signal().is_none() && !self.handle.is_close_requested() =>
            {
                // Idle across a heartbeat: hold no buffers while waiting.
                let released = self.shared.lock().release_read_buffer() && self.wb.release();
                *app_slot = None;
                self.handle.set_buffers_released(released);
            }
            Some(TimeoutReason::RequestHeaders) => {
                if self.shared.lock().read_buf.is_empty() {
                    // Nothing of a request arrived: close without a response.
                    tracing::debug!(target: "kestrel::connections", connection_id = %self.handle.id(), "request headers timeout before any byte of a request: closing");
                    return Ok(ControlFlow::Break(HeadStop::Closed(
                        Http1Close::RequestHeadersTimeout,
                    )));
                }
                return Ok(ControlFlow::Break(HeadStop::Reject(
                    RequestRejection::RequestHeadersTimeout,
                )));
            }
            Some(TimeoutReason::KeepAlive) => {
                events::connection_keep_alive(self.handle.id());
                return Ok(ControlFlow::Break(HeadStop::Closed(
                    Http1Close::KeepAliveTimeout,
                )));
            }
            Some(_) => return Ok(ControlFlow::Break(HeadStop::Closed(Http1Close::Done))),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Read and discard what the app left of the request body, within the
    /// drain timeout: the connection stays open (`Continue`) or closes.
    pub(super) async fn drain_body(&mut self) -> Result<ControlFlow<Http1Close>, Http1Error> {
        // The limit the app left in force (it may have changed it without reading).
        let limit = self.shared.limits.current().max_request_body_size;
        let too_large = {
            let mut c = self.shared.lock();
            c.body.state.refresh_unread_limit(limit);
            c.body.state.declared_over_limit()
        };
        if too_large {
            return Ok(ControlFlow::Break(Http1Close::UnreadBodyTooLarge));
        }
        self.handle.rates().end_read();
        self.shared.lock().body.state.end_rate(self.handle.rates());
        self.flush().await?;
        self.arm(
            TimeoutReason::RequestBodyDrain,
            self.config.request_body_drain_timeout,
        );
        let shared = &self.shared;
        let drained = poll_fn(|cx| loop {
            if let Poll::Ready(Signal::Aborted | Signal::TimedOut(_)) =
                shared.handle.poll_signal(cx)
            {
                return Poll::Ready(false);
            }
            let mut c = shared.lock();
            match std::task::ready!(c.poll_body_frame(cx, &shared.handle, None)) {
                None => return Poll::Ready(true),
                Some(Ok(_)) => continue,
                Some(Err(_)) => return Poll::Ready(false),
            }
        })
        .await;
        self.handle.timeout().cancel();
        if !drained {
            events::request_body_drain_timed_out(self.handle.id());
            return Ok(ControlFlow::Break(Http1Close::Done));
        }
        Ok(ControlFlow::Continue(()))
    }
}
