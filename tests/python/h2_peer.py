"""An HTTP/2 peer on the Python `h2` library, driven by tests/http2_python.rs.

Usage: h2_peer.py MODE HOST PORT. Each mode talks prior-knowledge HTTP/2
(h2c) to the test application of tests/support/h2client.rs and prints what
it saw as `key=value` lines; the Rust test asserts on them. The `h2` library
checks the server's frames as it parses them (flow control, header rules,
stream states) and raises on a violation, which fails the run.
"""

import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes


class Peer:
    """One client connection and what arrived on each stream."""

    def __init__(self, host, port, initial_window=None, auto_ack=True):
        self.sock = socket.create_connection((host, port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        if initial_window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True,
                initial_values={
                    SettingCodes.INITIAL_WINDOW_SIZE: initial_window,
                    SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                },
            )
        self.auto_ack = auto_ack
        self.streams = {}
        self.settings_seen = False
        self.connection_window_updated = False
        self.goaway = None
        self.conn.initiate_connection()
        self.flush()
        # The server's SETTINGS, and its WINDOW_UPDATE raising the connection
        # window to its configured size.
        self.run_until(lambda: self.settings_seen and self.connection_window_updated)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def stream(self, stream_id):
        return self.streams.setdefault(
            stream_id,
            {"status": None, "headers": {}, "data": bytearray(), "trailers": None,
             "ended": False, "reset": None, "unacked": 0},
        )

    def pump(self, timeout):
        """Read once (up to `timeout` s); False when nothing arrived."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            raise EOFError("the server closed the connection")
        for event in self.conn.receive_data(data):
            self.on_event(event)
        self.flush()
        return True

    def on_event(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
            self.connection_window_updated = True
        elif isinstance(event, h2.events.ResponseReceived):
            s = self.stream(event.stream_id)
            s["headers"] = dict(event.headers)
            s["status"] = int(s["headers"][":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            self.stream(event.stream_id).setdefault("informational", []).append(
                dict(event.headers)[":status"])
        elif isinstance(event, h2.events.DataReceived):
            s = self.stream(event.stream_id)
            s["data"] += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                s["unacked"] += event.flow_controlled_length
        elif isinstance(event, h2.events.TrailersReceived):
            self.stream(event.stream_id)["trailers"] = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            self.stream(event.stream_id)["ended"] = True
        elif isinstance(event, h2.events.StreamReset):
            self.stream(event.stream_id)["reset"] = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = int(event.error_code)

    def run_until(self, done, timeout=10):
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the expected frames did not arrive within %s s" % timeout)
            self.pump(left)

    def quiet_for(self, seconds):
        """Read until nothing arrives for `seconds`."""
        while self.pump(seconds):
            pass

    def request(self, method, path, end_stream=True, extra=()):
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"),
                   (":authority", "localhost"), (":path", path)] + list(extra)
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        self.stream(stream_id)
        return stream_id

    def send_body(self, stream_id, body, end_stream=True):
        """Send `body`, honouring the server's connection and stream windows."""
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump(10)
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(stream_id, bytes(chunk))
            self.flush()
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def finished(self, stream_id):
        s = self.stream(stream_id)
        return s["ended"] or s["reset"] is not None


def settings(host, port):
    """The SETTINGS and connection window the server advertises."""
    peer = Peer(host, port)
    remote = peer.conn.remote_settings
    print("max_concurrent_streams=%d" % remote.max_concurrent_streams)
    print("initial_window_size=%d" % remote.initial_window_size)
    print("max_frame_size=%d" % remote.max_frame_size)
    print("header_table_size=%d" % remote.header_table_size)
    print("max_header_list_size=%s" % remote.max_header_list_size)
    print("enable_connect_protocol=%d" % remote.enable_connect_protocol)
    print("connection_window=%d" % peer.conn.outbound_flow_control_window)
    s = peer.request("GET", "/")
    peer.run_until(lambda: peer.finished(s))
    print("get.status=%d" % peer.stream(s)["status"])
    print("get.body=%s" % peer.stream(s)["data"].decode())


def trailers(host, port):
    """Request trailers reach the app; response trailers reach the client."""
    peer = Peer(host, port)
    s = peer.request("POST", "/collect", end_stream=False)
    peer.send_body(s, b"payload with trailers", end_stream=False)
    peer.conn.send_headers(s, [("x-checksum", "42")], end_stream=True)
    peer.flush()
    peer.run_until(lambda: peer.finished(s))
    st = peer.stream(s)
    print("collect.status=%d" % st["status"])
    print("collect.body=%s" % st["data"].decode())
    print("collect.trailer=%s" % (st["trailers"] or {}).get("x-checksum"))

    s = peer.request("GET", "/trailers")
    peer.run_until(lambda: peer.finished(s))
    st = peer.stream(s)
    print("trailers.body=%s" % st["data"].decode())
    print("trailers.trailer=%s" % (st["trailers"] or {}).get("x-trailer"))

    # Connection-specific response headers are stripped (the h2 library
    # refuses a response that carries them, RFC 9113 §8.2.2).
    s = peer.request("GET", "/hop")
    peer.run_until(lambda: peer.finished(s))
    st = peer.stream(s)
    print("hop.status=%d" % st["status"])
    print("hop.kept=%s" % st["headers"].get("x-kept"))
    print("hop.connection=%s" % st["headers"].get("connection", "absent"))

    # Expect: 100-continue gets :status 100 before the final response.
    s = peer.request("POST", "/collect", end_stream=False,
                     extra=[("expect", "100-continue")])
    peer.run_until(lambda: "informational" in peer.stream(s))
    peer.send_body(s, b"after continue")
    peer.run_until(lambda: peer.finished(s))
    st = peer.stream(s)
    print("continue.informational=%s" % ",".join(st["informational"]))
    print("continue.body=%s" % st["data"].decode())


def resets(host, port):
    """A client reset frees the stream; the app's reset reaches the client."""
    peer = Peer(host, port)
    slow = peer.request("GET", "/slow?ms=5000")
    time.sleep(0.1)
    peer.conn.reset_stream(slow, ErrorCodes.CANCEL)
    peer.flush()
    started = time.monotonic()
    s = peer.request("GET", "/")
    peer.run_until(lambda: peer.finished(s))
    print("after_cancel.status=%d" % peer.stream(s)["status"])
    print("after_cancel.body=%s" % peer.stream(s)["data"].decode())
    print("after_cancel.ms=%d" % ((time.monotonic() - started) * 1000))
    peer.quiet_for(0.3)
    print("cancelled.status=%s" % peer.stream(slow)["status"])

    s = peer.request("GET", "/reset")
    peer.run_until(lambda: peer.finished(s))
    print("server_reset.code=%s" % peer.stream(s)["reset"])
    print("server_reset.status=%s" % peer.stream(s)["status"])

    s = peer.request("GET", "/")
    peer.run_until(lambda: peer.finished(s))
    print("after_reset.status=%d" % peer.stream(s)["status"])
    print("goaway=%s" % peer.goaway)


def flow(host, port):
    """The server never sends past the client's window, and resumes when it
    opens; a request body larger than the server's windows goes through as
    the server opens them."""
    window = 16384
    size = 100_000
    peer = Peer(host, port, initial_window=window, auto_ack=False)
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    s = peer.request("POST", "/echo", end_stream=False)
    peer.send_body(s, body)
    # Without WINDOW_UPDATE from us the server stops at the stream window.
    peer.run_until(lambda: len(peer.stream(s)["data"]) >= window)
    peer.quiet_for(0.5)
    print("stalled_at=%d" % len(peer.stream(s)["data"]))
    # Open the windows as the data is consumed: the rest arrives.
    peer.auto_ack = True
    st = peer.stream(s)
    peer.conn.acknowledge_received_data(st["unacked"], s)
    peer.flush()
    peer.run_until(lambda: peer.finished(s))
    print("echo.len=%d" % len(st["data"]))
    print("echo.equal=%s" % (bytes(st["data"]) == body))

    # 2 MiB up, more than the 1 MiB connection window and the 768 KiB
    # stream window: the server's WINDOW_UPDATEs let it all through.
    big = bytes(range(256)) * 8192
    s = peer.request("POST", "/collect", end_stream=False)
    peer.send_body(s, big)
    peer.run_until(lambda: peer.finished(s), timeout=30)
    st = peer.stream(s)
    print("upload.len=%d" % len(st["data"]))
    print("upload.equal=%s" % (bytes(st["data"]) == big))


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"settings": settings, "trailers": trailers, "resets": resets, "flow": flow}[mode](host, port)
