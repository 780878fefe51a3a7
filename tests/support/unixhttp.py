"""A unix-socket HTTP client for a daemon's API (the fixtures' own needs and
the tests that speak HTTP themselves)."""

import http.client
import json
import socket

TIMEOUT = 60


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(sock_path: str, method: str, path: str, body=None, timeout: float = TIMEOUT):
    """One request -> (status, parsed JSON or raw bytes)."""
    conn = UnixHTTPConnection(sock_path, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data
    finally:
        conn.close()
