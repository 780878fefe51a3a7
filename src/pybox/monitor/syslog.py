"""docker's ``syslog`` log driver, as moby writes it (through RackSec/srslog).

Each message (one line of output, newline dropped by the copier; empty lines
are not sent) goes to the syslog address with severity info (stdout) or err
(stderr) in the configured facility, in one of srslog's formats:

- ""            ``<PRI>Mmm _d hh:mm:ss TAG[PID]: MSG\\n``          (srslog.UnixFormatter)
- rfc3164       ``<PRI>Mmm _d hh:mm:ss HOST TAG[PID]: MSG\\n``     (srslog.RFC3164Formatter)
- rfc5424       ``<PRI>1 RFC3339 HOST TAG PID TAG - MSG\\n``       (moby's, app name = tag)
- rfc5424micro  the same with microseconds in the time.

PID is the daemon's (dockerd's own pid in docker: pyboxd's here), HOST the
machine's name, the time local.  Over tcp+tls, rfc5424 messages are framed
with their length (RFC 5425).  A failed write reconnects once and retries, as
srslog's writeAndRetry.  Addresses: unix (a stream socket), unixgram, udp,
tcp, tcp+tls; none: the local syslog (/dev/log, /var/run/syslog, /var/run/log).
"""

from __future__ import annotations

import _socket
import os
import time

TYPE_CHECKING = False  # (typing is not imported: the monitors' zygote loads this module)
if TYPE_CHECKING:
    import ssl
    from typing import Any

    from pybox.monitor.locallog import PartialMeta

LOG_ERR = 3
LOG_INFO = 6
LOCAL_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")


def _offset(t: time.struct_time) -> str:
    off = t.tm_gmtoff or 0
    if off == 0:
        return "Z"
    sign = "+" if off > 0 else "-"
    off = abs(off) // 60
    return f"{sign}{off // 60:02d}:{off % 60:02d}"


def format_message(fmt: str, pri: int, hostname: str, tag: str, pid: int, content: str,
                   now: float | None = None) -> str:
    """One message in srslog's (or moby's rfc5424) format; ``content`` ends
    with a newline."""
    if now is None:
        now = time.time()
    t = time.localtime(now)
    if fmt in ("", "rfc3164"):
        stamp = time.strftime("%b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S", t)
        if fmt == "":
            return f"<{pri}>{stamp} {tag}[{pid}]: {content}"
        return f"<{pri}>{stamp} {hostname} {tag}[{pid}]: {content}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    if fmt == "rfc5424micro":
        stamp += f".{int(now * 1_000_000) % 1_000_000:06d}"
    return f"<{pri}>1 {stamp}{_offset(t)} {hostname} {tag} {pid} {tag} - {content}"


class SyslogSink:
    """Messages to a syslog server.  ``config``: proto ("" local, unix,
    unixgram, udp, tcp, tcp+tls), address (a path or host:port), facility (the
    priority's facility bits), format, tag, hostname, pid, and for tcp+tls
    ca/cert/key/skip_verify."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.proto: str = config.get("proto") or ""
        self.address: str = config.get("address") or ""
        self.facility = int(config.get("facility", 3 << 3))
        self.format: str = config.get("format") or ""
        self.tag: str = config.get("tag") or ""
        self.hostname: str = config.get("hostname") or _socket.gethostname()
        self.pid = int(config.get("pid") or 0)
        self.config = config
        self.sock: _socket.socket | None = None
        self.datagram = False
        # (tcp+tls: the TLS settings first, as moby's New: a bad file fails before a dial)
        self.tls_context: ssl.SSLContext | None = (
            self._tls_context() if self.proto == "tcp+tls" else None)
        self.connect()

    def connect(self) -> None:
        """Dial as srslog does; raises OSError (the start fails, in Go's words)."""
        self.close()
        proto, address = self.proto, self.address
        if proto == "":
            for path in LOCAL_SOCKETS:
                for kind in (_socket.SOCK_DGRAM, _socket.SOCK_STREAM):
                    s = _socket.socket(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)
                    try:
                        s.connect(path)
                    except OSError:
                        s.close()
                        continue
                    self.sock, self.datagram = s, kind == _socket.SOCK_DGRAM
                    return
            raise OSError("Unix syslog delivery error")  # (srslog's words)
        if proto in ("unix", "unixgram"):
            kind = _socket.SOCK_DGRAM if proto == "unixgram" else _socket.SOCK_STREAM
            s = _socket.socket(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)
            try:
                s.connect(address)
            except OSError as e:
                s.close()
                raise OSError(f"dial {proto} {address}: connect: {_strerror(e)}") from None
            self.sock, self.datagram = s, proto == "unixgram"
            return
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        kind = _socket.SOCK_DGRAM if proto == "udp" else _socket.SOCK_STREAM
        net = "tcp" if proto == "tcp+tls" else proto
        try:
            infos = _socket.getaddrinfo(host, int(port), 0, kind)
        except (OSError, ValueError) as e:
            raise OSError(f"dial {net} {address}: {e}") from None
        last: OSError | None = None
        for family, stype, sproto, _, sa in infos:
            s = _socket.socket(family, stype | _socket.SOCK_CLOEXEC, sproto)
            try:
                s.settimeout(10.0)
                s.connect(sa)
            except OSError as e:
                s.close()
                last = e
                continue
            s.settimeout(None)
            if proto == "tcp+tls":
                s = self._tls(s, host)
            self.sock, self.datagram = s, kind == _socket.SOCK_DGRAM
            return
        raise OSError(f"dial {net} {address}: connect: {_strerror(last)}")

    def _tls_context(self) -> ssl.SSLContext:
        """go-connections' tlsconfig.Client: the CA (unless skip-verify), the
        client's key pair; its words for a file that cannot be read."""
        # (tcp+tls only: ssl stays out of every other monitor)
        import ssl  # noqa: PLC0415

        cfg = self.config
        skip = bool(cfg.get("skip_verify"))
        ca = cfg.get("ca") or None
        try:
            ctx = ssl.create_default_context(cafile=None if skip else ca)
        except (OSError, ssl.SSLError) as e:
            raise OSError(f'could not read CA certificate "{ca}": {_go_error(e, ca)}') from None
        if skip:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.get("cert") or cfg.get("key"):
            try:
                ctx.load_cert_chain(cfg.get("cert") or "", cfg.get("key") or None)
            except (OSError, ssl.SSLError) as e:
                raise OSError("could not load X509 key pair: "
                              f"{_go_error(e, cfg.get('cert') or '')}") from None
        return ctx

    def _tls(self, s: _socket.socket, host: str) -> _socket.socket:
        # (tcp+tls only, as ssl: the socket module -- enum and more -- stays out
        # of the zygote every monitor shares, which imports this module)
        import socket  # noqa: PLC0415

        ctx = self.tls_context
        assert ctx is not None  # (made for tcp+tls)
        plain = socket.socket(s.family, s.type, s.proto, s.detach())
        try:
            return ctx.wrap_socket(plain, server_hostname=host)
        except OSError:
            plain.close()
            raise

    def _send(self, data: bytes) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        if self.datagram:
            self.sock.send(data)
        else:
            self.sock.sendall(data)

    def log(self, stream: str, line: bytes, ts_ns: int, partial: PartialMeta) -> None:
        if not line:
            return
        pri = (self.facility & ~7) | (LOG_ERR if stream == "stderr" else LOG_INFO)
        content = line.decode("utf-8", "replace")
        if not content.endswith("\n"):
            content += "\n"
        msg = format_message(self.format, pri, self.hostname, self.tag, self.pid, content)
        if self.proto == "tcp+tls" and self.format.startswith("rfc5424"):
            msg = f"{len(msg.encode())} {msg}"
        data = msg.encode()
        try:
            self._send(data)
        except OSError:
            self.connect()  # srslog's writeAndRetry: one reconnect, one more try
            self._send(data)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            if not self.datagram:
                # What the server sent and nobody read (TLS 1.3's session
                # tickets) would make the close a reset, and a reset makes the
                # server drop the messages it has not read yet: read it first;
                # then, over TLS, say goodbye (close_notify) as Go's Close does.
                sock.setblocking(False)
                try:
                    while sock.recv(65536):
                        pass
                except OSError:  # (EAGAIN, SSLWantReadError: nothing more now)
                    pass
                unwrap = getattr(sock, "unwrap", None)
                if unwrap is not None:
                    try:
                        sock = unwrap()
                    except OSError:  # (the peer's close_notify is not waited for)
                        pass
        finally:
            sock.close()


def _go_error(e: OSError, path: str | None) -> str:
    """An open error as Go words it (``open PATH: no such file or directory``);
    a bad certificate in OpenSSL's words."""
    if type(e) in (FileNotFoundError, PermissionError, IsADirectoryError) and e.errno:
        return f"open {path}: {os.strerror(e.errno).lower()}"
    return str(e)


def _strerror(e: OSError | None) -> str:
    if e is None:
        return "no address"
    return os.strerror(e.errno).lower() if e.errno else str(e)
