//! Binding TCP listeners: ports, socket options, dual-mode, busy ports.

use std::net::{Ipv4Addr, SocketAddr};

use kestrel_transport::tcp::{bind_tcp, configure_accepted, TcpListener, TcpOptions};
use kestrel_transport::{Address, Listener, ListenerExt, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn loopback0() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Echo one message through an accepted connection and check the addresses.
async fn round_trip(listener: &mut impl Listener, connect_to: SocketAddr) {
    let mut client = TcpStream::connect(connect_to).await.expect("connect");
    let mut conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Tcp);
    let client_local = client.local_addr().expect("client local addr");
    let remote = conn.remote_addr.ip().expect("remote is an IP address");
    assert_eq!(remote.port(), client_local.port());
    let local = conn.local_addr.ip().expect("local is an IP address");
    assert_eq!(local.port(), connect_to.port());

    client.write_all(b"hello").await.expect("client write");
    let mut buf = [0u8; 5];
    conn.io.read_exact(&mut buf).await.expect("server read");
    assert_eq!(&buf, b"hello");
    conn.io.write_all(b"world").await.expect("server write");
    client.read_exact(&mut buf).await.expect("client read");
    assert_eq!(&buf, b"world");
}

#[test]
fn default_options_match_kestrel() {
    let o = TcpOptions::default();
    assert!(o.no_delay);
    assert_eq!(o.backlog, 512);
    assert!(o.reuse_address);
    assert!(!o.reuse_port);
    assert_eq!(o.only_v6, None);
    let custom = TcpOptions {
        backlog: 8,
        ..TcpOptions::default()
    };
    assert_eq!(custom.backlog, 8);
    assert!(custom.no_delay);
}

#[tokio::test]
async fn port_zero_reports_the_real_port() {
    let mut listener = bind_tcp(loopback0(), &TcpOptions::default()).expect("bind");
    let addr = listener.local_socket_addr();
    assert_ne!(addr.port(), 0, "port 0 must be replaced by the real port");
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(listener.local_addr(), &Address::Ip(addr));
    assert_eq!(
        listener.get_ref().local_addr().expect("tokio local addr"),
        addr
    );
    round_trip(&mut listener, addr).await;
}

#[tokio::test]
async fn several_connections_are_accepted_in_turn() {
    let mut listener = bind_tcp(loopback0(), &TcpOptions::default()).expect("bind");
    let addr = listener.local_socket_addr();
    for _ in 0..3 {
        round_trip(&mut listener, addr).await;
    }
}

#[tokio::test]
async fn configure_accepted_sets_tcp_nodelay() {
    let std_listener = std::net::TcpListener::bind(loopback0()).expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    let raw = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");

    let _c1 = TcpStream::connect(addr).await.expect("connect");
    let (s1, _) = raw.accept().await.expect("accept");
    assert!(!s1.nodelay().expect("nodelay"), "OS default is Nagle on");
    configure_accepted(&s1, &TcpOptions::default()).expect("configure");
    assert!(
        s1.nodelay().expect("nodelay"),
        "no_delay: true sets TCP_NODELAY"
    );

    let _c2 = TcpStream::connect(addr).await.expect("connect");
    let (s2, _) = raw.accept().await.expect("accept");
    let off = TcpOptions {
        no_delay: false,
        ..TcpOptions::default()
    };
    configure_accepted(&s2, &off).expect("configure");
    assert!(
        !s2.nodelay().expect("nodelay"),
        "no_delay: false leaves it off"
    );
}

#[tokio::test]
async fn listener_keeps_its_options() {
    let opts = TcpOptions {
        no_delay: false,
        ..TcpOptions::default()
    };
    let listener = bind_tcp(loopback0(), &opts).expect("bind");
    assert_eq!(listener.options(), &opts);
}

#[tokio::test]
async fn binding_a_busy_port_fails_with_addr_in_use() {
    let first = bind_tcp(loopback0(), &TcpOptions::default()).expect("bind");
    let addr = first.local_socket_addr();
    // SO_REUSEADDR (on by default) must not let a second listener in.
    let err = bind_tcp(addr, &TcpOptions::default()).expect_err("second bind must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(first);
    // Once the first listener is gone the port can be bound again right away.
    let again = bind_tcp(addr, &TcpOptions::default()).expect("rebind after drop");
    assert_eq!(again.local_socket_addr(), addr);
}

#[cfg(unix)]
#[tokio::test]
async fn reuse_port_lets_two_listeners_share_a_port() {
    let opts = TcpOptions {
        reuse_port: true,
        ..TcpOptions::default()
    };
    let first = bind_tcp(loopback0(), &opts).expect("bind");
    let addr = first.local_socket_addr();
    let second = bind_tcp(addr, &opts).expect("SO_REUSEPORT allows a second bind");
    assert_eq!(second.local_socket_addr(), addr);
}

#[tokio::test]
async fn from_std_wraps_an_existing_listener() {
    let std_listener = std::net::TcpListener::bind(loopback0()).expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    let mut listener = TcpListener::from_std(std_listener, &TcpOptions::default()).expect("wrap");
    assert_eq!(listener.local_addr(), &Address::Ip(addr));
    round_trip(&mut listener, addr).await;
}

fn ipv6_available() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "!!! SKIPPING IPv6 test: cannot bind [::1]:0 ({e}) — no IPv6 on this machine"
            );
            false
        }
    }
}

#[tokio::test]
async fn unspecified_ipv6_is_dual_mode() {
    if !ipv6_available() {
        return;
    }
    let mut listener =
        bind_tcp("[::]:0".parse().expect("addr"), &TcpOptions::default()).expect("bind [::]:0");
    let port = listener.local_socket_addr().port();
    assert!(listener.local_socket_addr().is_ipv6());

    // An IPv4 client reaches the IPv6 listener.
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let client = TcpStream::connect(v4)
        .await
        .expect("IPv4 client connects to [::]");
    let conn = listener.accept().await.expect("accept");
    let remote = conn.remote_addr.ip().expect("ip");
    let remote_v4 = match remote {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().expect("IPv4-mapped address"),
    };
    assert_eq!(remote_v4, Ipv4Addr::LOCALHOST);
    assert_eq!(remote.port(), client.local_addr().expect("addr").port());

    // And IPv6 clients still work.
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    round_trip(&mut listener, v6).await;
}

#[tokio::test]
async fn only_v6_true_refuses_ipv4_clients() {
    if !ipv6_available() {
        return;
    }
    let opts = TcpOptions {
        only_v6: Some(true),
        ..TcpOptions::default()
    };
    let listener = bind_tcp("[::]:0".parse().expect("addr"), &opts).expect("bind");
    let port = listener.local_socket_addr().port();
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let err = TcpStream::connect(v4)
        .await
        .expect_err("IPv6-only listener must not take IPv4");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}
