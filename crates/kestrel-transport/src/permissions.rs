//! [`SocketGroup`]: the group a Unix socket file is given when it is bound
//! (so that, with a mode such as `0o660`, the members of that group, e.g.
//! nginx's `www-data` workers, may connect).

use std::fmt;
use std::str::FromStr;

/// The group of a Unix socket file: a group name, resolved when the socket
/// is bound, or a numeric group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketGroup {
    /// A group name (`www-data`), looked up in the system's group database
    /// when the socket is bound.
    Name(String),
    /// A numeric group id.
    Id(u32),
}

/// An empty group name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a socket group must be a group name or a numeric group id")]
pub struct SocketGroupError;

impl FromStr for SocketGroup {
    type Err = SocketGroupError;

    /// Digits only → [`SocketGroup::Id`]; any other non-empty text →
    /// [`SocketGroup::Name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SocketGroupError);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(SocketGroup::Id).map_err(|_| SocketGroupError);
        }
        Ok(SocketGroup::Name(s.to_string()))
    }
}

impl From<&str> for SocketGroup {
    /// As [`FromStr`], with an empty text becoming an empty name (which
    /// fails when the socket is bound).
    fn from(s: &str) -> Self {
        s.parse()
            .unwrap_or_else(|_| SocketGroup::Name(String::new()))
    }
}

impl From<u32> for SocketGroup {
    fn from(id: u32) -> Self {
        SocketGroup::Id(id)
    }
}

impl fmt::Display for SocketGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketGroup::Name(n) => f.write_str(n),
            SocketGroup::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Parse a socket file mode written in octal (`0660`, `660`, `0o660`):
/// permission bits only (at most `0o777`).
pub fn parse_socket_mode(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_as_ids_or_names() {
        assert_eq!("33".parse(), Ok(SocketGroup::Id(33)));
        assert_eq!(
            " www-data ".parse(),
            Ok(SocketGroup::Name("www-data".into()))
        );
        assert_eq!("".parse::<SocketGroup>(), Err(SocketGroupError));
        assert_eq!(SocketGroup::from(7).to_string(), "7");
    }

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_socket_mode("0660"), Some(0o660));
        assert_eq!(parse_socket_mode("660"), Some(0o660));
        assert_eq!(parse_socket_mode("0o666"), Some(0o666));
        assert_eq!(parse_socket_mode("0777"), Some(0o777));
        assert_eq!(parse_socket_mode("1777"), None);
        assert_eq!(parse_socket_mode("0680"), None);
        assert_eq!(parse_socket_mode("rw-rw----"), None);
        assert_eq!(parse_socket_mode(""), None);
    }
}
