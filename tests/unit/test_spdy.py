"""pybox.cri.spdy against known bytes: SPDY/3's header dictionary, and frames
written by moby/spdystream's Go framer (the one client-go's remotecommand and
portforward clients use, vendored in cri-tools v1.26.1), captured once with a
Go program that printed spdy.Framer's output in hex.  Go's deflate and zlib's
differ, so compressed header blocks are checked by decoding Go's and by
round-tripping ours (Go's framer read ours in the same capture session)."""

import hashlib
import json
import queue
import socket
import struct
import threading
import zlib

import pytest

from pybox.cri import spdy
from pybox.cri.stream_backends import Demux, ResizeReader, status_exit_code, status_internal

pytestmark = pytest.mark.unit

# spdystream's spdy.Framer (one framer: the three header blocks share its zlib stream)
GO_SYN_STREAM_ERROR = bytes.fromhex(  # stream 1, streamType: error
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a68"
    "00000000ffff")
GO_SYN_STREAM_DATA_FIN = bytes.fromhex(  # stream 3, FIN, streamType: data, port: 8080
    "80030001010000220000000300000000000002651c0c295029930829b08bc079c3c2c0c200000000ffff")
GO_SYN_REPLY = bytes.fromhex("800300020000000e000000026260606000000000ffff")  # stream 2, no headers
# DATA(5, FIN, "hi"), PING(7), GOAWAY(9, OK), RST_STREAM(3, CANCEL), WINDOW_UPDATE(3, 1000)
GO_PLAIN = bytes.fromhex(
    "00000005010000026869"
    "800300060000000400000007"
    "80030007000000080000000900000000"
    "80030003000000080000000300000005"
    "800300090000000800000003000003e8")


def test_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == \
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_decodes_go_frames_in_order():
    f = spdy.Framer()
    (syn,) = f.feed(GO_SYN_STREAM_ERROR)
    assert syn == spdy.SynStream(1, 0, 0, 0, {"streamtype": ["error"]})
    (syn,) = f.feed(GO_SYN_STREAM_DATA_FIN)
    assert syn == spdy.SynStream(3, 0, 0, spdy.FLAG_FIN, {"streamtype": ["data"], "port": ["8080"]})
    (reply,) = f.feed(GO_SYN_REPLY)
    assert reply == spdy.SynReply(2, 0, {})
    assert list(f.feed(GO_PLAIN)) == [
        spdy.DataFrame(5, spdy.FLAG_FIN, b"hi"), spdy.Ping(7), spdy.GoAway(9, 0),
        spdy.RstStream(3, spdy.RstStatus.CANCEL), spdy.WindowUpdate(3, 1000)]


def test_second_header_block_needs_the_first():
    """One zlib stream per direction: Go's second block alone cannot be read."""
    with pytest.raises(spdy.SpdyError):
        list(spdy.Framer().feed(GO_SYN_STREAM_DATA_FIN))


def test_feed_byte_by_byte():
    f = spdy.Framer()
    frames = []
    for b in GO_SYN_STREAM_ERROR + GO_PLAIN:
        frames += f.feed(bytes([b]))
    assert [type(x) for x in frames] == [spdy.SynStream, spdy.DataFrame, spdy.Ping, spdy.GoAway,
                                         spdy.RstStream, spdy.WindowUpdate]


def test_plain_frames_are_gos_bytes():
    f = spdy.Framer()
    out = (f.data(5, b"hi", fin=True) + f.ping(7) + f.goaway(9) + f.rst_stream(3, 5)
           + f.window_update(3, 1000))
    assert out == GO_PLAIN


def test_our_header_blocks_round_trip_on_one_stream():
    ours, theirs = spdy.Framer(), spdy.Framer()
    wire = ours.syn_reply(1, {}) + ours.syn_stream(2, {"streamType": ["stdout"], "port": ["80"]},
                                                    fin=True)
    wire += ours.headers(2, {"a": ["1", "2"]})
    frames = list(theirs.feed(wire))
    assert frames == [spdy.SynReply(1, 0, {}),
                      spdy.SynStream(2, 0, 0, spdy.FLAG_FIN, {"streamtype": ["stdout"],
                                                              "port": ["80"]}),
                      spdy.HeadersFrame(2, 0, {"a": ["1", "2"]})]
    # the first block starts the zlib stream with the dictionary's id (FDICT)
    block = wire[12:12 + 2]
    assert block[0] & 0x0F == 8 and block[1] & 0x20
    assert struct.unpack(">I", wire[14:18])[0] == zlib.adler32(spdy.DICTIONARY)


def test_header_block_layout():
    raw = spdy.encode_header_block({"StreamType": ["error"], "x": ["a", "b"]})
    assert raw == (b"\x00\x00\x00\x02" b"\x00\x00\x00\x0astreamtype" b"\x00\x00\x00\x05error"
                   b"\x00\x00\x00\x01x" b"\x00\x00\x00\x03a\x00b")
    assert spdy.decode_header_block(raw) == {"streamtype": ["error"], "x": ["a", "b"]}
    with pytest.raises(spdy.SpdyError):
        spdy.decode_header_block(raw[:-2])
    dup = b"\x00\x00\x00\x02" + (b"\x00\x00\x00\x01x\x00\x00\x00\x01a") * 2
    with pytest.raises(spdy.SpdyError, match="multiple headers"):
        spdy.decode_header_block(dup)


def test_bad_frames():
    with pytest.raises(spdy.SpdyError, match="version"):
        list(spdy.Framer().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"))
    with pytest.raises(spdy.SpdyError, match="zero"):
        list(spdy.Framer().feed(b"\x00\x00\x00\x00\x00\x00\x00\x00"))
    with pytest.raises(spdy.SpdyError, match="cut short"):
        list(spdy.Framer().feed(b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x00"))
    with pytest.raises(spdy.SpdyError, match="decompression"):
        list(spdy.Framer().feed(b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garb"))
    f = spdy.Framer()  # an unknown control type passes (spdystream drops it)
    (frame,) = f.feed(b"\x80\x03\x00\x0a\x00\x00\x00\x01z")
    assert frame == spdy.UnknownControl(10, 0, b"z")


class FakeChannel:
    def __init__(self, chunks):
        self.q = queue.SimpleQueue()
        for c in chunks:
            self.q.put(c)

    def read(self, timeout=None):
        return self.q.get(timeout=timeout)


def test_resize_events():
    """client-go's json.Encoder output, split anywhere; Go matches field names
    case-insensitively; junk is skipped."""
    ch = FakeChannel([b'{"Width":80,"Hei', b'ght":24}\n{"width":1', b'00,"height":30}\n',
                      b'{"Width":-1,"Height":2}\n[1]\n', b'{"Width":7,"Height":9}', b""])
    r = ResizeReader(ch)
    assert [r.next(1), r.next(1), r.next(1), r.next(1)] == [(24, 80), (30, 100), (9, 7), None]
    with pytest.raises(queue.Empty):
        ResizeReader(FakeChannel([])).next(0.01)


def test_demux_stdcopy():
    got = []
    d = Demux(False, lambda s, b: got.append((s, b)))
    frames = (bytes([1, 0, 0, 0]) + struct.pack(">I", 3) + b"out"
              + bytes([2, 0, 0, 0]) + struct.pack(">I", 3) + b"err")
    for i in range(len(frames)):
        d.feed(frames[i:i + 1])
    assert got == [(1, b"out"), (2, b"err")]
    got.clear()
    Demux(True, lambda s, b: got.append((s, b))).feed(b"\x02raw")
    assert got == [(1, b"\x02raw")]


def test_status_documents():
    """metav1.Status as Go's encoding/json writes it (client-go's errorDecoderV4
    reads the exit code from the ExitCode cause)."""
    s = status_exit_code(["sh", "-c", "exit 3"], 3)
    assert json.dumps(s, separators=(",", ":")) == (
        '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
        'error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",'
        '"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')
    i = status_internal("boom")
    assert i["code"] == 500 and i["reason"] == "InternalError"
    assert i["message"] == "Internal error occurred: boom"


def test_header_block_bomb_is_refused():
    """A small compressed block that inflates past MAX_HEADER_BLOCK ends the session."""
    raw = spdy.encode_header_block({"x": ["a" * (spdy.MAX_HEADER_BLOCK + 10)]})
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(block) < 2000
    frame = b"\x80\x03\x00\x02" + struct.pack(">I", 4 + len(block)) + b"\x00\x00\x00\x01" + block
    with pytest.raises(spdy.SpdyError, match="too large"):
        list(spdy.Framer().feed(frame))


def test_inbox_holds_back_a_fast_sender():
    box = spdy.Inbox(limit=10)
    box.put(b"0123456789")
    done = threading.Event()

    def more():
        box.put(b"abc")
        done.set()

    t = threading.Thread(target=more)
    t.start()
    assert not done.wait(0.2)  # full: the sender waits
    assert box.get(1) == b"0123456789"
    assert done.wait(5)
    t.join()
    box.end()
    assert box.get(1) == b"abc"
    assert box.get(1) == b"" and box.get(1) == b""
    with pytest.raises(queue.Empty):
        spdy.Inbox().get(0.01)
    stuck = spdy.Inbox(limit=1)
    stuck.put(b"x")
    t = threading.Thread(target=stuck.put, args=(b"y",))
    t.start()
    stuck.end()  # the end never waits, and releases a waiting sender
    t.join(5)
    assert not t.is_alive()


def test_session_stream_limit_and_forgetting(monkeypatch):
    monkeypatch.setattr(spdy, "MAX_STREAMS", 2)
    ours, theirs = socket.socketpair()
    session = spdy.SpdySession(ours, lambda s: True)
    reader = threading.Thread(target=session.run)
    reader.start()
    client = spdy.Framer()
    got = []

    def frames(n):
        while len(got) < n:
            got.extend(client.feed(theirs.recv(65536)))

    theirs.sendall(client.syn_stream(1, {"streamtype": ["a"]}) + client.syn_stream(3, {}) +
                   client.syn_stream(5, {}))
    frames(3)
    assert got == [spdy.SynReply(1, 0, {}), spdy.SynReply(3, 0, {}),
                   spdy.RstStream(5, spdy.RstStatus.REFUSED_STREAM)]
    s1 = session.accepted.get(timeout=5)
    assert s1.header("streamType") == "a"
    theirs.sendall(client.data(1, b"in", fin=True))
    assert s1.read(5) == b"in" and s1.read(5) == b""
    s1.write(b"out")
    s1.close()  # both halves over: forgotten, room for one more
    theirs.sendall(client.syn_stream(7, {}) + client.syn_stream(7, {}) + client.ping(9)
                   + client.ping(10))
    frames(8)
    assert got[3:] == [spdy.DataFrame(1, 0, b"out"), spdy.DataFrame(1, spdy.FLAG_FIN, b""),
                       spdy.SynReply(7, 0, {}),
                       spdy.RstStream(7, spdy.RstStatus.PROTOCOL_ERROR),  # ids must grow
                       spdy.Ping(9)]  # the client's ping echoed; an even one (ours) is not
    theirs.sendall(client.goaway(0))
    reader.join(5)
    assert not reader.is_alive()
    session.close()
    assert list(client.feed(theirs.recv(65536))) == [spdy.RstStream(3, spdy.RstStatus.CANCEL),
                                                      spdy.RstStream(7, spdy.RstStatus.CANCEL),
                                                      spdy.GoAway(7, 0)]
    ours.close()
    theirs.close()
