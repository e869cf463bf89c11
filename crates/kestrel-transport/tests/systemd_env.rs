//! `systemd_listen_fds_count`: reading `LISTEN_PID` / `LISTEN_FDS`.
//!
//! One test only: it changes the process environment, which other tests in
//! the same binary could observe.

use kestrel_transport::tcp::systemd_listen_fds_count;

#[test]
fn systemd_listen_fds_count_follows_the_protocol() {
    let me = std::process::id().to_string();

    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    assert_eq!(systemd_listen_fds_count(), None, "no variables");

    std::env::set_var("LISTEN_PID", &me);
    assert_eq!(systemd_listen_fds_count(), None, "LISTEN_FDS missing");

    std::env::set_var("LISTEN_FDS", "2");
    assert_eq!(systemd_listen_fds_count(), Some(2));

    std::env::set_var("LISTEN_FDS", "0");
    assert_eq!(systemd_listen_fds_count(), Some(0));

    std::env::set_var("LISTEN_FDS", "two");
    assert_eq!(systemd_listen_fds_count(), None, "malformed count");

    std::env::set_var("LISTEN_FDS", "1");
    std::env::set_var("LISTEN_PID", (std::process::id() + 1).to_string());
    assert_eq!(
        systemd_listen_fds_count(),
        None,
        "meant for another process"
    );

    std::env::set_var("LISTEN_PID", "not-a-pid");
    assert_eq!(systemd_listen_fds_count(), None, "malformed pid");

    #[cfg(unix)]
    assert_eq!(kestrel_transport::tcp::SYSTEMD_LISTEN_FDS_START, 3);

    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
}
