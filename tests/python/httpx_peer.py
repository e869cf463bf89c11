"""An HTTP/2 client on `httpx` (http2=True, prior knowledge), driven by
tests/http2_python.rs. Usage: httpx_peer.py BASE_URL. Prints `key=value`
lines; the Rust test asserts on them.
"""

import asyncio
import sys
import time

import httpx


async def main(base):
    # http1=False on an http:// URL: HTTP/2 with prior knowledge (h2c).
    async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as client:
        r = await client.get(base + "/")
        print("get.version=%s" % r.http_version)
        print("get.status=%d" % r.status_code)
        print("get.body=%s" % r.text)
        print("get.server=%s" % r.headers.get("server"))
        print("get.date=%s" % ("date" in r.headers))

        r = await client.get(base + "/info")
        print("info.body=%s" % r.text)

        body = bytes(range(256)) * 4096  # 1 MiB, beyond the stream window
        r = await client.post(base + "/echo", content=body)
        print("echo.version=%s" % r.http_version)
        print("echo.len=%d" % len(r.content))
        print("echo.equal=%s" % (r.content == body))

        r = await client.get(base + "/missing")
        print("missing.status=%d" % r.status_code)

        # 50 requests that each take 300 ms, multiplexed on one connection:
        # served side by side, not one after another (15 s).
        started = time.monotonic()
        responses = await asyncio.gather(
            *[client.get(base + "/slow?ms=300") for _ in range(50)]
        )
        elapsed = time.monotonic() - started
        ok = sum(1 for r in responses if r.status_code == 200 and r.http_version == "HTTP/2")
        print("concurrent.ok=%d" % ok)
        print("concurrent.ms=%d" % (elapsed * 1000))

        # An app that fails before answering gets a 500 on its stream; the
        # connection goes on serving.
        r = await client.get(base + "/error")
        print("error.status=%d" % r.status_code)
        r = await client.get(base + "/")
        print("after_error.status=%d" % r.status_code)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
