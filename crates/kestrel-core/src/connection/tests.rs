use super::*;
use std::future::poll_fn;

#[test]
fn ids_display_like_kestrel() {
    assert_eq!(ConnectionId(0).to_string(), "0000000000000");
    assert_eq!(ConnectionId(1).to_string(), "0000000000001");
    assert_eq!(ConnectionId(u64::MAX).to_string().len(), 13);
    assert_ne!(ConnectionId(5).to_string(), ConnectionId(6).to_string());
}

#[test]
fn deadline_is_tick_plus_timeout_plus_interval() {
    let t = TimeoutControl::default();
    let iv = Duration::from_secs(1);
    t.set(TimeoutReason::KeepAlive, Duration::from_secs(5), 10_000, iv);
    assert_eq!(
        t.check(16_000),
        None,
        "exactly at the deadline is not past it"
    );
    assert_eq!(t.check(16_001), Some(TimeoutReason::KeepAlive));
    assert_eq!(t.check(20_000), None, "fires once");
    assert_eq!(t.take_fired(), TimeoutReason::KeepAlive);
    t.set(TimeoutReason::RequestHeaders, Duration::from_secs(1), 0, iv);
    t.cancel();
    assert_eq!(t.check(1_000_000), None);
}

#[test]
fn limit_admits_n_then_refuses() {
    let m = ConnectionManager::new(Some(2), Some(1));
    let a = m.try_admit(m.next_id()).expect("first");
    let mut b = m.try_admit(m.next_id()).expect("second");
    assert_eq!(
        m.try_admit(m.next_id()).unwrap_err(),
        ConnectionLimitError::MaxConcurrentConnections(2)
    );
    assert_eq!(m.rejected_connections(), 1);
    b.upgrade().expect("upgrade");
    assert_eq!((m.active_connections(), m.upgraded_connections()), (1, 1));
    let mut c = m
        .try_admit(m.next_id())
        .expect("an upgraded connection frees a normal place");
    assert_eq!(
        c.upgrade().unwrap_err(),
        ConnectionLimitError::MaxConcurrentUpgradedConnections(1)
    );
    drop((a, b, c));
    assert_eq!(
        (
            m.active_connections(),
            m.upgraded_connections(),
            m.live_connections()
        ),
        (0, 0, 0)
    );
}

#[test]
fn limits_changed_apply_to_later_admissions_only() {
    let m = ConnectionManager::new(None, Some(0));
    let a = m.try_admit(m.next_id()).expect("first");
    let b = m.try_admit(m.next_id()).expect("second");
    m.set_limits(Some(1), None);
    assert_eq!(m.limits(), (Some(1), None));
    assert_eq!(
        m.try_admit(m.next_id()).unwrap_err(),
        ConnectionLimitError::MaxConcurrentConnections(1),
        "two open, one allowed: the next is refused"
    );
    assert_eq!(m.live_connections(), 2, "open connections are kept");
    drop((a, b));
    let mut c = m.try_admit(m.next_id()).expect("under the new limit");
    c.upgrade().expect("upgrades are no longer limited");
    m.set_limits(None, None);
    let _d = m.try_admit(m.next_id()).expect("no limit any more");
}

#[tokio::test]
async fn signals_wake_and_drain_completes() {
    let m = ConnectionManager::new(None, None);
    let g = m.try_admit(m.next_id()).expect("admit");
    let h = g.handle().clone();
    h.timeout()
        .set(TimeoutReason::KeepAlive, Duration::ZERO, 0, Duration::ZERO);
    m.on_heartbeat(1);
    let s = poll_fn(|cx| h.poll_signal(cx)).await;
    assert_eq!(s, Signal::TimedOut(TimeoutReason::KeepAlive));
    assert_eq!(h.check_signal(), None, "a timeout is reported once");
    let waiter = tokio::spawn({
        let h = h.clone();
        async move { poll_fn(|cx| h.poll_signal(cx)).await }
    });
    tokio::task::yield_now().await;
    m.request_close_all();
    assert_eq!(waiter.await.expect("join"), Signal::CloseRequested);
    m.abort_all();
    assert_eq!(h.check_signal(), Some(Signal::Aborted));
    let idle = ConnectionHandle::detached(ConnectionId(9));
    idle.timeout().set(
        TimeoutReason::KeepAlive,
        Duration::from_secs(100),
        0,
        Duration::ZERO,
    );
    idle.on_heartbeat(1);
    assert_eq!(idle.check_signal(), Some(Signal::Idle));
    assert_eq!(idle.check_signal(), None, "idle is reported once");
    idle.set_buffers_released(true);
    idle.on_heartbeat(2);
    assert_eq!(
        idle.check_signal(),
        None,
        "a connection without buffers is not woken again"
    );
    idle.set_buffers_released(false);
    idle.on_heartbeat(3);
    assert_eq!(idle.check_signal(), Some(Signal::Idle));
    let drained = tokio::spawn({
        let m = m.clone();
        async move { m.wait_drained().await }
    });
    drop(g);
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("drained in time")
        .expect("join");
}
