"""The monitor's log writer for a container, from what pyboxd asked for.

pyboxd (pybox.engine.logs.monitor_log) resolves the driver and its options --
validated, defaults applied, the tag rendered -- into a plain dict; here that
dict becomes the object the monitor feeds the container's output to
(``write(stream, data)``, ``close()``), or None (the none driver):

- json-file: pybox.monitor.jsonlog.LogWriter;
- local: a Copier into a LocalSink (docker's compact format);
- syslog: a Copier into a SyslogSink, plus a LocalSink cache when dual
  logging is on (docker's default: ``docker logs`` reads the cache);
- cri: pybox.monitor.crilog.CRILogWriter (the CRI log format, at the path
  kubelet names; set only by pyboxd's CRI, never from a Docker API body).
"""

from __future__ import annotations

from pybox.monitor.crilog import CRILogWriter
from pybox.monitor.jsonlog import LogWriter
from pybox.monitor.locallog import Copier, LocalSink
from pybox.monitor.syslog import SyslogSink

TYPE_CHECKING = False  # (typing is not imported: the monitors' zygote loads this module)
if TYPE_CHECKING:
    from typing import Any

    from pybox.monitor.locallog import Sink


class LogDriverError(Exception):
    """The driver could not be set up: the start fails with docker's
    'failed to initialize logging driver: ...'."""


def open_writer(spec: dict[str, Any]) -> LogWriter | Copier | CRILogWriter | None:
    """The writer for ``spec`` (``driver``, ``path``, ``max_size``,
    ``max_files``, ``compress``, ``attrs``, ``syslog``, ``cache``; cri's
    ``max_line``)."""
    driver = spec.get("driver") or "json-file"
    try:
        if driver == "none":
            return None
        attrs = [(str(k), str(v)) for k, v in spec.get("attrs") or ()]
        if driver == "json-file":
            return LogWriter(spec["path"], spec.get("max_size"), spec.get("max_files"),
                             bool(spec.get("compress")), attrs)
        if driver == "cri":
            return CRILogWriter(spec["path"], spec.get("max_line"))
        if driver == "local":
            return Copier([LocalSink(spec["path"], int(spec["max_size"]),
                                     int(spec["max_files"]), bool(spec["compress"]), attrs)])
        if driver == "syslog":
            sinks: list[Sink] = [SyslogSink(spec["syslog"])]
            cache = spec.get("cache")
            if cache:
                try:
                    sinks.append(LocalSink(cache["path"], int(cache["max_size"]),
                                           int(cache["max_files"]), bool(cache["compress"]),
                                           attrs))
                except OSError as e:
                    sinks[0].close()
                    raise LogDriverError(f"error setting up local container log cache: {e}") \
                        from None
            return Copier(sinks)
    except OSError as e:
        raise LogDriverError(str(e)) from None
    raise LogDriverError(f"logger: no log driver named '{driver}' is registered")
