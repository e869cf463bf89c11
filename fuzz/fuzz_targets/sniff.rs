//! Protocol sniffing on a cleartext `Http1AndHttp2` endpoint
//! (`kestrel::fuzzing::sniff`, the code the server runs): the client's
//! bytes are sent whole, in pieces the input picks, and one byte at a time
//! (then the client's write side is shut). The decision must be the same
//! in all three, must be the right one (HTTP/2 exactly when the bytes start
//! with the preface, closed only when they are a strict prefix of it), and
//! the bytes handed on (those read while sniffing, then the rest of the
//! stream) must be exactly the client's bytes: none lost, none duplicated.
#![no_main]

use std::time::Duration;

use kestrel::fuzzing::{sniff, Sniffed};
use kestrel::HttpProtocols;
use kestrel_http2::PREFACE;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, PartialEq)]
enum Decision {
    Http1,
    Http2,
    Close,
}

async fn run(data: &[u8], cuts: &[usize]) -> (Decision, Vec<u8>) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let writer = async {
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&data.len())) {
            if end < start {
                continue;
            }
            if client.write_all(&data[start..end]).await.is_err() {
                return client;
            }
            start = end;
            tokio::task::yield_now().await;
        }
        let _ = client.shutdown().await;
        client
    };
    let (client, (sniffed, mut io)) = tokio::join!(
        writer,
        sniff(Box::new(server), HttpProtocols::HTTP1_AND_HTTP2)
    );
    drop(client);
    let (decision, mut handed) = match sniffed {
        Sniffed::Http1(buf) => (Decision::Http1, buf.to_vec()),
        Sniffed::Http2(buf) => (Decision::Http2, buf.to_vec()),
        Sniffed::Close => (Decision::Close, Vec::new()),
    };
    if decision != Decision::Close {
        io.read_to_end(&mut handed)
            .await
            .expect("the rest of the stream");
    }
    (decision, handed)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    // Start with some of the preface, so both outcomes are reached.
    let mut data = PREFACE[..usize::from(input[0]) % (PREFACE.len() + 1)].to_vec();
    data.extend_from_slice(&input[3..]);
    let mut cuts: Vec<usize> = input[1..3]
        .iter()
        .map(|&b| usize::from(b) * data.len() / 256)
        .collect();
    cuts.sort_unstable();
    let every: Vec<usize> = (1..data.len()).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let [whole, split, bytewise] = [&[][..], &cuts[..], &every[..]].map(|c| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), run(&data, c))
                .await
                .expect("sniffing ended")
        })
    });
    assert_eq!(whole.0, split.0, "split at {cuts:?}");
    assert_eq!(whole.0, bytewise.0, "one byte at a time");
    let expected = if data.starts_with(PREFACE) {
        Decision::Http2
    } else if PREFACE.starts_with(&data) {
        Decision::Close
    } else {
        Decision::Http1
    };
    assert_eq!(whole.0, expected);
    if expected != Decision::Close {
        for (handed, how) in [
            (&whole.1, "whole"),
            (&split.1, "split"),
            (&bytewise.1, "one byte at a time"),
        ] {
            assert_eq!(handed, &data, "bytes handed on ({how})");
        }
    }
});
