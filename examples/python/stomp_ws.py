"""STOMP over WebSocket for stomp.py, on websocket-client (Debian: python3-websocket).

Debian 12's python3-stomp (stomp.py 8.0.0) speaks STOMP over TCP only; its
WebSocket transport came in a later release. This module adds one in about
sixty lines: stomp.py keeps doing the protocol (frames, listeners, receipts,
acks, transactions) and only the bytes travel over a WebSocket instead of a
TCP socket. One STOMP frame goes out per WebSocket message; whatever arrives
is handed to stomp.py's own frame splitter, so a message holding several
frames, or a frame split over several messages, is fine.

    conn = WSStompConnection12("ws://127.0.0.1:61614/stomp")
    conn.connect("alice", "secret", wait=True)
"""

import threading
from urllib.parse import urlparse

import websocket
from stomp.connect import BaseConnection
from stomp.exception import NotConnectedException
from stomp.protocol import Protocol12
from stomp.transport import BaseTransport

# The sub-protocols of STOMP over WebSocket, newest first (the server picks one).
SUBPROTOCOLS = ["v12.stomp", "v11.stomp", "v10.stomp"]


class WebSocketTransport(BaseTransport):
    """A stomp.py transport whose bytes travel over one WebSocket connection."""

    def __init__(self, url, timeout=5.0, vhost=None, auto_decode=True, encoding="utf-8"):
        BaseTransport.__init__(self, auto_decode, encoding)
        parsed = urlparse(url)
        self.url = url
        self.timeout = timeout
        # Protocol12.connect puts current_host_and_port[0] in the CONNECT's host header.
        self.vhost = vhost
        self.current_host_and_port = (parsed.hostname, parsed.port)
        self.ws = None
        self._send_lock = threading.Lock()

    def attempt_connection(self):
        self.connection_error = False
        self.ws = websocket.create_connection(
            self.url, timeout=self.timeout, subprotocols=SUBPROTOCOLS
        )
        # The receiver thread blocks in recv until a frame or the close arrives.
        self.ws.settimeout(None)

    def is_connected(self):
        return self.ws is not None and self.ws.connected and BaseTransport.is_connected(self)

    def send(self, encoded_frame):
        if self.ws is None:
            raise NotConnectedException()
        # Text messages when the frame is UTF-8 (what browsers send), binary otherwise.
        try:
            encoded_frame.decode("utf-8")
            opcode = websocket.ABNF.OPCODE_TEXT
        except UnicodeDecodeError:
            opcode = websocket.ABNF.OPCODE_BINARY
        with self._send_lock:
            self.ws.send(encoded_frame, opcode)

    def receive(self):
        # b"" tells stomp.py's receiver loop that the connection is gone.
        ws = self.ws
        if ws is None:
            return b""
        try:
            opcode, data = ws.recv_data()
        except (websocket.WebSocketException, OSError):
            return b""
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return b""
        return data.encode("utf-8") if isinstance(data, str) else data

    def disconnect_socket(self):
        self.running = False
        self.cleanup()
        if not self.notified_on_disconnect:
            self.notify("disconnected")

    def cleanup(self):
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except (websocket.WebSocketException, OSError):
                pass  # already closed by the server


class WSStompConnection12(BaseConnection, Protocol12):
    """stomp.py's STOMP 1.2 connection, over a WebSocket (`ws://host:port/path`)."""

    def __init__(self, url, heartbeats=(0, 0), timeout=5.0, vhost=None, auto_decode=True):
        transport = WebSocketTransport(url, timeout=timeout, vhost=vhost, auto_decode=auto_decode)
        BaseConnection.__init__(self, transport)
        Protocol12.__init__(self, transport, heartbeats)

    def connect(self, *args, **kwargs):
        self.transport.start()
        Protocol12.connect(self, *args, **kwargs)

    def disconnect(self, receipt=None, headers=None, **keyword_headers):
        Protocol12.disconnect(self, receipt, headers, **keyword_headers)
        if receipt is not None:
            self.transport.stop()

    @staticmethod
    def is_eol(c):
        return c in (b"\n", b"\r\n")
