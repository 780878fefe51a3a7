"""A container's log file with docker's rotation (moby's loggerutils.LogFile),
shared by the json-file and local drivers: written by the monitor, read by pyboxd.

Rotation, as dockerd does it: before a write, a file that has reached
``max_size`` is rotated (``NAME`` -> ``NAME.1`` -> ... -> ``NAME.<max_files-1>``,
the oldest dropped; with ``max_files`` 1 the file is simply started again).  With
``compress`` the rotated file becomes ``NAME.1.gz`` (gzip whose header's extra
field holds ``{"lastTime": RFC3339Nano}``, the last entry's time, as moby
writes it), compressed by a short-lived child so the monitor's loop never stalls
on it; the next rotation waits for it (moby's rotateMu).
"""

from __future__ import annotations

import os
import select
import zlib

from pybox.formats.times import rfc3339_nano

TYPE_CHECKING = False  # (typing is not imported: the monitors' zygote loads this module)
if TYPE_CHECKING:
    from typing import IO

PERMS = 0o640
_CHUNK = 1 << 20


def compress_file(name: str, last_ns: int) -> None:
    """``name`` -> ``name.gz`` (then ``name`` removed), as moby's compressFile:
    gzip with the last entry's time in the header's extra field."""
    extra = b'{"lastTime":"' + rfc3339_nano(last_ns).encode() + b'"}'
    try:
        src = open(name, "rb")  # noqa: SIM115 -- closed below
    except FileNotFoundError:
        return
    out = name + ".gz"
    ok = False
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PERMS)
        try:
            # gzip header: magic, deflate, FEXTRA, mtime 0, xfl 0, OS 255 (Go's writer)
            head = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\x00\xff"
            _write_all(fd, head + len(extra).to_bytes(2, "little") + extra)
            comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            crc = 0
            size = 0
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                _write_all(fd, comp.compress(chunk))
            _write_all(fd, comp.flush() + (crc & 0xFFFFFFFF).to_bytes(4, "little")
                       + (size & 0xFFFFFFFF).to_bytes(4, "little"))
            ok = True
        finally:
            os.close(fd)
    finally:
        src.close()
        if ok:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        else:
            try:
                os.unlink(out)
            except FileNotFoundError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class RotatingFile:
    """One container log file being written, rotated as dockerd rotates it.

    ``max_size`` < 0: never rotated.  ``max_files`` >= 1.
    """

    def __init__(self, path: str, max_size: int, max_files: int, compress: bool) -> None:
        self.path = path
        self.capacity = max_size
        self.max_files = max(1, max_files)
        self.compress = compress and self.max_files > 1
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PERMS)
        self.size = os.fstat(self.fd).st_size
        self.last_ns = 0
        self.compressor: int | None = None  # a pidfd: the child compressing NAME.1
        self.compressor_pid = 0

    def write(self, data: bytes, ts_ns: int) -> None:
        if self.capacity >= 0 and self.size >= self.capacity and self.size > 0:
            self.rotate()
        _write_all(self.fd, data)
        self.size += len(data)
        self.last_ns = ts_ns

    def rotate(self) -> None:
        self._wait_compressor()
        os.close(self.fd)
        name = self.path
        if self.max_files > 1:
            ext = ".gz" if self.compress else ""
            try:
                os.unlink(f"{name}.{self.max_files - 1}{ext}")
            except FileNotFoundError:
                pass
            for i in range(self.max_files - 1, 1, -1):
                try:
                    os.replace(f"{name}.{i - 1}{ext}", f"{name}.{i}{ext}")
                except FileNotFoundError:
                    pass
            os.replace(name, name + ".1")
        self.fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                          PERMS)
        self.size = 0
        if self.compress:
            self._compress(name + ".1", self.last_ns)

    def _compress(self, name: str, last_ns: int) -> None:
        """In a child (a fork of the single-threaded monitor): the loop goes on."""
        try:
            pid = os.fork()
        except OSError:
            compress_file(name, last_ns)
            return
        if pid == 0:
            code = 1
            try:
                compress_file(name, last_ns)
                code = 0
            finally:
                os._exit(code)
        self.compressor_pid = pid
        self.compressor = os.pidfd_open(pid)

    def _wait_compressor(self) -> None:
        if self.compressor is None:
            return
        select.select([self.compressor], [], [])  # readable once the child ended
        os.close(self.compressor)
        self.compressor = None
        try:
            os.waitpid(self.compressor_pid, 0)
        except ChildProcessError:
            pass  # (the monitor's sweep of its children reaped it)

    def close(self) -> None:
        self._wait_compressor()
        os.close(self.fd)


def log_files(path: str) -> list[str]:
    """A log's existing files, oldest first (rotated ones possibly ``.gz``)."""
    out = []
    n = 1
    while True:
        if os.path.exists(f"{path}.{n}"):
            out.append(f"{path}.{n}")
        elif os.path.exists(f"{path}.{n}.gz"):
            out.append(f"{path}.{n}.gz")
        else:
            break
        n += 1
    out.reverse()
    if os.path.exists(path):
        out.append(path)
    return out


def open_log(name: str) -> IO[bytes]:
    """A log file for reading, decompressed when rotated with compression."""
    if name.endswith(".gz"):
        import gzip  # noqa: PLC0415 -- pyboxd's reader only: kept out of the monitors' zygote

        # (a GzipFile is a binary file; typeshed does not make it an IO[bytes])
        return gzip.open(name, "rb")  # type: ignore[return-value]
    return open(name, "rb")
