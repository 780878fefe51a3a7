"""pybox.engine.tarstream: docker cp's streaming tar reader, against archives
Python's tarfile (and GNU tar's formats) write, and against broken ones."""

import bz2
import gzip
import io
import lzma
import tarfile

import pytest

from pybox.engine import tarstream
from pybox.errors import BadRequest

pytestmark = pytest.mark.unit


def archive(fmt, *infos):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name, kind=tarfile.REGTYPE, size=0, **kw):
    i = tarfile.TarInfo(name)
    i.type, i.size = kind, size
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def read_all(data, chunk=4096):
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    out = []
    reader = tarstream.open_body(iter(chunks))
    for m in reader:
        content = b"".join(bytes(v) for v in reader.data(m)) if m.isreg() else None
        out.append((m, content))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 513, 65536])
def test_formats_and_chunkings(fmt, chunk):
    long = "d/" + "x" * 150 + "/file"  # a ustar prefix, a GNU long name, a PAX path
    data = archive(fmt,
                   (info("dir/", tarfile.DIRTYPE, mode=0o750, uid=7, gid=8, mtime=1234), None),
                   (info("dir/a", size=5, mode=0o4755, mtime=99), b"hello"),
                   (info(long, size=3), b"abc"),
                   (info("dir/l", tarfile.SYMTYPE, linkname="../" + "t" * 120
                         if fmt != tarfile.USTAR_FORMAT else "a"), None),
                   (info("dir/h", tarfile.LNKTYPE, linkname="dir/a"), None),
                   (info("dev", tarfile.CHRTYPE, devmajor=1, devminor=5), None),
                   (info("pipe", tarfile.FIFOTYPE), None),
                   (info("empty", size=0), b""))
    got = read_all(data, chunk)
    names = [m.name for m, _ in got]
    assert names == ["dir", "dir/a", long, "dir/l", "dir/h", "dev", "pipe", "empty"] or \
        names == ["dir/", "dir/a", long, "dir/l", "dir/h", "dev", "pipe", "empty"]
    by = {m.name.rstrip("/"): (m, c) for m, c in got}
    d = by["dir"][0]
    assert d.isdir() and (d.mode, d.uid, d.gid, d.mtime_ns) == (0o750, 7, 8, 1234 * 10**9)
    assert by["dir/a"][1] == b"hello" and by["dir/a"][0].mode == 0o4755
    assert by[long][1] == b"abc"
    assert by["dir/l"][0].issym() and by["dir/l"][0].linkname.endswith(("t" * 120, "a"))
    assert by["dir/h"][0].islnk() and by["dir/h"][0].linkname == "dir/a"
    assert (by["dev"][0].ischr(), by["dev"][0].devmajor, by["dev"][0].devminor) == (True, 1, 5)
    assert by["pipe"][0].isfifo() and by["empty"][1] == b""


def test_pax_values_win_and_unread_data_is_skipped():
    i = info("f", size=4, uid=3, mtime=5)
    i.pax_headers = {"uid": "3000000", "mtime": "1600000000.25",
                     "SCHILY.xattr.security.capability": "\x01\x02"}
    data = archive(tarfile.PAX_FORMAT, (i, b"data"), (info("g", size=2), b"ok"))
    reader = tarstream.open_body([data])
    first = next(iter(reader))
    assert (first.uid, first.mtime_ns) == (3000000, 1_600_000_000_250_000_000)
    assert first.xattrs == {"security.capability": b"\x01\x02"}
    rest = list(reader)  # f's data never read: skipped
    assert [m.name for m in rest] == ["g"]


def test_base256_numbers_and_non_utf8_names():
    i = info("n\udcffame", size=1, uid=0o10000000)  # too big for octal: GNU base-256
    data = archive(tarfile.GNU_FORMAT, (i, b"x"))
    (m, content), = read_all(data)
    assert m.uid == 0o10000000 and m.name == "n\udcffame" and content == b"x"


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_bodies(compress):
    data = archive(tarfile.PAX_FORMAT, (info("f", size=2), b"hi"))
    (m, content), = read_all(compress(data), chunk=7)
    assert m.name == "f" and content == b"hi"


def test_broken_archives_are_bad_requests():
    good = archive(tarfile.PAX_FORMAT, (info("f", size=600), b"y" * 600))
    bad_sum = bytearray(good)
    bad_sum[0] ^= 1
    for data in (good[:700], bytes(bad_sum), good[:100], b"\x1f\x8b" + b"garbage" * 10):
        with pytest.raises(BadRequest):
            read_all(data)
    sparse = info("s", tarfile.GNUTYPE_SPARSE)
    with pytest.raises(BadRequest, match="sparse"):
        read_all(archive(tarfile.GNU_FORMAT, (sparse, None)))
    huge = info("p", size=0)
    huge.pax_headers = {"comment": "c" * (2 << 20)}
    with pytest.raises(BadRequest, match="header of"):
        read_all(archive(tarfile.PAX_FORMAT, (huge, b"")))


def test_a_clean_end_without_zero_blocks_and_an_empty_body():
    data = archive(tarfile.PAX_FORMAT, (info("f", size=1), b"z"))
    assert [m.name for m, _ in read_all(data[:1024])] == ["f"]
    assert read_all(b"") == []


def test_member_names_against_the_destination():
    from pybox.engine.archive import member_path

    assert member_path("/tmp/x") == "tmp/x"
    assert member_path("//tmp//x/") == "tmp/x"
    assert member_path("/../../x") == "x"
    assert member_path("a/./b/../c") == "a/c"
    assert member_path(".") == member_path("./") == member_path("/") == ""
    assert member_path("../x") is None and member_path("a/../../x") is None
    assert member_path("..") is None
