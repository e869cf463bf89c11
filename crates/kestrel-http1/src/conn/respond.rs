//! Responding: framing the application's response (or the server's own
//! answer) into the write buffer and writing it out.

use super::*;

impl Driver {
    /// Encode a response head with the framing headers `plan` decided.
    pub(super) fn encode_head(&mut self, status: StatusCode, headers: &HeaderMap, plan: &Plan) {
        let date = self.date.get(self.clock.date());
        let head = ResponseHead {
            status,
            headers,
            date: plan.add_date.then_some(date.as_bytes()),
            server: plan.add_server.then_some(&b"Kestrel"[..]),
            content_length: plan.content_length,
            chunked: plan.chunked_header,
            connection: plan.connection,
        };
        encode_response_head(&head, &mut self.wb.buf);
    }

    /// Answer with an empty body; returns whether the connection stays open.
    pub(super) fn write_simple(
        &mut self,
        status: StatusCode,
        facts: &RequestFacts,
        allow: Option<&'static str>,
    ) -> bool {
        let keep_alive = facts.keep_alive;
        let connection = if !keep_alive {
            Some(ConnectionHeader::Close)
        } else if facts.version == Version::HTTP_10 {
            Some(ConnectionHeader::KeepAlive)
        } else {
            None
        };
        let mut headers = HeaderMap::new();
        if let Some(allow) = allow {
            headers.insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        // The server's own answer: `Content-Length: 0`, except to HEAD.
        let plan = Plan {
            framing: Framing::NoBody,
            keep_alive,
            content_length: (!facts.is_head).then_some(0),
            chunked_header: false,
            connection,
            add_date: true,
            add_server: facts.add_server_header,
        };
        self.encode_head(status, &headers, &plan);
        keep_alive
    }

    /// Answer a rejected request with its status; the connection then closes.
    pub(super) fn write_rejection(&mut self, r: RequestRejection) {
        events::connection_bad_request(self.handle.id(), None, r.name(), r.status().as_u16(), &r);
        self.wb.begin_response();
        let facts = RequestFacts {
            is_head: false,
            version: Version::HTTP_11,
            keep_alive: false,
            add_server_header: self.config.add_server_header,
        };
        self.write_simple(r.status(), &facts, r.allow());
        self.linger = true;
    }

    /// Plan the response's framing and encode its head. Kept out of the
    /// `async fn` so that the response's parts and headers are not held in
    /// the connection future's state while the body is written.
    pub(super) fn start_response<B>(
        &mut self,
        resp: Response<B>,
        facts: &RequestFacts,
    ) -> ControlFlow<bool, (Plan, B)>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let (parts, body) = resp.into_parts();
        let http::response::Parts {
            status,
            mut headers,
            ..
        } = parts;
        self.wb.begin_response();
        self.handle
            .rates()
            .set_write_rate(self.shared.limits.current().min_response_data_rate);
        kestrel_core::framing::add_alt_svc(&mut headers, self.info.as_ref());
        let plan = match plan(facts, status, &mut headers, &body.size_hint()) {
            Ok(p) => p,
            Err(e) => {
                self.log_app_error(&e.into());
                return ControlFlow::Break(self.write_simple(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    facts,
                    None,
                ));
            }
        };
        self.encode_head(status, &headers, &plan);
        if plan.framing == Framing::NoBody {
            return ControlFlow::Break(plan.keep_alive);
        }
        ControlFlow::Continue((plan, body))
    }

    /// Frame and write the app's response: the connection then stays open
    /// (`Continue`) or closes.
    pub(super) async fn write_response<B>(
        &mut self,
        resp: Response<B>,
        facts: &RequestFacts,
    ) -> Result<ControlFlow<Http1Close>, Http1Error>
    where
        B: Body<Data = Bytes, Error: Into<BoxError>>,
    {
        let (plan, body) = match self.start_response(resp, facts) {
            ControlFlow::Continue(started) => started,
            // Answered already (no body, or refused): whether to keep alive.
            ControlFlow::Break(keep_alive) => return Ok(next_after(keep_alive)),
        };
        let mut next = next_after(plan.keep_alive);
        let limit = self
            .config
            .max_response_buffer_size
            .unwrap_or(UNLIMITED_RESPONSE_BUFFER);
        let mut body = pin!(body);
        let mut written: u64 = 0;
        let mut trailers: Option<Box<HeaderMap>> = None;
        loop {
            let shared = &self.shared;
            let wb = &mut self.wb;
            let (abort, read_ahead) = (&self.abort, self.config.read_ahead);
            // A body that has all its declared bytes is complete for the
            // client, even if the app has not ended it yet.
            let all_sent = matches!(plan.framing, Framing::Length(n) if written >= n);
            let polled = poll_fn(|cx| {
                match kestrel_core::app::poll_body(body.as_mut(), cx) {
                    Poll::Ready(None) => Poll::Ready(Ok(None)),
                    Poll::Ready(Some(Ok(f))) => Poll::Ready(Ok(Some(f))),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Err(Some(e))),
                    Poll::Pending => {
                        if let Poll::Ready(Signal::Aborted | Signal::TimedOut(_)) =
                            shared.handle.poll_signal(cx)
                        {
                            return Poll::Ready(Err(None));
                        }
                        // The body is not ready: let the client see what we have.
                        if !wb.buf.is_empty() {
                            match shared.lock().poll_write_buf(cx, wb, &mut Bytes::new()) {
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(Some(e.into()))),
                                Poll::Ready(Ok(())) | Poll::Pending => {}
                            }
                        }
                        // A body fed from elsewhere (events, a long poll)
                        // learns of the client leaving from RequestAborted.
                        if !all_sent
                            && !abort.is_aborted()
                            && shared.lock().poll_client_gone(cx, read_ahead)
                        {
                            fire_abort(abort, &shared.handle, "the client closed the connection");
                        }
                        Poll::Pending
                    }
                }
            })
            .await;
            // Only the data travels past this point (frames and trailers
            // are large; trailers are rare and boxed).
            let mut data = match polled {
                Ok(Some(frame)) => match frame.into_data() {
                    Ok(d) => d,
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(Box::new(t));
                        }
                        continue;
                    }
                },
                Ok(None) => break,
                Err(None) => return Err(Http1Error::Aborted),
                Err(Some(e)) => {
                    return self
                        .fail_response(e, facts)
                        .map_err(Http1Error::ResponseAborted)
                }
            };
            match plan.framing {
                Framing::Length(n) => {
                    let remaining = n - written;
                    let overflow = data.len() as u64 > remaining;
                    if overflow {
                        tracing::error!(target: "kestrel", connection_id = %self.handle.id(), content_length = n, "response body is longer than its Content-Length; closing the connection");
                        data.truncate(remaining as usize);
                        next = ControlFlow::Break(Http1Close::ResponseContentLengthMismatch);
                    }
                    written += data.len() as u64;
                    self.push_data(data, limit).await?;
                    if overflow {
                        break;
                    }
                }
                Framing::Chunked => {
                    if !data.is_empty() {
                        encode_chunk_header(data.len(), &mut self.wb.buf);
                        self.push_data(data, limit).await?;
                        self.wb.buf.extend_from_slice(CHUNK_SUFFIX);
                    }
                }
                Framing::CloseDelimited => {
                    written += data.len() as u64;
                    self.push_data(data, limit).await?;
                }
                Framing::NoBody | Framing::Stream => {}
            }
        }
        match plan.framing {
            Framing::Length(n) if written < n => {
                let e: BoxError =
                    format!("response body ended after {written} of its {n} Content-Length bytes")
                        .into();
                return self
                    .fail_response(e, facts)
                    .map_err(|_| Http1Error::ResponseTooShort {
                        content_length: n,
                        written,
                    });
            }
            Framing::Chunked => encode_last_chunk(trailers.as_deref(), &mut self.wb.buf),
            _ => {}
        }
        Ok(next)
    }

    /// The response failed: replace it by a 500 if none of it was sent (the
    /// connection then goes on as the request allows), else abort with `e`.
    pub(super) fn fail_response(
        &mut self,
        e: BoxError,
        facts: &RequestFacts,
    ) -> Result<ControlFlow<Http1Close>, BoxError> {
        self.log_app_error(&e);
        if self.wb.rollback() {
            let keep_alive = self.write_simple(StatusCode::INTERNAL_SERVER_ERROR, facts, None);
            Ok(next_after(keep_alive))
        } else {
            Err(e)
        }
    }

    /// Queue `data`; write when the buffer is over `limit` or the data is large.
    pub(super) async fn push_data(&mut self, data: Bytes, limit: usize) -> Result<(), Http1Error> {
        if data.len() < COPY_THRESHOLD
            && self.wb.buf.len() + data.len() <= limit.max(COPY_THRESHOLD)
        {
            self.wb.buf.extend_from_slice(&data);
            if self.wb.buf.len() < limit {
                return Ok(());
            }
            return self.write_out(Bytes::new()).await;
        }
        self.write_out(data).await
    }

    pub(super) async fn flush(&mut self) -> Result<(), Http1Error> {
        if self.wb.buf.is_empty() {
            return Ok(());
        }
        self.write_out(Bytes::new()).await
    }

    /// Write the buffer and then `tail`, flushing; a server abort or an
    /// expired deadline interrupts it.
    pub(super) async fn write_out(&mut self, mut tail: Bytes) -> Result<(), Http1Error> {
        let shared = &self.shared;
        let wb = &mut self.wb;
        let rates = shared.handle.rates();
        rates.start_write(wb.buf.len() + tail.len(), self.clock.ticks());
        let result = poll_fn(|cx| {
            match shared.handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(Http1Error::Aborted)),
                Poll::Ready(Signal::TimedOut(TimeoutReason::WriteDataRate)) => {
                    events::response_minimum_data_rate_not_satisfied(shared.handle.id(), None);
                    return Poll::Ready(Err(Http1Error::Deadline(TimeoutReason::WriteDataRate)));
                }
                Poll::Ready(Signal::TimedOut(_)) => return Poll::Ready(Err(Http1Error::Aborted)),
                _ => {}
            }
            let mut c = shared.lock();
            std::task::ready!(c.poll_write_buf(cx, wb, &mut tail))?;
            c.poll_flush(cx).map_err(Http1Error::Io)
        })
        .await;
        rates.stop_write();
        result
    }
}

/// What follows a response: the next request (keep-alive), or the close.
fn next_after(keep_alive: bool) -> ControlFlow<Http1Close> {
    if keep_alive {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(Http1Close::Done)
    }
}
