//! The in-memory multiplexed transport: streams carry bytes both ways with
//! QUIC's ids, FIN, reset and stop codes, flow control, and a connection
//! close whose code and reason the peer sees.

use std::time::Duration;

use bytes::Bytes;
use kestrel_transport::multiplexed::memory::{
    connection_pair, connection_pair_with_capacity, memory_multiplexed_listener,
};
use kestrel_transport::multiplexed::{
    ConnectionError, Direction, HandshakeInfo, MultiplexedListener, MultiplexedListenerExt,
    MultiplexedStreams, MultiplexedStreamsExt, RecvStreamExt, SendStreamExt, Side, StreamError,
    StreamOpenerExt,
};
use kestrel_transport::{Address, TransportKind};

/// Anything that must not take long here.
async fn soon<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("did not complete in 5 s")
}

#[tokio::test]
async fn a_bidirectional_stream_carries_bytes_both_ways_then_fin() {
    let (client, mut server) = connection_pair();
    let mut opener = client.opener();
    let mut c = soon(opener.open_bidi()).await.expect("open");
    assert_eq!(c.id().as_u64(), 0);
    c.send.write_all(b"request").await.expect("write");
    c.send.finish().await.expect("finish");

    let mut s = soon(server.accept_bidi()).await.expect("accept");
    assert_eq!(s.id(), c.id());
    assert_eq!(s.send.id(), c.id());
    let body = soon(s.recv.read_to_end(1024)).await.expect("read");
    assert_eq!(&body[..], b"request");
    // After the FIN: the end, again and again.
    assert_eq!(soon(s.recv.data()).await, Ok(None));

    s.send.write_all(b"response").await.expect("write");
    s.send.finish().await.expect("finish");
    assert_eq!(
        &soon(c.recv.read_to_end(1024)).await.expect("read")[..],
        b"response"
    );
    // Writing after the FIN is refused.
    assert_eq!(
        c.send.write_all(b"more").await,
        Err(StreamError::ClosedStream)
    );
}

#[tokio::test]
async fn stream_ids_follow_quic_for_each_initiator_and_direction() {
    let (mut client, mut server) = connection_pair();
    assert_eq!((client.side(), server.side()), (Side::Client, Side::Server));
    let mut co = client.opener();
    let mut so = server.opener();
    let b0 = co.open_bidi().await.expect("open");
    let b1 = co.open_bidi().await.expect("open");
    let u0 = co.open_uni().await.expect("open");
    let su0 = so.open_uni().await.expect("open");
    let su1 = so.open_uni().await.expect("open");
    let sb0 = so.open_bidi().await.expect("open");
    let ids: Vec<u64> = [b0.id(), b1.id(), u0.id(), su0.id(), su1.id(), sb0.id()]
        .iter()
        .map(|id| id.as_u64())
        .collect();
    assert_eq!(ids, [0, 4, 2, 3, 7, 1]);
    assert_eq!(u0.id().direction(), Direction::Unidirectional);
    assert_eq!(su1.id().initiator(), Side::Server);

    // Each end accepts the peer's streams in order, with the same ids.
    let a = soon(server.accept_bidi()).await.expect("accept");
    let b = soon(server.accept_bidi()).await.expect("accept");
    let u = soon(server.accept_uni()).await.expect("accept");
    assert_eq!((a.id(), b.id(), u.id()), (b0.id(), b1.id(), u0.id()));
    let cu0 = soon(client.accept_uni()).await.expect("accept");
    let cu1 = soon(client.accept_uni()).await.expect("accept");
    let cb = soon(client.accept_bidi()).await.expect("accept");
    assert_eq!(
        (cu0.id(), cu1.id(), cb.id()),
        (su0.id(), su1.id(), sb0.id())
    );
}

#[tokio::test]
async fn unidirectional_streams_carry_bytes_from_the_opener() {
    let (client, server) = connection_pair();
    // The server opens its control stream, as HTTP/3 does.
    let mut control = server.opener().open_uni().await.expect("open");
    control.write_all(&[0x00, 0x04, 0x00]).await.expect("write");
    let mut client = client;
    let mut seen = soon(client.accept_uni()).await.expect("accept");
    assert_eq!(seen.id().as_u64(), 3);
    let first = soon(seen.data()).await.expect("read").expect("a chunk");
    assert_eq!(&first[..], &[0x00, 0x04, 0x00]);
    // The control stream stays open: no end yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), seen.data())
            .await
            .is_err(),
        "an open unidirectional stream has no end"
    );
    drop(control); // dropping finishes it
    assert_eq!(soon(seen.data()).await, Ok(None));
}

#[tokio::test]
async fn a_reset_fails_the_reader_with_the_code_and_drops_unread_bytes() {
    let (client, mut server) = connection_pair();
    let mut c = client.opener().open_bidi().await.expect("open");
    c.send.write_all(b"partial").await.expect("write");
    // H3_REQUEST_CANCELLED
    c.send.reset(0x10c);
    let mut s = soon(server.accept_bidi()).await.expect("accept");
    assert_eq!(
        soon(s.recv.data()).await,
        Err(StreamError::Reset { code: 0x10c })
    );
    assert_eq!(c.send.finish().await, Err(StreamError::ClosedStream));
    // The other direction is untouched.
    s.send.write_all(b"still here").await.expect("write");
    s.send.finish().await.expect("finish");
    assert_eq!(
        &soon(c.recv.read_to_end(64)).await.expect("read")[..],
        b"still here"
    );
}

#[tokio::test]
async fn stop_sending_fails_the_writer_with_the_code() {
    let (client, mut server) = connection_pair();
    let mut c = client.opener().open_bidi().await.expect("open");
    let mut s = soon(server.accept_bidi()).await.expect("accept");
    // H3_NO_ERROR: the server needs no more of the request body.
    s.recv.stop_sending(0x100);
    assert_eq!(
        c.send.write_all(b"body").await,
        Err(StreamError::Stopped { code: 0x100 })
    );
    assert_eq!(
        c.send.finish().await,
        Err(StreamError::Stopped { code: 0x100 })
    );
    assert_eq!(soon(s.recv.data()).await, Err(StreamError::ClosedStream));
}

#[tokio::test]
async fn dropping_a_receiver_before_the_end_stops_the_sender_with_code_0() {
    let (client, mut server) = connection_pair();
    let mut c = client.opener().open_uni().await.expect("open");
    let s = soon(server.accept_uni()).await.expect("accept");
    drop(s);
    assert_eq!(
        c.write_all(b"x").await,
        Err(StreamError::Stopped { code: 0 })
    );
}

#[tokio::test]
async fn a_writer_waits_for_the_reader_beyond_the_stream_capacity() {
    let (client, mut server) = connection_pair_with_capacity(8);
    let mut c = client.opener().open_bidi().await.expect("open");
    let mut s = soon(server.accept_bidi()).await.expect("accept");
    let writer = tokio::spawn(async move {
        c.send.write_all(&[7u8; 20]).await.expect("write");
        c.send.finish().await.expect("finish");
        c
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!writer.is_finished(), "20 bytes do not fit in 8");
    let first = soon(s.recv.data()).await.expect("read").expect("chunk");
    assert_eq!(first.len(), 8, "the window was full");
    let rest = soon(s.recv.read_to_end(64)).await.expect("read");
    assert_eq!(first.len() + rest.len(), 20);
    soon(writer).await.expect("writer task");
}

#[tokio::test]
async fn closing_the_connection_gives_the_peer_the_code_and_reason() {
    let (mut client, mut server) = connection_pair();
    let mut c = client.opener().open_bidi().await.expect("open");
    let mut s = soon(server.accept_bidi()).await.expect("accept");
    let mut pending_read = tokio::spawn(async move { s.recv.data().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!pending_read.is_finished());

    // H3_NO_ERROR with a reason, from the server's opener (as h3 closes).
    server.opener().close(0x100, b"bye");
    let seen = ConnectionError::ApplicationClosed {
        code: 0x100,
        reason: Bytes::from_static(b"bye"),
    };
    assert_eq!(soon(client.closed()).await, seen);
    assert_eq!(
        soon(client.accept_bidi()).await.map(|_| ()),
        Err(seen.clone())
    );
    assert_eq!(
        c.send.write_all(b"x").await,
        Err(StreamError::Connection(seen.clone()))
    );
    assert_eq!(
        c.recv.data().await,
        Err(StreamError::Connection(seen.clone()))
    );
    assert_eq!(
        client.opener().open_uni().await.map(|_| ()),
        Err(seen.clone())
    );

    // The closing end sees its own close, and a pending read wakes with it.
    let local = ConnectionError::LocallyClosed { code: 0x100 };
    assert_eq!(soon(server.closed()).await, local);
    assert_eq!(
        soon(&mut pending_read).await.expect("task"),
        Err(StreamError::Connection(local.clone()))
    );
    assert_eq!(soon(server.accept_uni()).await.map(|_| ()), Err(local));
    assert_eq!(seen.code(), Some(0x100));
}

#[tokio::test]
async fn the_first_close_wins() {
    let (mut client, mut server) = connection_pair();
    client.close(0x101, b"internal");
    server.close(0x100, b"");
    assert_eq!(
        soon(server.closed()).await,
        ConnectionError::ApplicationClosed {
            code: 0x101,
            reason: Bytes::from_static(b"internal"),
        }
    );
    assert_eq!(
        soon(client.closed()).await,
        ConnectionError::LocallyClosed { code: 0x101 }
    );
}

#[tokio::test]
async fn dropping_every_handle_of_an_end_closes_with_code_0() {
    let (client, mut server) = connection_pair();
    let opener = client.opener();
    let mut stream = opener.clone().open_bidi_now();
    drop(client);
    // An opener still holds the client's end open.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), server.closed())
            .await
            .is_err()
    );
    drop(opener);
    assert_eq!(
        soon(server.closed()).await,
        ConnectionError::ApplicationClosed {
            code: 0,
            reason: Bytes::new(),
        }
    );
    // Streams do not keep the connection open.
    assert!(matches!(
        stream.recv.data().await,
        Err(StreamError::Connection(ConnectionError::LocallyClosed {
            code: 0
        }))
    ));
}

/// Open a bidirectional stream on an opener that never waits.
trait OpenNow {
    fn open_bidi_now(self) -> kestrel_transport::multiplexed::BidiStream;
}

impl OpenNow for Box<dyn kestrel_transport::multiplexed::StreamOpener> {
    fn open_bidi_now(mut self) -> kestrel_transport::multiplexed::BidiStream {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match self.poll_open_bidi(&mut cx) {
            std::task::Poll::Ready(r) => r.expect("open"),
            std::task::Poll::Pending => panic!("the in-memory opener never waits"),
        }
    }
}

#[tokio::test]
async fn the_listener_hands_out_connections_with_addresses_and_handshake() {
    let (mut listener, connector) = memory_multiplexed_listener("h3");
    assert_eq!(listener.local_addr(), &Address::Memory("h3".into()));
    let client = connector
        .connect_with(HandshakeInfo::with_alpn(&b"h3"[..]).server_name("localhost"))
        .expect("connect");
    let mut server = soon(listener.accept()).await.expect("accept");
    assert_eq!(server.kind, TransportKind::Memory);
    assert_eq!(server.local_addr, Address::Memory("h3".into()));
    assert_eq!(server.remote_addr, Address::Memory("h3#1".into()));
    assert_eq!(client.remote_addr, server.local_addr);
    assert_eq!(server.handshake.alpn_protocol.as_deref(), Some(&b"h3"[..]));
    assert_eq!(server.handshake.server_name.as_deref(), Some("localhost"));

    let mut c = client.streams.opener().open_bidi().await.expect("open");
    c.send.write_all(b"ping").await.expect("write");
    c.send.finish().await.expect("finish");
    let mut s = soon(server.streams.accept_bidi()).await.expect("accept");
    assert_eq!(
        &soon(s.recv.read_to_end(16)).await.expect("read")[..],
        b"ping"
    );

    let second = connector.connect().expect("connect");
    let accepted = soon(listener.accept()).await.expect("accept");
    assert_eq!(accepted.remote_addr, Address::Memory("h3#2".into()));
    assert_eq!(accepted.handshake, HandshakeInfo::default());
    drop(second);

    drop(listener);
    let refused = connector.connect().expect_err("the listener is gone");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn many_streams_run_concurrently_across_tasks() {
    let (client, mut server) = connection_pair_with_capacity(1024);
    let echo = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let mut s = server.accept_bidi().await.expect("accept");
            tasks.push(tokio::spawn(async move {
                let body = s.recv.read_to_end(1 << 20).await.expect("read");
                s.send.write_all(&body).await.expect("write");
                s.send.finish().await.expect("finish");
            }));
        }
        for t in tasks {
            t.await.expect("echo task");
        }
        server
    });
    let mut clients = Vec::new();
    for i in 0..32u8 {
        let mut opener = client.opener();
        clients.push(tokio::spawn(async move {
            let mut c = opener.open_bidi().await.expect("open");
            let body = vec![i; 10_000];
            c.send.write_all(&body).await.expect("write");
            c.send.finish().await.expect("finish");
            let back = c.recv.read_to_end(1 << 20).await.expect("read");
            assert_eq!(&back[..], &body[..], "stream {}", c.id());
        }));
    }
    for c in clients {
        soon(c).await.expect("client task");
    }
    soon(echo).await.expect("echo");
}

#[test]
fn the_public_types_cross_threads() {
    use kestrel_transport::multiplexed::memory::{
        MemoryMultiplexedConnector, MemoryMultiplexedListener, MemoryStreams,
    };
    use kestrel_transport::multiplexed::{
        BidiStream, BoxRecvStream, BoxSendStream, MultiplexedConnection, StreamId, StreamOpener,
    };
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<MultiplexedConnection>();
    send::<BidiStream>();
    send::<BoxSendStream>();
    send::<BoxRecvStream>();
    send::<MemoryStreams>();
    send::<MemoryMultiplexedListener>();
    send_sync::<Box<dyn StreamOpener>>();
    send_sync::<MemoryMultiplexedConnector>();
    send_sync::<ConnectionError>();
    send_sync::<StreamError>();
    send_sync::<HandshakeInfo>();
    send_sync::<StreamId>();
    send_sync::<kestrel_transport::ListenerOnce>();
}
