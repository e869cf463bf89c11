//! Listeners built from inherited file descriptors (`from_owned_fd`).
#![cfg(unix)]

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

use kestrel_transport::tcp::{from_owned_fd, TcpOptions};
use kestrel_transport::{Address, Listener, ListenerExt, TransportKind};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tcp_exchange(listener: &mut Box<dyn Listener>, addr: SocketAddr) {
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Tcp);
    assert_eq!(conn.local_addr, Address::Ip(addr));
    assert_eq!(
        conn.remote_addr,
        Address::Ip(client.local_addr().expect("client addr"))
    );
    client.write_all(b"abc").await.expect("write");
    let mut buf = [0u8; 3];
    conn.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"abc");
}

#[tokio::test]
async fn tcp_listener_from_owned_fd() {
    let std_listener =
        std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    let fd = OwnedFd::from(std_listener);

    let mut listener = from_owned_fd(fd, &TcpOptions::default()).expect("from fd");
    assert_eq!(listener.local_addr(), &Address::Ip(addr), "not re-bound");
    tcp_exchange(&mut listener, addr).await;
    tcp_exchange(&mut listener, addr).await;
}

#[tokio::test]
async fn bound_but_not_listening_tcp_socket_is_put_in_listen_state() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    let addr = socket.local_addr().expect("addr").as_socket().expect("ip");
    // Not listening yet: a connect would be refused.
    assert!(std::net::TcpStream::connect(addr).is_err());

    let mut listener =
        from_owned_fd(OwnedFd::from(socket), &TcpOptions::default()).expect("from fd");
    tcp_exchange(&mut listener, addr).await;
}

#[cfg(feature = "unix")]
#[tokio::test]
async fn unix_listener_from_owned_fd_keeps_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inherited.sock");
    let std_listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");

    let mut listener =
        from_owned_fd(OwnedFd::from(std_listener), &TcpOptions::default()).expect("from fd");
    assert_eq!(listener.local_addr(), &Address::Unix(path.clone()));

    let mut client = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let mut conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Unix);
    assert_eq!(conn.local_addr, Address::Unix(path.clone()));
    client.write_all(b"fd").await.expect("write");
    let mut buf = [0u8; 2];
    conn.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"fd");

    drop(conn);
    drop(listener);
    assert!(
        path.exists(),
        "an inherited socket's file is not ours to remove"
    );
}

#[cfg(feature = "unix")]
#[tokio::test]
async fn bound_but_not_listening_unix_socket_is_put_in_listen_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notyet.sock");
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    socket
        .bind(&socket2::SockAddr::unix(&path).expect("addr"))
        .expect("bind");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());

    let mut listener =
        from_owned_fd(OwnedFd::from(socket), &TcpOptions::default()).expect("from fd");
    let _client = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    let conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Unix);
}

#[tokio::test]
async fn datagram_socket_is_rejected() {
    let udp = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
    let err = from_owned_fd(OwnedFd::from(udp), &TcpOptions::default())
        .err()
        .expect("UDP must be rejected");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
