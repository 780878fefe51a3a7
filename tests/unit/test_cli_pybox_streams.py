"""stdcopy demultiplexing, detach keys, and the session copy loop on a socket
pair standing in for a hijacked connection."""

import os
import socket

import pytest

from pybox.cli.pybox.client import RawStream
from pybox.cli.pybox.session import DetachDetector, detach_key_bytes, pump
from pybox.cli.pybox.stdcopy import Demuxer, StreamError, frame

pytestmark = pytest.mark.unit


def test_demux_partial_frames():
    data = frame(1, b"hi\n") + frame(2, b"err\n") + frame(1, b"")
    d = Demuxer()
    out = []
    for i in range(len(data)):          # one byte at a time
        out += d.feed(data[i:i + 1])
    assert out == [(1, b"hi\n"), (2, b"err\n"), (1, b"")] and d.pending == 0
    with pytest.raises(StreamError, match="error from daemon in stream: boom"):
        Demuxer().feed(frame(3, b"boom"))


def test_detach_keys():
    assert detach_key_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert detach_key_bytes("ctrl-x,x") == b"\x18x"
    assert detach_key_bytes("ctrl-@,ctrl-[") == b"\x00\x1b"
    with pytest.raises(ValueError, match="Invalid detach keys"):
        detach_key_bytes("ctrl-pp")
    d = DetachDetector(b"\x10\x11")
    assert d.feed(b"ab\x10") == (b"ab", False)           # held back: could be the keys
    assert d.feed(b"c") == (b"\x10c", False)              # it was not
    assert d.feed(b"\x10\x10") == (b"\x10", False)
    assert d.feed(b"\x11rest") == (b"", True)


def _session(data_from_daemon, tty, stdin_data=None, keys=None):
    ours, daemon = socket.socketpair()
    daemon.sendall(data_from_daemon)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_fd = None
    if stdin_data is not None:
        in_r, in_w = os.pipe()
        os.write(in_w, stdin_data)
        os.close(in_w)
        in_fd = in_r
    if keys is None:
        daemon.shutdown(socket.SHUT_WR)
    result = pump(RawStream(ours), tty=tty, stdin_fd=in_fd, stdout_fd=out_w, stderr_fd=err_w,
                  detach_keys=keys)
    os.close(out_w)
    os.close(err_w)
    daemon.settimeout(1)
    try:
        received = daemon.recv(65536)
    except TimeoutError:
        received = None
    return result, os.read(out_r, 65536), os.read(err_r, 65536), received


def test_pump_demuxes_without_tty_and_half_closes():
    result, out, err, received = _session(frame(1, b"out\n") + frame(2, b"err\n"), tty=False)
    assert (result, out, err) == ("eof", b"out\n", b"err\n")
    assert received == b""        # no stdin: the write side was shut at once


def test_pump_raw_with_tty_and_stdin():
    result, out, err, received = _session(b"raw\r\n", tty=True, stdin_data=b"ls\n")
    assert (result, out, err) == ("eof", b"raw\r\n", b"")


def test_pump_detaches_on_the_keys():
    result, out, _, received = _session(b"", tty=True, stdin_data=b"echo\x10\x11more",
                                        keys=b"\x10\x11")
    assert result == "detached" and received == b"echo"
