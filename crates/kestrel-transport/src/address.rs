use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What kind of transport a connection came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// A Unix domain stream socket.
    Unix,
    /// The in-memory transport.
    Memory,
    /// QUIC (a multiplexed transport over UDP).
    Quic,
    /// A transport brought by the user.
    Other,
}

impl TransportKind {
    /// The OpenTelemetry `network.transport` value for this kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Unix => "unix",
            TransportKind::Memory => "memory",
            TransportKind::Quic => "quic",
            TransportKind::Other => "other",
        }
    }
}

/// The address of one end of a connection, or of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IP socket address.
    Ip(SocketAddr),
    /// A Unix domain socket path. Unnamed (client) sockets have an empty path.
    Unix(PathBuf),
    /// A named in-memory endpoint.
    Memory(String),
    /// An address the transport cannot describe (e.g. an unknown inherited socket).
    Unknown,
}

impl Address {
    /// The IP socket address, if this is one.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(a) => Some(*a),
            _ => None,
        }
    }

    /// The transport kind this address belongs to.
    pub fn kind(&self) -> TransportKind {
        match self {
            Address::Ip(_) => TransportKind::Tcp,
            Address::Unix(_) => TransportKind::Unix,
            Address::Memory(_) => TransportKind::Memory,
            Address::Unknown => TransportKind::Other,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Ip(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Memory(n) => write!(f, "memory:{n}"),
            Address::Unknown => f.write_str("<unknown>"),
        }
    }
}
