"""A plain tar context kept as it came and indexed (pybox.build.context's
ContextFiles): its sources' checksums, lookups and errors are the ones the
extracted context gives (pybox.build.copy on disk), and whatever the index
cannot stand for (compressed, links, devices, duplicates, a member without its
directory) is extracted as it arrives, as before.  The builds themselves (a
cached rebuild that never extracts, a miss that does) run in test_builder.py
and test_corpus.py through the docker CLI."""

import gzip
import io
import os
import tarfile

import pytest

from pybox.build import context as build_context
from pybox.build import copy as build_copy
from pybox.errors import BadRequest, BuildError, PyboxError


def member(name, data=None, *, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = link
    if data is not None:
        info.size = len(data)
    return info, data


def tar_of(*members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def chunks_of(body, size=700):  # small pieces, as the docker CLI's chunked body
    return [body[i:i + size] for i in range(0, len(body), size)]


DIR = tarfile.DIRTYPE
TREE = [
    member("Dockerfile", b"FROM scratch\nCOPY . /\n"),
    member(".dockerignore", b"Dockerfile\n.dockerignore\n"),
    member("a", kind=DIR, mode=0o750, uid=12, gid=34),
    member("a/b.txt", b"bee\n" * 1000, mode=0o4755),
    member("a/empty", b""),
    member("a/sub", kind=DIR, mode=0o1777),
    member("a/sub/deep.txt", b"deep", uid=1000, gid=1000),
    member("a/sub/x y", b"spaced"),
    member("c.txt", b"see", mode=0o600),
    member("d", kind=DIR),
    member("d/\u00e9t\u00e9.txt", b"summer"),
    member("./z.txt", b"last"),
]
SOURCES = [["."], ["a"], ["a/"], ["a/b.txt"], ["/a/sub/../b.txt"], ["*.txt"], ["a/*"],
           ["?/sub"], ["d", "c.txt"], ["a/sub/deep.txt", "a/empty"], ["z.txt"]]
MISSING = [["Dockerfile"], [".dockerignore"], ["nope"], ["c.txt/x"], ["*.none"]]


@pytest.fixture
def data_root(tmp_path):
    return str(tmp_path / "root")


def described(sources):
    return [(s.host_path, s.rel, s.digest, s.is_dir) for s in sources]


def error_of(call):
    try:
        call()
    except BuildError as e:
        return str(e)
    return None


def test_indexed_sources_hash_as_the_extracted_files(data_root):
    ctx = build_context.open_context(data_root, chunks_of(tar_of(*TREE)))
    with ctx:
        files = ctx.files
        assert files is not None and not files.materialized
        assert os.listdir(ctx.context_dir) == []  # nothing extracted for the lookups
        assert ctx.dockerfile_content == b"FROM scratch\nCOPY . /\n"
        indexed = {tuple(srcs): described(files.collect_sources(srcs, "COPY")) for srcs in SOURCES}
        missing = {tuple(srcs): error_of(lambda s=srcs: files.collect_sources(s, "COPY"))
                   for srcs in MISSING}
        files.materialize()
        assert sorted(os.listdir(ctx.context_dir)) == ["a", "c.txt", "d", "z.txt"]
        assert not os.path.exists(os.path.join(ctx.root, build_context.SPOOL))  # its disk back
        for srcs in SOURCES:
            on_disk = described(build_copy.collect_sources(ctx.context_dir, srcs, "COPY"))
            assert indexed[tuple(srcs)] == on_disk, srcs
            assert described(files.collect_sources(srcs, "COPY")) == on_disk, srcs
        for srcs in MISSING:
            assert missing[tuple(srcs)] is not None
            assert missing[tuple(srcs)] == error_of(
                lambda s=srcs: build_copy.collect_sources(ctx.context_dir, s, "COPY")), srcs
        st = os.stat(os.path.join(ctx.context_dir, "a"))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o750, 12, 34)
    assert not os.path.exists(ctx.root)


@pytest.mark.parametrize("name, expected", [
    ("Dockerfile", b"FROM one\n"), ("/sub/../Dockerfile", b"FROM one\n"),
    ("sub/Dockerfile.dev", b"FROM two\n")])
def test_dockerfile_lookup_in_the_index(data_root, name, expected):
    body = tar_of(member("Dockerfile", b"FROM one\n"), member("sub", kind=DIR),
                  member("sub/Dockerfile.dev", b"FROM two\n"))
    with build_context.open_context(data_root, [body], dockerfile=name) as ctx:
        assert ctx.files is not None
        assert ctx.dockerfile_content == expected


def test_dockerfile_errors_in_the_index_as_on_disk(data_root):
    body = tar_of(member("dockerfile", b"FROM lower\n"), member("empty", b""),
                  member("dir", kind=DIR))
    with build_context.open_context(data_root, [body]) as ctx:
        assert ctx.files is not None and ctx.dockerfile_content == b"FROM lower\n"
    for name, error in (("empty", BadRequest), ("dir", PyboxError), ("nope", PyboxError),
                        ("../../etc/passwd", PyboxError)):
        with pytest.raises(error) as raised:
            build_context.open_context(data_root, [body], dockerfile=name)
        assert "Cannot locate" in str(raised.value) or "empty" in str(raised.value) \
            or "outside the build context" in str(raised.value)
    assert os.listdir(os.path.join(data_root, build_context.CONTEXTS)) == []


def test_dockerignore_removal_reaches_the_extracted_context(data_root):
    body = tar_of(member("Dockerfile", b"FROM x\n"), member(".dockerignore", b"Dockerfile\n"),
                  member("keep", b"k"))
    with build_context.open_context(data_root, [body]) as ctx:
        assert ctx.files is not None
        assert ctx.dockerfile_content == b"FROM x\n"
        assert [s.rel for s in ctx.files.collect_sources(["."], "COPY")] == [""]
        digest = ctx.files.collect_sources(["."], "COPY")[0].digest
        ctx.files.materialize()
        assert sorted(os.listdir(ctx.context_dir)) == [".dockerignore", "keep"]
        assert build_copy.collect_sources(ctx.context_dir, ["."], "COPY")[0].digest == digest


@pytest.mark.parametrize("members", [
    [member("link", kind=tarfile.SYMTYPE, link="Dockerfile")],
    [member("hard", kind=tarfile.LNKTYPE, link="Dockerfile")],
    [member("orphan/file", b"no dir before it")],
    [member("Dockerfile", b"FROM twice\n")],
    [member("fifo", kind=tarfile.FIFOTYPE)],
], ids=["symlink", "hardlink", "no-parent", "duplicate", "fifo"])
def test_what_the_index_cannot_stand_for_is_extracted(data_root, members):
    body = tar_of(member("Dockerfile", b"FROM first\n"), *members, member("after", b"a"))
    with build_context.open_context(data_root, chunks_of(body, 300)) as ctx:
        assert ctx.files is None
        names = os.listdir(ctx.context_dir)
        assert "after" in names and "Dockerfile" in names
        assert not os.path.exists(os.path.join(ctx.root, build_context.SPOOL))


def test_compressed_context_is_extracted(data_root):
    body = gzip.compress(tar_of(member("Dockerfile", b"FROM z\n")))
    with build_context.open_context(data_root, chunks_of(body, 10)) as ctx:
        assert ctx.files is None
        assert os.listdir(ctx.context_dir) == ["Dockerfile"]


def test_hostile_member_after_plain_ones_still_refused(data_root):
    body = tar_of(member("Dockerfile", b"FROM x\n"), member("a", kind=DIR),
                  member("../escape", b"x"))
    with pytest.raises(BadRequest):
        build_context.open_context(data_root, chunks_of(body, 100))
    assert not os.path.exists(os.path.join(data_root, build_context.CONTEXTS, "..", "escape"))
    assert os.listdir(os.path.join(data_root, build_context.CONTEXTS)) == []


def test_truncated_plain_context_refused(data_root):
    body = tar_of(member("Dockerfile", b"FROM x\n"), member("big", b"y" * 5000))[:3000]
    with pytest.raises(BadRequest):
        build_context.open_context(data_root, chunks_of(body))
    assert os.listdir(os.path.join(data_root, build_context.CONTEXTS)) == []
