"""The API on TCP with TLS: dockerd's ``-H tcp://... --tlsverify --tlscacert
--tlscert --tlskey``.

The server (pybox.api.server) reads and writes its connections with
MSG_DONTWAIT and MSG_PEEK and hands hijacked ones to handlers as raw sockets,
none of which an ssl.SSLSocket allows.  So TLS ends here: each accepted
connection is shaken hands with on a thread of its own (a slow or hostile
client holds only that thread, for at most HANDSHAKE_TIMEOUT), then relayed to
one end of a socketpair whose other end the server adopts as if it had accepted
it.  Everything after the handshake (keep-alive, streams, attach and exec's
hijacked connections, half-closes) is the server's usual code.

With client verification (--tlsverify, or --tls alone: dockerd's default) the
handshake requires a client certificate signed by the CA of --tlscacert, and
only that CA (dockerd's ExclusiveRootPools): a client without one, or with one
another CA signed, is refused before a byte of HTTP is read.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from pybox.errors import DaemonConfigError

if TYPE_CHECKING:
    from pybox.api.server import Server

HANDSHAKE_TIMEOUT = 10.0
CHUNK = 64 * 1024
BUFFERED = 256 * 1024  # per direction: a side that does not read stops the other's reads


def server_context(certfile: str, keyfile: str, cafile: str, verify: bool) -> ssl.SSLContext:
    """The listeners' TLS configuration, dockerd's (TLS 1.2 at least; with
    ``verify`` a client certificate from the one CA of ``cafile`` required);
    DaemonConfigError in dockerd's words when a file cannot be used."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if verify:
        try:
            ctx.load_verify_locations(cafile=cafile)
        except FileNotFoundError:
            raise DaemonConfigError(f"invalid TLS configuration: could not read CA certificate "
                                    f'"{cafile}": open {cafile}: no such file or directory'
                                    ) from None
        except (OSError, ssl.SSLError) as e:
            raise DaemonConfigError(f"invalid TLS configuration: failed to append certificates "
                                    f'from PEM file: "{cafile}": {e}') from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as e:
        raise DaemonConfigError(f"invalid TLS configuration: could not load X509 key pair: "
                                f"open {e.filename or certfile}: no such file or directory"
                                ) from None
    except (OSError, ssl.SSLError) as e:
        raise DaemonConfigError(f"invalid TLS configuration: could not load X509 key pair "
                                f"(cert: {certfile!r}, key: {keyfile!r}): {e}") from None
    return ctx


class TLSListener:
    """One ``tcp://HOST:PORT`` with TLS, serving through ``server``."""

    def __init__(self, server: Server, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.server = server
        self.sock = sock  # listening, blocking
        self.context = context
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tls-accept",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop accepting (shutdown wakes the blocked accept); connections
        already relayed end with the server's."""
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                self._closed.wait(0.05)  # out of descriptors: back off, as the poller does
                continue
            try:
                threading.Thread(target=self._connection, args=(conn,), name="tls-conn",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: this client is refused
                conn.close()

    def _connection(self, raw: socket.socket) -> None:
        raw.settimeout(HANDSHAKE_TIMEOUT)
        try:  # (wrap_socket takes raw's descriptor over: tls is the one to close)
            tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            raw.close()
            return
        try:
            tls.do_handshake()
        except (OSError, ValueError):  # ssl.SSLError is an OSError: a refused client
            linger_close(tls)
            return
        ours, theirs = socket.socketpair()
        try:
            self.server.adopt(theirs)
        except (OSError, ValueError):
            for s in (tls, ours, theirs):
                s.close()
            return
        try:
            relay(tls, ours)
        finally:
            tls.close()
            ours.close()


def linger_close(raw: ssl.SSLSocket) -> None:
    """Close a refused client's connection so that it reads why (the TLS alert,
    "certificate required"): with TLS 1.3 the client has sent its request
    before it learns of the refusal, and closing with that request unread
    would reset the connection, the alert lost.  (shutdown leaves TLS: what is
    read after it is the raw bytes, drained unread.)"""
    try:
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(1.0)
        while raw.recv(CHUNK):
            pass
    except OSError:
        pass
    raw.close()


def relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Bytes both ways between the client's TLS connection and the server's
    end, on one thread (an SSL object is not to be used from two at once),
    until the server's end closes or the client goes.  The client's EOF (its
    close_notify, or a TCP half-close: the docker CLI's CloseWrite after an
    attach's stdin) is passed on as a half-close, so the server sees stdin end
    and still sends what is left."""
    tls.setblocking(False)
    plain.setblocking(False)
    up = bytearray()  # client -> server
    down = bytearray()  # server -> client
    client_eof = server_eof = up_closed = False
    poller = select.poll()
    while True:
        if not client_eof and len(up) < BUFFERED:
            try:
                while len(up) < BUFFERED:
                    data = tls.recv(CHUNK)
                    if not data:
                        client_eof = True
                        break
                    up += data
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except (ssl.SSLEOFError, ConnectionResetError):
                client_eof = True
            except OSError:
                return
        if not server_eof and len(down) < BUFFERED:
            try:
                while len(down) < BUFFERED:
                    data = plain.recv(CHUNK)
                    if not data:
                        server_eof = True
                        break
                    down += data
            except BlockingIOError:
                pass
            except OSError:
                return
        if up:
            try:
                del up[:plain.send(up[:CHUNK])]
            except BlockingIOError:
                pass
            except OSError:
                return
        if down:
            try:
                del down[:tls.send(down[:CHUNK])]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError:
                return
        if client_eof and not up and not up_closed:
            up_closed = True
            try:
                plain.shutdown(socket.SHUT_WR)
            except OSError:
                return
        if server_eof and not down:
            return  # the server is through with this connection
        if client_eof and server_eof and not down:
            return
        if not client_eof and len(up) < BUFFERED and tls.pending():
            continue  # decrypted bytes poll cannot see
        tls_events = (select.POLLIN if not client_eof and len(up) < BUFFERED else 0) \
            | (select.POLLOUT if down else 0)
        plain_events = (select.POLLIN if not server_eof and len(down) < BUFFERED else 0) \
            | (select.POLLOUT if up else 0)
        poller.register(tls.fileno(), tls_events)
        poller.register(plain.fileno(), plain_events)
        poller.poll()
