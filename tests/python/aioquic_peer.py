"""HTTP/3 peer: aioquic's H3Connection client on one QUIC connection.

Usage: aioquic_peer.py HOST PORT SERVER_NAME CAFILE

Runs, on ONE connection: GET /, a POST /echo of 1 MiB, eight concurrent GETs
of /?n=<i>, and GET /missing. It prints what it saw as `key=value` lines for
the Rust test (tests/https/http3_aioquic.rs) to assert on; a response header
`h` of request `r` is `r.header.h=value`, a body is `r.body=<JSON string>`
(first 4 KiB) with `r.len=<bytes>`. The verification of the server's
certificate is on: CAFILE is the CA (or the self-signed certificate) to trust.
"""

import asyncio
import hashlib
import json
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset

TIMEOUT = 20


class Client(QuicConnectionProtocol):
    """A QUIC connection with an H3Connection on it, one future per request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses = {}
        self.waiters = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            waiter = self.waiters.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(
                    RuntimeError(f"stream {event.stream_id} reset: {event.error_code:#x}")
                )
            return
        if isinstance(event, ConnectionTerminated):
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(
                        RuntimeError(
                            f"connection closed: {event.error_code:#x} {event.reason_phrase}"
                        )
                    )
            self.waiters.clear()
        for h3_event in self.h3.handle_event(event):
            if not isinstance(h3_event, (HeadersReceived, DataReceived)):
                continue
            response = self.responses.setdefault(
                h3_event.stream_id, {"headers": [], "body": bytearray(), "frames": 0}
            )
            if isinstance(h3_event, HeadersReceived):
                response["headers"].extend(h3_event.headers)
                response["frames"] += 1
            else:
                response["body"].extend(h3_event.data)
            if h3_event.stream_ended:
                waiter = self.waiters.pop(h3_event.stream_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(self.responses.pop(h3_event.stream_id))

    async def request(self, authority, method, path, body=b""):
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-peer"),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
            headers.append((b"content-type", b"application/octet-stream"))
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        return stream_id, await asyncio.wait_for(waiter, TIMEOUT)


def report(name, stream_id, response):
    print(f"{name}.stream={stream_id}")
    for key, value in response["headers"]:
        print(f"{name}.header.{key.decode()}={value.decode()}")
    body = bytes(response["body"])
    print(f"{name}.len={len(body)}")
    print(f"{name}.sha256={hashlib.sha256(body).hexdigest()}")
    print(f"{name}.body={json.dumps(body[:4096].decode('utf-8', 'replace'))}")


async def main():
    host, port, server_name, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=H3_ALPN, server_name=server_name
    )
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(cafile)
    authority = f"{server_name}:{port}"
    async with connect(
        host, port, configuration=configuration, create_protocol=Client, wait_connected=True
    ) as client:
        print(f"alpn={client._quic.tls.alpn_negotiated}")
        stream_id, response = await client.request(authority, "GET", "/")
        report("get", stream_id, response)

        payload = bytes((i * 7 + 3) % 256 for i in range(1024 * 1024))
        print(f"post.sent_sha256={hashlib.sha256(payload).hexdigest()}")
        stream_id, response = await client.request(authority, "POST", "/echo", payload)
        report("post", stream_id, response)

        results = await asyncio.gather(
            *(client.request(authority, "GET", f"/?n={i}") for i in range(8))
        )
        for i, (stream_id, response) in enumerate(results):
            report(f"multi{i}", stream_id, response)

        stream_id, response = await client.request(authority, "GET", "/missing")
        report("missing", stream_id, response)

        # The server's SETTINGS, as aioquic received them.
        for setting, value in (client.h3.received_settings or {}).items():
            try:
                name = Setting(setting).name
            except ValueError:
                name = hex(setting)
            print(f"settings.{name}={value}")
        client.close()
        await client.wait_closed()
    print("done=true")


if __name__ == "__main__":
    asyncio.run(main())
