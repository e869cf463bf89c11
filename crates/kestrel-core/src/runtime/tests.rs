#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::poll_fn;
use std::task::Poll;

use kestrel_transport::{Address, TransportKind};

use super::*;
use crate::connection::{Signal, TimeoutReason};

fn memory_connection() -> (tokio::io::DuplexStream, Connection) {
    let (client, server) = tokio::io::duplex(1024);
    let conn = Connection {
        io: Box::new(server),
        local_addr: Address::Memory("server".into()),
        remote_addr: Address::Memory("client".into()),
        kind: TransportKind::Memory,
    };
    (client, conn)
}

fn limits(max: Option<u64>) -> ServerLimits {
    ServerLimits {
        max_concurrent_connections: max,
        ..ServerLimits::default()
    }
}

/// The next signal, or `None` if none is raised now.
fn signal_now(handle: &ConnectionHandle) -> Option<Signal> {
    handle.check_signal()
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_ticks_until_the_runtime_is_dropped() {
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let clock = runtime.clock().clone();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let ticking = clock.ticks();
    assert!(ticking >= 2_000, "the heartbeat ticked: {ticking} ms");
    drop(runtime);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        clock.ticks(),
        ticking,
        "no tick after the runtime was dropped"
    );
}

#[tokio::test]
async fn admission_holds_a_slot_under_max_concurrent_connections() {
    let runtime = ConnectionRuntime::new(&limits(Some(1)));
    let (_c1, conn1) = memory_connection();
    let first = runtime.admit(conn1).expect("first is admitted");
    assert_eq!(runtime.live_connections(), 1);
    let (mut c2, conn2) = memory_connection();
    let refused = runtime.admit(conn2).expect_err("over the limit");
    assert_eq!(
        refused.error,
        ConnectionLimitError::MaxConcurrentConnections(1)
    );
    // The refused connection is closed: its peer reads the end of the stream.
    let mut byte = [0u8; 1];
    assert_eq!(
        tokio::io::AsyncReadExt::read(&mut c2, &mut byte)
            .await
            .unwrap(),
        0
    );
    assert_eq!(runtime.manager().rejected_connections(), 1);
    drop(first);
    assert_eq!(runtime.live_connections(), 0);
    let (_c3, conn3) = memory_connection();
    runtime.admit(conn3).expect("the slot was released");
}

#[tokio::test(start_paused = true)]
async fn an_admitted_connection_s_deadlines_fire_on_the_runtime_s_heartbeat() {
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_client, conn) = memory_connection();
    let admitted = runtime.admit(conn).unwrap();
    let handle = admitted.handle().clone();
    let clock = admitted.clock().clone();
    handle.timeout().set(
        TimeoutReason::RequestHeaders,
        Duration::from_secs(3),
        clock.ticks(),
        clock.interval(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(signal_now(&handle), None, "not yet");
    let signal = tokio::time::timeout(
        Duration::from_secs(10),
        poll_fn(|cx| handle.poll_signal(cx)),
    )
    .await
    .expect("the heartbeat fires the deadline");
    assert_eq!(signal, Signal::TimedOut(TimeoutReason::RequestHeaders));
}

#[tokio::test]
async fn into_parts_gives_the_info_with_the_timeout_feature_and_addresses() {
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_client, conn) = memory_connection();
    let endpoint = BoundAddress::fd(crate::Scheme::Http);
    let admitted = runtime
        .admit(conn)
        .unwrap()
        .with_endpoint(endpoint.clone())
        .with_server_addresses(ServerAddresses::new(vec![endpoint.clone()]));
    let id = admitted.id();
    let parts = admitted.into_parts();
    assert_eq!(parts.info.id(), id);
    assert_eq!(parts.guard.id(), id, "the slot is the connection's own");
    assert_eq!(parts.info.endpoint(), Some(&endpoint));
    assert_eq!(parts.info.server_addresses().len(), 1);
    assert_eq!(parts.info.transport(), TransportKind::Memory);
    assert_eq!(parts.info.remote_addr(), &Address::Memory("client".into()));
    let timeout = parts
        .info
        .timeout()
        .expect("the connection-timeout feature");
    timeout.set_timeout(Duration::from_millis(1)).unwrap();
    assert_eq!(
        parts.guard.handle().timeout().armed(),
        TimeoutReason::TimeoutFeature,
        "the feature arms the connection's own deadline"
    );
}

#[tokio::test]
async fn middleware_runs_over_the_admitted_connection() {
    #[derive(Clone, Debug, PartialEq)]
    struct Seen(Duration);
    struct Record;
    impl ConnectionMiddleware for Record {
        fn call<'a>(
            &'a self,
            mut connection: Connection,
            features: &'a mut http::Extensions,
        ) -> crate::middleware::BoxFuture<'a, io::Result<Connection>> {
            Box::pin(async move {
                let limits = *features.get::<MiddlewareLimits>().expect("limits");
                features.insert(Seen(limits.request_headers_timeout));
                connection.remote_addr = Address::Memory("proxied".into());
                Ok(connection)
            })
        }
    }
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_client, conn) = memory_connection();
    let mw: Vec<Arc<dyn ConnectionMiddleware>> = vec![Arc::new(Record)];
    let mut admitted = runtime.admit(conn).unwrap();
    admitted
        .run_middleware(&mw, MiddlewareLimits::new(Duration::from_secs(7)))
        .await
        .unwrap();
    assert_eq!(
        admitted.features().get::<Seen>(),
        Some(&Seen(Duration::from_secs(7)))
    );
    let info = admitted.into_parts().info;
    assert_eq!(info.remote_addr(), &Address::Memory("proxied".into()));
    assert!(info.features().get::<Seen>().is_some());

    let refuse: Vec<Arc<dyn ConnectionMiddleware>> = vec![Arc::new(|_c: Connection| async {
        Err::<Connection, _>(io::Error::other("refused"))
    })];
    let (_client, conn) = memory_connection();
    let mut admitted = runtime.admit(conn).unwrap();
    let err = admitted
        .run_middleware(&refuse, MiddlewareLimits::new(Duration::from_secs(1)))
        .await
        .expect_err("the middleware refused");
    assert_eq!(err.to_string(), "refused");
    drop(admitted);
    assert_eq!(runtime.live_connections(), 0, "the slot was released");
}

/// A connection task that obeys: it ends on a close request or an abort.
async fn obedient(admitted: AdmittedConnection) {
    let handle = admitted.handle().clone();
    poll_fn(|cx| match handle.poll_signal(cx) {
        Poll::Ready(Signal::CloseRequested | Signal::Aborted) => Poll::Ready(()),
        _ => Poll::Pending,
    })
    .await;
}

/// A connection task that ignores close requests and ends only when aborted.
async fn stubborn(admitted: AdmittedConnection) {
    let handle = admitted.handle().clone();
    poll_fn(|cx| match handle.poll_signal(cx) {
        Poll::Ready(Signal::Aborted) => Poll::Ready(()),
        _ => Poll::Pending,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_waits_then_aborts_then_cancels() {
    // Graceful: the connection ends when asked.
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_c, conn) = memory_connection();
    tokio::spawn(obedient(runtime.admit(conn).unwrap()));
    assert_eq!(
        runtime.shutdown(Duration::from_secs(5)).await,
        ShutdownOutcome::Graceful
    );

    // Aborted: it ignores the close request, so it is aborted at the timeout.
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_c, conn) = memory_connection();
    let admitted = runtime.admit(conn).unwrap();
    let handle = admitted.handle().clone();
    tokio::spawn(stubborn(admitted));
    let started = tokio::time::Instant::now();
    assert_eq!(
        runtime.shutdown(Duration::from_secs(5)).await,
        ShutdownOutcome::Aborted(1)
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        handle.end_reason(),
        Some(crate::connection::ConnectionEndReason::AppShutdownTimeout)
    );

    // Cancelled: it ignores even the abort; its task is ended.
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let (_c, conn) = memory_connection();
    let admitted = runtime.admit(conn).unwrap();
    let handle = admitted.handle().clone();
    let task = tokio::spawn(async move {
        let _held = admitted;
        std::future::pending::<()>().await
    });
    handle.attach_task(task.abort_handle());
    assert_eq!(
        runtime.shutdown(Duration::from_secs(1)).await,
        ShutdownOutcome::Cancelled(1)
    );
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(runtime.live_connections(), 0);
}

#[test]
fn public_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ConnectionRuntime>();
    send_sync::<Rejected>();
    send_sync::<ShutdownOutcome>();
    send::<AdmittedConnection>();
    send::<AdmittedParts>();
}
