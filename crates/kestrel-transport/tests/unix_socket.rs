//! Unix domain socket listeners: path rules, stale files, cleanup, mode.
#![cfg(all(unix, feature = "unix"))]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kestrel_transport::unix::{bind_unix, UnixBindError, UnixOptions};
use kestrel_transport::SocketGroup;
use kestrel_transport::{Address, Listener, ListenerExt, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

async fn exchange(listener: &mut impl Listener, path: &Path) {
    let mut client = UnixStream::connect(path).await.expect("connect");
    let mut conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Unix);
    assert_eq!(conn.local_addr, Address::Unix(path.to_path_buf()));
    // The client did not bind, so its address is unnamed.
    assert_eq!(conn.remote_addr, Address::Unix(PathBuf::new()));

    client.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    conn.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    conn.io.write_all(b"pong").await.expect("write");
    client.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"pong");
}

#[test]
fn default_options() {
    let o = UnixOptions::default();
    assert_eq!(o.backlog, 512);
    assert_eq!(o.mode, None);
    assert_eq!(o.group, None);
}

#[tokio::test]
async fn relative_path_is_rejected() {
    let err = bind_unix(Path::new("kestrel.sock"), &UnixOptions::default())
        .expect_err("relative path must be rejected");
    assert!(matches!(&err, UnixBindError::NotAbsolute(p) if p == Path::new("kestrel.sock")));
    assert!(!Path::new("kestrel.sock").exists(), "nothing was created");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn client_exchanges_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.sock");
    let mut listener = bind_unix(&path, &UnixOptions::default()).expect("bind");
    assert_eq!(listener.local_addr(), &Address::Unix(path.clone()));
    assert_eq!(listener.path(), Some(path.as_path()));
    assert!(listener.removes_file_on_drop());
    assert!(is_socket(&path));
    exchange(&mut listener, &path).await;
    exchange(&mut listener, &path).await;
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    // A server that died: std leaves the socket file behind on drop.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("std bind"));
    assert!(is_socket(&path), "stale file is there");

    let mut listener = bind_unix(&path, &UnixOptions::default()).expect("stale file replaced");
    exchange(&mut listener, &path).await;
}

#[tokio::test]
async fn live_socket_is_address_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("live.sock");
    let mut first = bind_unix(&path, &UnixOptions::default()).expect("bind");

    let err = bind_unix(&path, &UnixOptions::default()).expect_err("must not steal a live socket");
    assert!(
        matches!(&err, UnixBindError::AddressInUse(p) if p == &path),
        "{err:?}"
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);

    // The liveness probe was a real connection: the live server accepts it
    // and sees it closed at once (as with Kestrel's own probe).
    let mut probe = first.accept().await.expect("probe connection");
    let mut buf = Vec::new();
    assert_eq!(probe.io.read_to_end(&mut buf).await.expect("read"), 0);

    // The first listener still owns a working socket file.
    assert!(is_socket(&path));
    exchange(&mut first, &path).await;
}

#[tokio::test]
async fn live_std_socket_is_address_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.sock");
    let other = std::os::unix::net::UnixListener::bind(&path).expect("std bind");
    let err = bind_unix(&path, &UnixOptions::default()).expect_err("in use");
    assert!(matches!(err, UnixBindError::AddressInUse(_)), "{err:?}");
    // The other server still accepts.
    let _client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    other.accept().expect("other server still listening");
}

#[tokio::test]
async fn regular_file_is_address_in_use_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.txt");
    std::fs::write(&path, b"precious").expect("write");

    let err = bind_unix(&path, &UnixOptions::default()).expect_err("not a socket");
    assert!(
        matches!(&err, UnixBindError::AddressInUse(p) if p == &path),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).expect("still there"), b"precious");
}

#[tokio::test]
async fn directory_is_address_in_use_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("subdir");
    std::fs::create_dir(&path).expect("mkdir");
    let err = bind_unix(&path, &UnixOptions::default()).expect_err("not a socket");
    assert!(matches!(err, UnixBindError::AddressInUse(_)), "{err:?}");
    assert!(path.is_dir());
}

#[tokio::test]
async fn missing_parent_directory_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/app.sock");
    let err = bind_unix(&path, &UnixOptions::default()).expect_err("no parent");
    match err {
        UnixBindError::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[tokio::test]
async fn too_long_path_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x".repeat(200));
    let err = bind_unix(&path, &UnixOptions::default()).expect_err("too long");
    assert!(matches!(err, UnixBindError::Io { .. }), "{err:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn socket_file_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("drop.sock");
    let listener = bind_unix(&path, &UnixOptions::default()).expect("bind");
    assert!(is_socket(&path));
    drop(listener);
    assert!(!path.exists(), "socket file removed on drop");
}

#[tokio::test]
async fn drop_keeps_a_file_someone_else_put_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.sock");

    // Replaced by a regular file.
    let listener = bind_unix(&path, &UnixOptions::default()).expect("bind");
    std::fs::remove_file(&path).expect("rm");
    std::fs::write(&path, b"not yours").expect("write");
    drop(listener);
    assert_eq!(std::fs::read(&path).expect("kept"), b"not yours");
    std::fs::remove_file(&path).expect("rm");

    // Replaced by another server's socket. Move the first file aside (not
    // delete) so the new socket cannot reuse its inode number.
    let first = bind_unix(&path, &UnixOptions::default()).expect("bind first");
    let aside = dir.path().join("aside.sock");
    std::fs::rename(&path, &aside).expect("mv");
    let mut second = bind_unix(&path, &UnixOptions::default()).expect("bind second");
    drop(first);
    assert!(is_socket(&path), "second server's socket file kept");
    assert!(is_socket(&aside), "first never looks beyond its own path");
    exchange(&mut second, &path).await;
    drop(second);
    assert!(!path.exists(), "second removes its own file");
}

#[tokio::test]
async fn mode_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in [0o600, 0o660, 0o666] {
        let path = dir.path().join(format!("mode{mode:o}.sock"));
        let opts = UnixOptions {
            mode: Some(mode),
            ..UnixOptions::default()
        };
        let mut listener = bind_unix(&path, &opts).expect("bind");
        let actual = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(actual, mode, "mode {mode:o}");
        exchange(&mut listener, &path).await;
    }
}

#[tokio::test]
async fn bind_error_messages_name_the_path() {
    let err = bind_unix(Path::new("rel.sock"), &UnixOptions::default()).expect_err("relative");
    assert_eq!(err.to_string(), "unix socket path rel.sock is not absolute");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::write(&path, b"").expect("write");
    let err = bind_unix(&path, &UnixOptions::default()).expect_err("in use");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[tokio::test]
async fn group_is_applied_by_id_and_by_name() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // A group this process may choose: its own (by id), and, by name, the
    // group the system calls it (root may choose any, e.g. `daemon`).
    let own_gid = std::fs::metadata(dir.path()).expect("stat").gid();
    let path = dir.path().join("gid.sock");
    let opts = UnixOptions {
        mode: Some(0o660),
        group: Some(SocketGroup::Id(own_gid)),
        ..UnixOptions::default()
    };
    let mut listener = bind_unix(&path, &opts).expect("bind");
    assert_eq!(std::fs::metadata(&path).expect("stat").gid(), own_gid);
    exchange(&mut listener, &path).await;
    drop(listener);

    let group = std::fs::read_to_string("/etc/group").expect("/etc/group");
    let name = group
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid: u32 = f.nth(1)?.parse().ok()?;
            Some((name.to_string(), gid))
        })
        .find(|(_, gid)| *gid == own_gid);
    if let Some((name, gid)) = name {
        let path = dir.path().join("name.sock");
        let opts = UnixOptions {
            group: Some(name.as_str().into()),
            ..UnixOptions::default()
        };
        let _listener = bind_unix(&path, &opts).expect("bind by group name");
        assert_eq!(std::fs::metadata(&path).expect("stat").gid(), gid);
    }
}

#[tokio::test]
async fn unknown_group_is_an_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.sock");
    let opts = UnixOptions {
        group: Some(SocketGroup::Name("no-such-group-kestrel".into())),
        ..UnixOptions::default()
    };
    let err = bind_unix(&path, &opts).expect_err("unknown group");
    assert!(
        matches!(&err, UnixBindError::UnknownGroup { group, .. } if group == "no-such-group-kestrel"),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-group-kestrel"), "{err}");
    assert!(!path.exists(), "the half-made socket file is removed");
}
