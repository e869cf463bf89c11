//! The demo app over a real socket, driven by curl.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use support::{curl, have_tool, start};

#[tokio::test]
async fn get_head_post_and_errors_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let server = start(|_| {}, kestrel_demo::app).await;
    let base = format!("http://{}", support::addr(&server));

    let out = curl(&["-i", &format!("{base}/")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("<p>Hosted by Kestrel</p>"), "{text}");
    assert!(
        text.contains(&format!("Listening on the following addresses: {base}")),
        "{text}"
    );
    assert!(text.contains(&format!("Request URL: {base}/")), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("server: kestrel\r\n"),
        "{text}"
    );
    assert!(text.to_ascii_lowercase().contains("\r\ndate: "), "{text}");

    // HEAD: same headers (including the length), no body.
    let out = curl(&["-I", &format!("{base}/")]).await;
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(head.contains("content-length: "), "{head}");
    assert!(!head.contains("hosted by kestrel"), "{head}");

    let out = curl(&["--data-binary", "hello echo", &format!("{base}/echo")]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello echo");

    let out = curl(&["-i", "-X", "DELETE", &format!("{base}/")]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(text.contains("allow: get, head"), "{text}");

    let out = curl(&["-i", &format!("{base}/nope")]).await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 404"));
    server.stop().await;
}

#[tokio::test]
async fn two_requests_reuse_one_keep_alive_connection() {
    if !have_tool("curl") {
        return;
    }
    let server = start(|_| {}, kestrel_demo::app).await;
    let url = format!("http://{}/", support::addr(&server));
    let out = curl(&["-v", "-o", "/dev/null", "-o", "/dev/null", &url, &url]).await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("< HTTP/1.1 200").count(), 2, "{log}");
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "curl should reuse the connection:\n{log}"
    );
    server.stop().await;
}

#[tokio::test]
async fn large_upload_echoes_back_intact() {
    if !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.bin");
    let data: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let server = start(|_| {}, kestrel_demo::app).await;
    let url = format!("http://{}/echo", support::addr(&server));
    let out_path = dir.path().join("echo.bin");
    for mode in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["-o", out_path.to_str().unwrap(), "--data-binary"];
        let at = format!("@{}", path.display());
        args.push(&at);
        args.extend_from_slice(mode);
        args.push(&url);
        let out = curl(&args).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::read(&out_path).unwrap() == data,
            "echo differs ({mode:?})"
        );
    }
    server.stop().await;
}

/// `OPTIONS *` is about the server as a whole (204 with `Allow`), and a
/// CONNECT tunnel request is refused with 405, over HTTP/1.1 on a raw socket.
#[tokio::test]
async fn options_asterisk_and_connect() {
    let server = start(|_| {}, kestrel_demo::app).await;
    let reply = support::raw(
        support::addr(&server),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&reply), 204, "{reply}");
    assert!(
        reply.contains("allow: GET, HEAD, POST, OPTIONS\r\n"),
        "{reply}"
    );
    let reply = support::raw(
        support::addr(&server),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&reply), 405, "{reply}");
    assert!(reply.contains("allow: \r\n"), "{reply}");
    server.stop().await;
}
