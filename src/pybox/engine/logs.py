"""Containers' log drivers, dockerd's way: the daemon's default LogConfig, the
create-time merge and validation of a container's (moby's
mergeAndVerifyLogConfig / logger.ValidateLogOpts and each driver's
ValidateLogOpt, with dockerd's words), what the monitor is told at a start
(pybox.monitor.logdrivers builds the writer from it), and reading a log back
for ``docker logs``: streams, since/until, tail, timestamps, and follow (through
rotations, until the container stops), for json-file, local and the local
cache of a syslog container (docker's dual logging).

Drivers: json-file (the default), local, syslog, none; and cri, which no
Docker API body can ask for: pyboxd's CRI sets it (Engine.create's
``cri_log_path``) for a container logging in the CRI format to the path
kubelet names (pybox.monitor.crilog), read back here too.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote_plus, urlsplit

from pybox.engine.store import Container
from pybox.errors import BadRequest, LogDriverError, LogsNotReadable
from pybox.formats.sizes import from_human_size, ram_in_bytes
from pybox.formats.times import parse_rfc3339, rfc3339_nano_fixed
from pybox.monitor import crilog, jsonlog, locallog
from pybox.monitor.logfile import log_files, open_log

DRIVERS = ("json-file", "local", "syslog", "none")
# what every driver takes (logger.Info.ExtraAttributes and ParseLogTag)
COMMON_OPTS = ("labels", "labels-regex", "env", "env-regex", "tag")
JSON_FILE_OPTS = ("max-file", "max-size", "compress") + COMMON_OPTS
LOCAL_OPTS = ("max-file", "max-size", "compress") + COMMON_OPTS
SYSLOG_OPTS = ("syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert",
               "syslog-tls-key", "syslog-tls-skip-verify", "syslog-format") + COMMON_OPTS
# logger's built-in options (any driver) and the log cache's (dual logging)
BUILTIN_OPTS = ("mode", "max-buffer-size", "cache-disabled") + tuple(
    "cache-" + k for k in LOCAL_OPTS)
SYSLOG_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17,
    "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}
SYSLOG_FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
SYSLOG_PROTOS = ("tcp", "tcp+tls", "udp", "unix", "unixgram")
READ_UNSUPPORTED = "configured logging driver does not support reading"


@dataclass(frozen=True)
class LogConfig:
    """A LogConfig: the daemon's default (``log-driver`` and ``log-opts`` of
    daemon.json, ``--log-driver``/``--log-opt`` of pyboxd) or a container's."""

    type: str = "json-file"
    config: Mapping[str, str] = field(default_factory=dict)


def daemon_log_config(driver: str | None, opts: Mapping[str, str] | None) -> LogConfig:
    """The daemon's default LogConfig from its configuration, checked as dockerd
    checks it at its start; ValueError with dockerd's words (pyboxd refuses to
    start).  ``driver`` None or "": json-file."""
    cfg = LogConfig(driver or "json-file", dict(opts or {}))
    if cfg.config:
        try:
            validate_log_opts(cfg.type, dict(cfg.config))
        except BadRequest as e:
            raise ValueError(f"failed to set log opts: {e}") from None
    elif cfg.type not in DRIVERS:
        raise ValueError(f'error looking up logging plugin {cfg.type}: plugin "{cfg.type}" '
                         'not found')
    return cfg


def merge_and_verify(hc: dict[str, Any], default: LogConfig) -> None:
    """A create's HostConfig.LogConfig, in place: an unset type is the daemon's;
    the daemon's options join those of a container of the same type (and its
    cache options any container); then dockerd's validation (BadRequest)."""
    log = hc.get("LogConfig")
    log = dict(log) if isinstance(log, dict) else {}
    opts = log.get("Config")
    opts = dict(opts) if isinstance(opts, dict) else {}
    if not log.get("Type"):
        log["Type"] = default.type
    if log["Type"] == default.type:
        for k, v in default.config.items():
            opts.setdefault(k, v)
    for k, v in default.config.items():
        if k.startswith("cache-") and k in BUILTIN_OPTS:
            opts.setdefault(k, v)
    log["Config"] = opts
    hc["LogConfig"] = log
    validate_log_opts(log["Type"], opts)


def _go_bool(text: str) -> bool:
    """strconv.ParseBool; ValueError with its words."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _go_atoi(text: str) -> int:
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def validate_log_opts(driver: str, opts: dict[str, Any]) -> None:
    """logger.ValidateLogOpts and the driver's own checks; BadRequest with
    dockerd's message.  pybox also checks the values a driver would refuse at
    the start (max-size, max-file, compress), so a bad one leaves no container."""
    if driver == "none":
        return
    for key, value in opts.items():
        if not isinstance(value, str):
            raise BadRequest(f"invalid value for log opt '{key}': a string is expected")
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise BadRequest(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise BadRequest("logger: max-buffer-size option is only supported with "
                             "'mode=non-blocking'")
        try:
            ram_in_bytes(opts["max-buffer-size"])
        except ValueError as e:
            raise BadRequest(f"error parsing option max-buffer-size: {e}") from None
    if opts.get("cache-disabled"):
        try:
            _go_bool(opts["cache-disabled"])
        except ValueError:
            raise BadRequest("invalid value for option cache-disabled: "
                             f"{opts['cache-disabled']}") from None
    if driver not in DRIVERS:
        raise BadRequest(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    own = {k: v for k, v in opts.items() if k not in BUILTIN_OPTS}
    try:
        if driver == "json-file":
            for key in own:
                if key not in JSON_FILE_OPTS:
                    raise ValueError(f"unknown log opt '{key}' for json-file log driver")
            json_file_settings(own)
        elif driver == "local":
            for key in own:
                if key not in LOCAL_OPTS:
                    raise ValueError(f"unknown log opt '{key}' for log driver local")
            local_settings(own)
        elif driver == "syslog":
            for key in own:
                if key not in SYSLOG_OPTS:
                    raise ValueError(f"unknown log opt '{key}' for syslog log driver")
            syslog_address(own.get("syslog-address", ""))
            syslog_facility(own.get("syslog-facility", ""))
            if own.get("syslog-format", "") not in SYSLOG_FORMATS:
                raise ValueError("Invalid syslog format")
    except ValueError as e:
        raise BadRequest(str(e)) from None


# -- each driver's settings ---------------------------------------------------------
def json_file_settings(opts: Mapping[str, str]) -> tuple[int, int, bool]:
    """(max size, max files, compress) of json-file; ValueError with docker's words
    (pybox's defaults: 10 MiB, 3 files: docker's unbounded default fills disks)."""
    size = jsonlog.DEFAULT_MAX_SIZE
    files = jsonlog.DEFAULT_MAX_FILES
    compress = False
    if "max-size" in opts:
        size = ram_in_bytes(opts["max-size"])
        if size <= 0:
            raise ValueError("max-size must be a positive number")
    if "max-file" in opts:
        files = _go_atoi(opts["max-file"])
        if files < 1:
            raise ValueError("max-file cannot be less than 1")
    if "compress" in opts:
        compress = _go_bool(opts["compress"])
        if compress and files == 1:
            raise ValueError("compress cannot be true when max-file is less than 2")
    return size, files, compress


def local_settings(opts: Mapping[str, str]) -> tuple[int, int, bool]:
    """(max size, max files, compress) of local (moby's local.newConfig: 20 MB
    in decimal units, 5 files, compressed); ValueError with dockerd's words."""
    size = locallog.DEFAULT_MAX_SIZE
    files = locallog.DEFAULT_MAX_FILES
    compress = locallog.DEFAULT_COMPRESS
    if "max-size" in opts:
        try:
            size = from_human_size(opts["max-size"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-size: {opts['max-size']}: {e}") from None
    if "max-file" in opts:
        try:
            files = _go_atoi(opts["max-file"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-file: {opts['max-file']}: {e}") from None
    if "compress" in opts:
        try:
            compress = _go_bool(opts["compress"])
        except ValueError as e:
            raise ValueError(f"error reading compress log option: {e}") from None
    if files < 0:
        raise ValueError("max-file must not be negative")
    if compress and files <= 1:
        raise ValueError("compression cannot be enabled when max file count is 1")
    return size, files, compress


def syslog_address(address: str) -> tuple[str, str]:
    """(proto, address) of syslog-address ("" "": the local syslog); ValueError
    with dockerd's words.  A unix socket must exist now."""
    if address == "":
        return "", ""
    if not any(address.startswith(p + "://") for p in SYSLOG_PROTOS):
        raise ValueError(f"syslog-address should be in form proto://address, got {address}")
    url = urlsplit(address)
    proto = address.split("://", 1)[0]
    if proto in ("unix", "unixgram"):
        try:
            os.stat(url.path)
        except OSError as e:
            raise ValueError(f"stat {url.path}: {os.strerror(e.errno or 0).lower()}") from None
        return proto, url.path
    host = url.netloc
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise ValueError(f"address {host}: missing ']' in address")
        if host[end + 1:] in ("", ":"):
            host = host[:end + 1] + ":514"
    elif host.count(":") > 1:
        raise ValueError(f"address {host}: too many colons in address")
    elif ":" not in host:
        host += ":514"
    return proto, host


def syslog_facility(name: str) -> int:
    """The facility's number (daemon when unset); ValueError as dockerd."""
    if name == "":
        return SYSLOG_FACILITIES["daemon"]
    if name in SYSLOG_FACILITIES:
        return SYSLOG_FACILITIES[name]
    try:
        n = _go_atoi(name)
    except ValueError:
        n = -1
    if 0 <= n <= 23:
        return n
    raise ValueError("invalid syslog facility")


# -- what the monitor is told at a start --------------------------------------------
_TAG_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def _truncate_id(text: str) -> str:
    return text.partition(":")[2][:12] if ":" in text else text[:12]


def render_tag(c: Container, template: str) -> str:
    """loggerutils.ParseLogTag: the template's fields of logger.Info ({{.ID}},
    {{.FullID}}, {{.Name}}, {{.Command}}, {{.ImageID}}, {{.ImageFullID}},
    {{.ImageName}}, {{.Hostname}}, {{.DaemonName}}...).  ValueError for what
    pybox's template subset cannot evaluate."""
    image_name = str(c.config.get("Image") or "")
    fields = {
        "ID": c.id[:12], "FullID": c.id, "ContainerID": c.id,
        "Name": c.docker_name.lstrip("/"), "ContainerName": c.docker_name,
        "Command": " ".join([c.path, *c.args]), "ImageID": _truncate_id(c.image),
        "ImageFullID": c.image, "ContainerImageID": c.image, "ImageName": image_name,
        "ContainerImageName": image_name, "Hostname": socket.gethostname(),
        "DaemonName": "docker",
    }

    def field_value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in fields:
            raise ValueError(f'template: log-tag:1:{m.start() + 2}: executing "log-tag" at '
                             f"<.{name}>: can't evaluate field {name} in type *logger.Info")
        return fields[name]

    text = _TAG_FIELD.sub(field_value, template)
    if "{{" in text:
        raise ValueError(f"template: log-tag: pybox supports only {{{{.Field}}}} in a log tag: "
                         f"{template!r}")
    return text


def _attributes(c: Container, opts: Mapping[str, str]) -> list[tuple[str, str]]:
    """logger.Info.ExtraAttributes: the labels and environment variables the
    options name (kept in each local entry)."""
    extra: dict[str, str] = {}
    labels = c.config.get("Labels") or {}
    if opts.get("labels"):
        for key in opts["labels"].split(","):
            if key in labels:
                extra[key] = str(labels[key])
    if opts.get("labels-regex"):
        rx = re.compile(opts["labels-regex"])
        extra.update({k: str(v) for k, v in labels.items() if rx.search(k)})
    env = dict(e.partition("=")[::2] for e in c.config.get("Env") or () if "=" in e)
    if env and opts.get("env"):
        for key in opts["env"].split(","):
            if key in env:
                extra[key] = env[key]
    if env and opts.get("env-regex"):
        rx = re.compile(opts["env-regex"])
        extra.update({k: v for k, v in env.items() if rx.search(k)})
    return sorted(extra.items())


def local_log_path(c: Container) -> str:
    """Where dockerd keeps a local-driver log (not shown as LogPath: moby keeps
    the format out of the API)."""
    return os.path.join(c.dir, "local-logs", "container.log")


def cache_log_path(c: Container) -> str:
    """The dual-logging cache of a driver that cannot be read back (syslog)."""
    return os.path.join(c.dir, "container-cached.log")


def _cache_enabled(opts: Mapping[str, str]) -> bool:
    try:
        return not _go_bool(opts.get("cache-disabled") or "false")
    except ValueError:
        return True


def cri_log_config(path: str) -> dict[str, Any]:
    """The LogConfig of a container created by the CRI with kubelet's log
    path (absolute; "" for none).  BadRequest for a path that is not absolute
    or holds a NUL."""
    if not path:
        return {"Type": "none", "Config": {}}
    if not os.path.isabs(path) or "\0" in path:
        raise BadRequest(f"invalid container log path {path!r}: it must be absolute")
    return {"Type": "cri", "Config": {}}


def monitor_log(c: Container) -> dict[str, Any]:
    """What the monitor needs to write ``c``'s log (pybox.monitor.logdrivers):
    the driver, its settings, the rendered tag.  LogDriverError (dockerd's
    'failed to initialize logging driver: ...', a 500) for options a start
    cannot use."""
    log = c.host_config.get("LogConfig") or {}
    driver = log.get("Type") or "json-file"
    opts: dict[str, str] = dict(log.get("Config") or {})
    try:
        if driver == "none" or driver == "cri" and not c.log_path:
            return {"driver": "none"}
        if driver == "cri":  # (the path: the CRI's, set at create; see cri_log_config)
            return {"driver": "cri", "path": c.log_path, "max_line": crilog.MAX_LINE}
        attrs = _attributes(c, opts)
        if opts.get("tag"):  # (syslog's: its cache's entries, as moby's local cache)
            tag = render_tag(c, opts["tag"])
            if tag:  # (as moby's: only a tag asked for, no default)
                attrs = sorted(dict([*attrs, ("tag", tag)]).items())
        if driver == "json-file":
            size, files, compress = json_file_settings(opts)
            return {"driver": driver, "path": c.log_path or os.path.join(c.dir, f"{c.id}-json.log"),
                    "max_size": size, "max_files": files, "compress": compress, "attrs": attrs}
        if driver == "local":
            size, files, compress = local_settings(opts)
            path = local_log_path(c)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            return {"driver": driver, "path": path, "max_size": size, "max_files": files,
                    "compress": compress, "attrs": attrs}
        if driver == "syslog":
            proto, address = syslog_address(opts.get("syslog-address", ""))
            spec: dict[str, Any] = {
                "driver": driver, "attrs": attrs,
                "syslog": {
                    "proto": proto, "address": address,
                    "facility": syslog_facility(opts.get("syslog-facility", "")) << 3,
                    "format": opts.get("syslog-format", ""),
                    "tag": render_tag(c, opts.get("tag") or "{{.ID}}"),
                    "hostname": socket.gethostname(), "pid": os.getpid(),
                    "ca": opts.get("syslog-tls-ca-cert", ""),
                    "cert": opts.get("syslog-tls-cert", ""),
                    "key": opts.get("syslog-tls-key", ""),
                    "skip_verify": "syslog-tls-skip-verify" in opts},
            }
            if _cache_enabled(opts):
                cache_opts = {k: v for k, v in opts.items() if k in LOCAL_OPTS}
                size, files, compress = local_settings(cache_opts)
                spec["cache"] = {"path": cache_log_path(c), "max_size": size,
                                 "max_files": files, "compress": compress}
            return spec
    except (ValueError, re.error) as e:
        raise LogDriverError(f"failed to initialize logging driver: {e}") from None
    raise LogDriverError(f"failed to initialize logging driver: logger: no log driver named "
                         f"'{driver}' is registered")


# -- reading ------------------------------------------------------------------------
class _Reader:
    """One log's format: the rotated files' entries, and a follower's decoding."""

    def __init__(self, path: str, local: bool, cri: bool = False) -> None:
        self.path = path
        self.local = local
        self.cri = cri  # the CRI format (kubelet rotates it: only the current file)
        # (inode, offset) of the current file where entries() stopped: a
        # follower goes on from there, missing nothing written meanwhile
        self.end: tuple[int, int] | None = None

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every whole entry across the rotated files, oldest first."""
        for name in ([self.path] if self.cri else log_files(self.path)):
            try:
                with open_log(name) as f:
                    try:
                        yield from self.follow(f)
                    except (ValueError, OSError, EOFError):
                        continue  # a corrupt or truncated file: what was whole is shown
                    if name == self.path:
                        self.end = (os.fstat(f.fileno()).st_ino, f.tell())
            except FileNotFoundError:
                continue

    def tail(self, n: int, wanted: Callable[[dict[str, Any]], bool]
             ) -> list[dict[str, Any]] | None:
        """The last ``n`` wanted entries of a local log, walking its files back
        from their ends by the frames' trailing sizes (moby's getTailReader), so
        a tail of a big log costs what it shows; None when that cannot be done
        (json-file; a frame being written, a damaged file): read it forward."""
        if not self.local:
            return None
        out: list[dict[str, Any]] = []
        for name in reversed(log_files(self.path)):
            if len(out) >= n and name != self.path:
                break
            try:
                with open_log(name) as f:
                    if name.endswith(".gz"):  # (no walking back in a gzip stream)
                        got = [_local_entry(e) for e, _ in locallog.read_frames(f)]
                        out.extend(e for e in reversed(got) if wanted(e))
                        continue
                    st = os.fstat(f.fileno())
                    pos = st.st_size
                    if name == self.path:
                        # a follower starts at the end: it must be a frame's
                        if pos and not _frame_ends_at(f, pos):
                            return None
                        self.end = (st.st_ino, pos)
                    while pos > 0 and len(out) < n:
                        f.seek(pos - 4)
                        trailer = f.read(4)
                        size = int.from_bytes(trailer, "big")
                        start = pos - 8 - size
                        if len(trailer) < 4 or size > locallog.MAX_MSG_LEN or start < 0:
                            return None
                        f.seek(start)
                        frame = f.read(size + 8)
                        if frame[:4] != trailer:
                            return None  # (moby: "header and footer indicate different sizes")
                        e = _local_entry(locallog.decode_entry(frame[4:4 + size]))
                        if wanted(e):
                            out.append(e)
                        pos = start
            except FileNotFoundError:
                continue
            except (ValueError, OSError, EOFError):
                return None
        del out[n:]
        out.reverse()
        return out

    def follow(self, f: IO[bytes]) -> Iterator[dict[str, Any]]:
        """The whole entries from ``f``'s position (a torn last one is left)."""
        if self.local:
            for e, _ in locallog.read_frames(f):
                yield _local_entry(e)
            return
        for line in f:
            if not line.endswith(b"\n"):
                f.seek(-len(line), os.SEEK_CUR)  # a line being written
                break
            if self.cri:
                entry = _cri_entry(line)
                if entry is not None:
                    yield entry
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _cri_entry(line: bytes) -> dict[str, Any] | None:
    """A CRI log line (``TIME STREAM TAG CONTENT``) in json-file's shape: a
    full line's content gets its newline back, a partial one's does not."""
    parts = line[:-1].split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    content = parts[3] if len(parts) == 4 else b""
    if parts[2] == b"F":
        content += b"\n"
    return {"log": content, "stream": parts[1].decode(), "time": parts[0].decode(errors="replace")}


def _frame_ends_at(f: IO[bytes], pos: int) -> bool:
    """Whether a whole frame of a local log ends at ``pos`` (its trailing size
    matches its leading one)."""
    if pos < 8:
        return False
    f.seek(pos - 4)
    trailer = f.read(4)
    start = pos - 8 - int.from_bytes(trailer, "big")
    if start < 0:
        return False
    f.seek(start)
    return f.read(4) == trailer


def _local_entry(e: locallog.Entry) -> dict[str, Any]:
    """A local entry in json-file's shape (time: the nanoseconds, kept exact)."""
    return {"log": e.line, "stream": e.source, "time_ns": e.time_ns, "attrs": dict(e.attrs)}


def _details(entry: dict[str, Any]) -> bytes:
    """docker logs --details: the entry's attrs, keys sorted, query-escaped,
    k=v joined by commas, then a space (moby's attrsByteSlice)."""
    attrs = entry.get("attrs")
    if not isinstance(attrs, dict):
        attrs = {}
    return (",".join(f"{quote_plus(str(k))}={quote_plus(str(v))}"
                     for k, v in sorted(attrs.items())) + " ").encode()


def _entry_time(entry: dict[str, Any]) -> float:
    if "time_ns" in entry:
        return float(entry["time_ns"]) / 1e9
    return parse_rfc3339(entry.get("time"))


def _wanted(entry: dict[str, Any], stdout: bool, stderr: bool, since: float,
            until: float) -> bool:
    stream = entry.get("stream")
    if stream == "stdout" and not stdout or stream == "stderr" and not stderr:
        return False
    if since or until:
        t = _entry_time(entry)
        if since and t < since:
            return False
        if until and t > until:
            return False
    return True


def _render(entry: dict[str, Any], timestamps: bool, details: bool = False) -> tuple[int, bytes]:
    data = entry.get("log", "")
    if isinstance(data, str):
        data = data.encode()
    if details:
        data = _details(entry) + data
    if timestamps:
        if "time_ns" in entry:
            stamp = rfc3339_nano_fixed(entry["time_ns"])
        else:
            stamp = entry.get("time", "")
        data = stamp.encode() + b" " + data
    return (1 if entry.get("stream") == "stdout" else 2), data


def reader_for(c: Container) -> _Reader | None:
    """The readable log of ``c``, or None (none; syslog with its cache disabled)."""
    log = c.host_config.get("LogConfig") or {}
    driver = log.get("Type") or "json-file"
    if driver == "json-file":
        return _Reader(c.log_path, local=False) if c.log_path else None
    if driver == "cri":
        return _Reader(c.log_path, local=False, cri=True) if c.log_path else None
    if driver == "local":
        return _Reader(local_log_path(c), local=True)
    if driver == "syslog" and _cache_enabled(log.get("Config") or {}):
        return _Reader(cache_log_path(c), local=True)
    return None


def replay_entries(c: Container) -> Iterator[tuple[str, bytes]]:
    """(stream, data) of each entry of ``c``'s log so far, for an attach with
    logs; none when its driver cannot be read back."""
    reader = reader_for(c)
    if reader is None:
        return
    for e in reader.entries():
        data = e.get("log", "")
        yield str(e.get("stream")), data if isinstance(data, bytes) else data.encode()


def read_logs(c: Container, *, stdout: bool, stderr: bool, follow: bool, since: float,
              until: float, tail: str | None, timestamps: bool,
              cancelled: Callable[[], bool] | None,
              details: bool = False) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) log entries of ``c``; LogsNotReadable now (before the
    API's 200) when its driver cannot be read back, dockerd's words and 501."""
    reader = reader_for(c)
    if reader is None:
        raise LogsNotReadable(READ_UNSUPPORTED)
    return _read(c, reader, stdout=stdout, stderr=stderr, follow=follow, since=since,
                 until=until, tail=tail, timestamps=timestamps, cancelled=cancelled,
                 details=details)


def _read(c: Container, reader: _Reader, *, stdout: bool, stderr: bool, follow: bool,
          since: float, until: float, tail: str | None, timestamps: bool,
          cancelled: Callable[[], bool] | None, details: bool) -> Iterator[tuple[int, bytes]]:
    path = reader.path
    n = -1
    if tail not in (None, "", "all"):
        try:
            n = int(tail)
        except ValueError:
            n = -1
    entries = reader.tail(n, lambda e: _wanted(e, stdout, stderr, since, until)) \
        if n >= 0 else None
    if entries is None:
        entries = [e for e in reader.entries() if _wanted(e, stdout, stderr, since, until)]
        if n >= 0:
            entries = entries[-n:] if n else []
    # where the existing content ended, to follow from there
    inode: int | None
    if reader.end is not None:
        inode, offset = reader.end
    else:  # (no current file yet)
        inode, offset = None, 0
    for e in entries:
        yield _render(e, timestamps, details)
    if not follow or (until and until < time.time()):
        return
    seq = c.exit_seq
    running = c.state.running
    f: IO[bytes] | None = None
    try:
        while True:
            if cancelled is not None and cancelled():
                return
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 -- closed in finally
                    st = os.fstat(f.fileno())
                    if st.st_ino == inode:
                        f.seek(offset)
                    inode = st.st_ino
                except FileNotFoundError:
                    f = None
            got = False
            if f is not None:
                for e in reader.follow(f):
                    got = True
                    if _wanted(e, stdout, stderr, since, until):
                        yield _render(e, timestamps, details)
                try:
                    if os.stat(path).st_ino != inode:  # rotated: finish old, then new
                        f.close()
                        f = None
                        offset = 0
                        continue
                except FileNotFoundError:
                    pass
            if not got:
                stopped = (not c.state.running) or c.exit_seq != seq or c.removed
                if stopped or not running:
                    return  # one last read happened above after the exit: done
                time.sleep(0.05)
    finally:
        if f is not None:
            f.close()
