//! Kestrel's log events as `tracing` events: target = Kestrel's category,
//! fields `event_id`/`event_name`, and spans a subscriber can correlate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2wire;

use std::sync::{Arc, Mutex};

use support::{raw, start, status_of};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Debug, Default, Clone)]
struct Seen {
    target: String,
    level: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Collect(Vec<(String, String)>);

impl Visit for Collect {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        ));
    }
}

#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Seen>>>,
    spans: Arc<Mutex<Vec<Seen>>>,
    /// Fields recorded on spans after they were created.
    records: Arc<Mutex<Vec<Seen>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut c = Collect(Vec::new());
        event.record(&mut c);
        self.events.lock().unwrap().push(Seen {
            target: event.metadata().target().to_string(),
            level: event.metadata().level().to_string(),
            fields: c.0,
        });
    }

    fn on_record(&self, _id: &Id, values: &tracing::span::Record<'_>, _ctx: Context<'_, S>) {
        let mut c = Collect(Vec::new());
        values.record(&mut c);
        self.records.lock().unwrap().push(Seen {
            target: String::new(),
            level: String::new(),
            fields: c.0,
        });
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut c = Collect(Vec::new());
        attrs.record(&mut c);
        self.spans.lock().unwrap().push(Seen {
            target: attrs.metadata().target().to_string(),
            level: attrs.metadata().level().to_string(),
            fields: c.0,
        });
    }
}

#[tokio::test]
async fn bad_request_event_carries_kestrels_id_and_reason() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = start(|_| {}, support::hello).await;
    let long = "a".repeat(9000);
    let reply = raw(
        support::addr(&server),
        format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&reply), 414);
    let ok = raw(
        support::addr(&server),
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), 200);
    server.stop().await;

    let events = recorder.events.lock().unwrap().clone();
    let bad = events
        .iter()
        .find(|e| e.target == "kestrel::bad_requests" && e.field("event_id") == Some("17"))
        .unwrap_or_else(|| panic!("no bad-request event in {events:#?}"));
    assert_eq!(bad.level, "DEBUG");
    assert_eq!(bad.field("event_name"), Some("ConnectionBadRequest"));
    assert_eq!(bad.field("reason"), Some("RequestLineTooLong"));
    assert_eq!(bad.field("status"), Some("414"));
    let starts = events
        .iter()
        .filter(|e| {
            e.target == "kestrel::connections" && e.field("event_name") == Some("ConnectionStart")
        })
        .count();
    assert!(starts >= 2, "connection start events: {events:#?}");
    assert!(events
        .iter()
        .any(|e| e.field("event_name") == Some("ConnectionStop")));

    let spans = recorder.spans.lock().unwrap().clone();
    let request = spans
        .iter()
        .find(|s| s.field("path") == Some("/hello"))
        .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
    assert_eq!(request.field("method"), Some("GET"));
    assert_eq!(request.field("protocol"), Some("HTTP/1.1"));
    assert!(request.field("connection_id").is_some());
}

#[tokio::test]
async fn http2_minimum_data_rate_event_names_the_stream() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let rate = kestrel::MinDataRate::new(1000.0, std::time::Duration::from_millis(1500)).unwrap();
    let server = start(
        |o| o.limits.min_response_data_rate = Some(rate),
        support::hello,
    )
    .await;
    // A client with a zero stream window that never sends WINDOW_UPDATE.
    let tcp = tokio::net::TcpStream::connect(support::addr(&server))
        .await
        .unwrap();
    let mut w = h2wire::Wire::over(tcp);
    let mut hello = h2wire::PREFACE.to_vec();
    hello.extend(h2wire::settings(&[(0x4, 0)]));
    hello.extend(h2wire::get_headers(1, "/", true));
    w.send(&hello).await;
    let goaway = w
        .until(|f| f.kind == h2wire::GOAWAY)
        .await
        .expect("a GOAWAY");
    assert_eq!(goaway.goaway().1, h2wire::INTERNAL_ERROR);
    server.stop().await;

    let events = recorder.events.lock().unwrap().clone();
    let slow = events
        .iter()
        .find(|e| e.target == "kestrel::bad_requests" && e.field("event_id") == Some("28"))
        .unwrap_or_else(|| panic!("no event 28 in {events:#?}"));
    assert_eq!(slow.level, "DEBUG");
    assert_eq!(
        slow.field("event_name"),
        Some("ResponseMinimumDataRateNotSatisfied")
    );
    assert_eq!(slow.field("stream_id"), Some("1"));
}

#[tokio::test]
async fn connection_logging_logs_reads_and_writes_at_trace() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut options = kestrel::KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.use_middleware(kestrel::connection_logging::ConnectionLogging::new());
    });
    let server = kestrel::KestrelServer::new(options)
        .start(support::hello)
        .await
        .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let reply = raw(support::addr(&server), request).await;
    assert_eq!(status_of(&reply), 200);
    server.stop().await;

    let events = recorder.events.lock().unwrap().clone();
    let logged: Vec<&Seen> = events
        .iter()
        .filter(|e| e.target == "kestrel::connection_logging")
        .collect();
    assert!(logged.iter().all(|e| e.level == "TRACE"), "{logged:#?}");
    let read = logged
        .iter()
        .find(|e| e.field("bytes") == Some(&request.len().to_string()))
        .unwrap_or_else(|| panic!("no read of the request logged: {logged:#?}"));
    assert!(
        read.field("message")
            .is_some_and(|m| m.starts_with("ReadAsync[") && m.contains("GET /")),
        "{read:?}"
    );
    let wrote = logged
        .iter()
        .find(|e| {
            e.field("message")
                .is_some_and(|m| m.starts_with("WriteAsync["))
        })
        .unwrap_or_else(|| panic!("no write logged: {logged:#?}"));
    assert_eq!(
        wrote.field("bytes"),
        Some(reply.len().to_string().as_str()),
        "{wrote:?}"
    );
}

#[tokio::test]
async fn the_connection_span_and_events_name_the_client_behind_a_proxy_header() {
    use kestrel::proxy_protocol::{ListenOptionsProxyProtocolExt, ProxyProtocolOptions};
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = start(
        |o| {
            o.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |l| {
                l.use_proxy_protocol(ProxyProtocolOptions::new());
            });
        },
        support::hello,
    )
    .await;
    let a = support::addr(&server);
    let ok = raw(
        a,
        b"PROXY TCP4 203.0.113.7 192.0.2.10 40000 443\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), 200);
    assert_eq!(raw(a, b"GET / HTTP/1.1\r\n\r\n").await, "");
    server.stop().await;

    let records = recorder.records.lock().unwrap().clone();
    assert!(
        records
            .iter()
            .any(|r| r.field("client") == Some("203.0.113.7:40000")),
        "the connection span records the client: {records:#?}"
    );
    let events = recorder.events.lock().unwrap().clone();
    let accepted = events
        .iter()
        .find(|e| e.field("event_name") == Some("ProxyProtocolAccepted"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(accepted.level, "DEBUG");
    assert_eq!(accepted.field("client"), Some("203.0.113.7:40000"));
    assert!(accepted.field("proxy").unwrap().starts_with("127.0.0.1:"));
    let rejected = events
        .iter()
        .find(|e| e.field("event_name") == Some("ProxyProtocolRejected"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(rejected.target, "kestrel::connections");
    assert_eq!(rejected.level, "DEBUG");
    assert!(
        rejected
            .field("error")
            .unwrap()
            .contains("does not start with a PROXY protocol header"),
        "{rejected:?}"
    );
}
