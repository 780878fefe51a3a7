"""docker cp as an attacker uses it (issue 13, points 1 and 6): archives whose
members climb out, hard links to host files, symlinks written through, and a
container that swaps a directory for a symlink while the host copies.  Every
path is the container's, resolved by the kernel inside its own root: what a
copy may reach is the container's tree, never the host's.

The race tests drive the API over the unix socket (one keep-alive connection),
1,000 copies each way, with a canary directory on the host that must stay
empty and a host secret that must never appear in an archive returned.
"""

import base64
import io
import json
import os
import shutil
import stat
import tarfile
import time
import uuid

import pytest

from support.host import mounts_under
from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]

RACE_COPIES = 1000


# -- helpers ----------------------------------------------------------------------------------
def make_tar(*members):
    """members: (name, bytes) files, (name, "->", target) symlinks,
    (name, "=>", target) hard links, (name, "/") directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m[0])
            info.mtime = 1_600_000_000
            if len(m) == 3:
                info.type = tarfile.SYMTYPE if m[1] == "->" else tarfile.LNKTYPE
                info.linkname = m[2]
                tar.addfile(info)
            elif m[1] == "/":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(m[1]), 0o644
                tar.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


class Api:
    """A keep-alive connection to pyboxd's socket for many archive calls."""

    def __init__(self, pyboxd):
        self.socket = pyboxd.socket
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.socket)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp.headers, data
            except (ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def put(self, cid, path, data, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return self.call("PUT", f"/containers/{cid}/archive?path={path}" + (f"&{q}" if q else ""),
                         body=data, headers={"Content-Type": "application/x-tar"})

    def get(self, cid, path):
        return self.call("GET", f"/containers/{cid}/archive?path={path}")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture
def api(pyboxd):
    a = Api(pyboxd)
    yield a
    a.close()


def members_of(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = {}
        for m in tar:
            out[m.name] = (m, tar.extractfile(m).read() if m.isreg() else None)
        return out


@pytest.fixture
def host_secret():
    """A root-only host file holding a unique secret (never to be read)."""
    token = f"host-secret-{uuid.uuid4().hex}"
    path = f"/tmp/pybox-secret-{uuid.uuid4().hex[:10]}"
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    yield path, token
    os.unlink(path)


@pytest.fixture
def canary():
    """An empty host directory whose name a container may point symlinks at:
    it must stay empty (no host write)."""
    path = f"/tmp/pybox-canary-{uuid.uuid4().hex[:10]}"
    os.mkdir(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(pyboxd, name, setup, *opts, loop="exec sleep 1000"):
    """A busybox container that runs ``setup``, then ``loop``; returns its id
    once the setup is done."""
    script = f"{setup}\ntouch /.ready\n{loop}"
    pyboxd.ok("run", "-d", "--name", name, *opts, "busybox", "sh", "-c", script)
    deadline = time.monotonic() + 30
    while pyboxd.docker("exec", name, "test", "-e", "/.ready").returncode != 0:
        assert time.monotonic() < deadline, pyboxd.docker("logs", name).stderr
        time.sleep(0.05)
    return pyboxd.inspect(name)["Id"]


def in_container(pyboxd, name, *cmd):
    return pyboxd.ok("exec", name, *cmd)


# -- member names -----------------------------------------------------------------------------
def test_absolute_member_names_land_in_the_destination(pyboxd, names, api, canary):
    """`docker cp - ctr:/` with a member named /tmp/... writes the container's
    /tmp, never the host's; into a subdirectory it lands below it (docker)."""
    name = names()
    cid = run(pyboxd, name, "mkdir /dest")
    host_target = os.path.join(canary, "abs")
    status, _, body = api.put(cid, "/", make_tar((host_target, b"absolute\n")))
    assert status == 200, body
    assert os.listdir(canary) == []
    assert in_container(pyboxd, name, "cat", host_target) == "absolute\n"
    status, _, body = api.put(cid, "/dest", make_tar(("/etc/abs-in-dest", b"x\n"),
                                                      ("/../../rooted", b"y\n")))
    assert status == 200, body
    assert in_container(pyboxd, name, "cat", "/dest/etc/abs-in-dest", "/dest/rooted") == "x\ny\n"
    assert not os.path.exists("/dest") and not os.path.exists("/rooted")
    # the same into a stopped container
    pyboxd.ok("stop", "-t", "0", name)
    status, _, body = api.put(cid, "/", make_tar((host_target + "-stopped", b"s\n")))
    assert status == 200, body
    assert os.listdir(canary) == []
    status, _, data = api.get(cid, host_target + "-stopped")
    assert status == 200 and members_of(data)["abs-stopped"][1] == b"s\n"


def test_dotdot_member_names_are_refused(pyboxd, names, api, canary):
    name = names()
    cid = run(pyboxd, name, "mkdir -p /d/sub")
    rel_to_canary = "../" * 12 + canary.lstrip("/") + "/dotdot"
    for member in ("../escaped", "sub/../../escaped", rel_to_canary, "sub/" + rel_to_canary):
        status, _, body = api.put(cid, "/d/sub", make_tar((member, b"x")))
        assert status == 400, (member, body)
        assert b"is outside of" in body
    assert os.listdir(canary) == []
    assert pyboxd.docker("exec", name, "test", "-e", "/d/escaped").returncode == 1


# -- hard links -------------------------------------------------------------------------------
def test_hard_links_to_host_files_are_refused(pyboxd, names, api, host_secret, tmp_path):
    """A hard-link member naming a host file (the issue's root-only file linked
    into a volume) or a path outside the destination gets nothing linked: the
    target is looked up below the destination only."""
    secret, token = host_secret
    before = os.stat(secret)
    bound = tmp_path / "bound"
    bound.mkdir()
    vol = f"cpvol-{uuid.uuid4().hex[:8]}"
    name = names()
    try:
        cid = run(pyboxd, name, "ln -s / /v/root", "-v", f"{vol}:/v",
                  "-v", f"{bound}:/b")
        for dest in ("/v", "/b"):
            for target in (secret, "../" * 10 + secret.lstrip("/"), "root" + secret):
                status, _, body = api.put(cid, dest, make_tar(("link", "=>", target)))
                assert status == 400, (dest, target, body)
                assert b"invalid hardlink" in body
        after = os.stat(secret)
        assert (after.st_nlink, stat.S_IMODE(after.st_mode), after.st_uid) == \
            (1, 0o600, 0) == (before.st_nlink, stat.S_IMODE(before.st_mode), before.st_uid)
        assert os.listdir(bound) == []
        assert pyboxd.docker("exec", name, "test", "-e", "/v/link").returncode == 1
        # a hard link to a file of the same archive, inside the destination, works
        status, _, body = api.put(cid, "/b", make_tar(("sub/first", b"linked\n"),
                                                      ("second", "=>", "sub/first"),
                                                      ("third", "=>", "/sub/first")))
        assert status == 200, body
        assert os.stat(bound / "second").st_ino == os.stat(bound / "sub" / "first").st_ino
        assert os.stat(bound / "third").st_nlink == 3
        assert (bound / "second").read_text() == "linked\n"
    finally:
        pyboxd.docker("rm", "-f", name)
        pyboxd.docker("volume", "rm", vol)


# -- symlinks ---------------------------------------------------------------------------------
def test_symlink_members_and_writes_through_them(pyboxd, names, api, canary, host_secret):
    """Symlinks are stored as given (docker); a later member through a symlink
    that leaves the destination is refused; one whose target climbs out is
    refused as by moby; existing symlinks of the container are resolved in
    the container's root, both ways."""
    secret, token = host_secret
    name = names()
    cid = run(pyboxd, name, f"mkdir -p /d /c{canary}; ln -s / /d/hostroot")
    status, _, body = api.put(cid, "/d", make_tar(("abs", "->", "/etc/hostname"),
                                                  ("rel", "->", "../d/abs")))
    assert status == 200, body
    assert in_container(pyboxd, name, "sh", "-c", "readlink /d/abs; readlink /d/rel") == \
        "/etc/hostname\n../d/abs\n"
    # through a symlink member pointing at / or at the canary's path
    for members in ((("esc", "->", "/"), ("esc" + canary + "/x", b"x")),
                    (("esc2", "->", canary), ("esc2/x", b"x")),
                    (("up", "->", "../../../../.."),)):
        status, _, body = api.put(cid, "/d", make_tar(*members))
        assert status == 400, (members, body)
    # through the container's own symlink to / (the destination path itself)
    status, _, body = api.put(cid, f"/d/hostroot{canary}", make_tar(("x", b"through\n")))
    assert status == 404, body  # the container has no such directory
    in_container(pyboxd, name, "mkdir", "-p", canary)
    status, _, body = api.put(cid, f"/d/hostroot{canary}", make_tar(("x", b"through\n")))
    assert status == 200, body
    assert in_container(pyboxd, name, "cat", f"{canary}/x") == "through\n"
    assert os.listdir(canary) == []
    # and out: a host path through the container's link is the container's
    status, _, body = api.get(cid, f"/d/hostroot{secret}")
    assert status == 404, body
    status, _, data = api.get(cid, "/d/hostroot/tmp/")
    assert status == 200 and token.encode() not in data
    status, headers, _ = api.call("HEAD", f"/containers/{cid}/archive?path=/d/hostroot")
    doc = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert doc["linkTarget"] == "/" and doc["mode"] & (1 << 27)


def test_fifos_and_devices_are_archived_never_opened(pyboxd, names, api):
    """A fifo (or a device node) in the tree is a header: a GET that opened
    it would hang on the fifo (or read the host's device)."""
    name = names()
    cid = run(pyboxd, name, "mkdir /d && mkfifo /d/fifo && mknod /d/mem c 1 1 && "
                            "echo data > /d/file")
    status, _, data = api.get(cid, "/d")
    assert status == 200
    got = members_of(data)
    assert got["d/fifo"][0].isfifo() and got["d/mem"][0].ischr()
    assert (got["d/mem"][0].devmajor, got["d/mem"][0].devminor) == (1, 1)
    assert got["d/file"][1] == b"data\n"
    status, _, data = api.get(cid, "/d/fifo")
    assert status == 200 and members_of(data)["fifo"][0].isfifo()


# -- the container's own /etc files -----------------------------------------------------------
@pytest.mark.parametrize("running", [True, False])
def test_etc_files_are_the_containers(pyboxd, names, api, running):
    """/etc/hostname, hosts and resolv.conf are the container's (the files
    mounted over the image's), running or stopped."""
    name = names()
    hostname = "h" + uuid.uuid4().hex[:10]
    cid = run(pyboxd, name, ":", "--hostname", hostname,
              "--add-host", f"{hostname}-db:10.11.12.13")
    record = pyboxd.inspect(name)
    expected = {"/etc/hostname": open(record["HostnamePath"], "rb").read(),
                "/etc/hosts": open(record["HostsPath"], "rb").read(),
                "/etc/resolv.conf": open(record["ResolvConfPath"], "rb").read()}
    assert expected["/etc/hostname"] == f"{hostname}\n".encode()
    assert b"10.11.12.13" in expected["/etc/hosts"]
    if running:
        for path, content in expected.items():
            assert in_container(pyboxd, name, "cat", path).encode() == content
    else:
        pyboxd.ok("stop", "-t", "0", name)
    for path, content in expected.items():
        status, _, data = api.get(cid, path)
        assert status == 200, data
        assert members_of(data)[os.path.basename(path)][1] == content, path
    proc = pyboxd.docker("cp", f"{name}:/etc/hostname", "-", raw=True)
    assert proc.returncode == 0 and members_of(proc.stdout)["hostname"][1] == \
        f"{hostname}\n".encode()


# -- mounts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("running", [True, False])
def test_cp_through_volumes_binds_and_tmpfs(pyboxd, names, api, tmp_path, running):
    """Copies reach what the container sees at the path -- its volume, bind or
    tmpfs -- also through the container's symlinks to them, and a read-only
    bind stays unwritten even when reached through a symlink."""
    bound, ro = tmp_path / "bound", tmp_path / "ro"
    bound.mkdir()
    ro.mkdir()
    vol = f"cpvol-{uuid.uuid4().hex[:8]}"
    name = names()
    try:
        script = ("ln -s /b /blink && ln -s /ro /rolink && ln -s /v /vlink && "
                  "echo in-tmpfs > /t/f")
        cid = run(pyboxd, name, script, "-v", f"{vol}:/v", "-v", f"{bound}:/b",
                  "-v", f"{ro}:/ro:ro", "--tmpfs", "/t")
        mountpoint = json.loads(pyboxd.ok("volume", "inspect", vol))[0]["Mountpoint"]
        if not running:
            pyboxd.ok("stop", "-t", "0", name)
        for dest, host in (("/b", bound), ("/blink", bound), ("/v", mountpoint),
                           ("/vlink", mountpoint)):
            member = "via-" + dest.strip("/")
            status, _, body = api.put(cid, dest, make_tar((member, b"copied\n")))
            assert status == 200, (dest, body)
            with open(os.path.join(host, member)) as f:
                assert f.read() == "copied\n"
        tar = make_tar(("f", b"copied\n"))
        for dest in ("/ro", "/rolink"):
            status, _, body = api.put(cid, dest, tar)
            assert status == 400, (dest, body)
        assert os.listdir(ro) == []
        (bound / "out").write_text("from the bind\n")
        status, _, data = api.get(cid, "/blink/out")
        assert status == 200 and members_of(data)["out"][1] == b"from the bind\n"
        if running:  # a tmpfs exists only while the container runs
            status, _, body = api.put(cid, "/t", tar)
            assert status == 200, body
            assert in_container(pyboxd, name, "cat", "/t/f") == "copied\n"
            status, _, data = api.get(cid, "/t/")
            assert status == 200 and members_of(data)["t/f"][1] == b"copied\n"
        else:  # the stopped view's mounts lived in its own namespace, and are gone
            merged = pyboxd.inspect(name)["GraphDriver"]["Data"]["MergedDir"]
            assert mounts_under(merged) == []
    finally:
        pyboxd.docker("rm", "-f", name)
        pyboxd.docker("volume", "rm", vol)


def test_put_body_is_streamed_not_held(pyboxd, names, api):
    """A large archive is extracted as it arrives: pyboxd's memory does not
    grow by its size."""
    name = names()
    cid = run(pyboxd, name, "mkdir /big")

    def rss_kib():
        with open(f"/proc/{pyboxd.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    size = 200 << 20
    header = tarfile.TarInfo("huge")
    header.size = size
    head = header.tobuf(tarfile.PAX_FORMAT)

    def body():
        yield head
        block = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            yield block
        yield b"\0" * 1024

    before = rss_kib()
    conn = UnixHTTPConnection(pyboxd.socket)
    try:
        conn.request("PUT", f"/containers/{cid}/archive?path=/big", body=body(),
                     headers={"Content-Type": "application/x-tar",
                              "Transfer-Encoding": "chunked"}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
    finally:
        conn.close()
    assert in_container(pyboxd, name, "stat", "-c", "%s", "/big/huge") == f"{size}\n"
    assert rss_kib() - before < 100 << 10


# -- the symlink-swap race, from inside the container -----------------------------------------
SWAP_IN = """
mkdir -p {canary}
""", """
while :; do
  rm -rf /w/d; mkdir -p /w/d{rel}
  rm -rf /w/d; ln -s {target} /w/d
done
"""


@pytest.mark.parametrize("target", ["/", "/tmp"])
def test_swap_race_copy_in_never_writes_the_host(pyboxd, names, api, canary, target):
    """1,000 copies into a directory the container keeps swapping for a
    symlink to / or /tmp: some fail, some land in the container, none
    reaches the host's canary directory."""
    name = names()
    rel = canary[len("/tmp"):] if target == "/tmp" else canary  # the canary via the link
    setup, loop = (part.format(canary=canary, target=target, rel=rel) for part in SWAP_IN)
    cid = run(pyboxd, name, setup, loop=loop)
    codes, errors = {}, []
    for i in range(RACE_COPIES):
        if i % 2:  # the destination path through the swapped directory
            status, _, body = api.put(cid, f"/w/d{rel}", make_tar((f"f{i}", b"x")))
        else:  # a member through it
            status, _, body = api.put(cid, "/w", make_tar((f"d{rel}/m{i}", b"x")))
        codes[status] = codes.get(status, 0) + 1
        if status not in (200, 400, 404):
            errors.append(body)
    assert os.listdir(canary) == [], codes
    assert codes.get(200, 0) > 0, codes  # the race was run: some copies landed
    assert set(codes) <= {200, 400, 404}, (codes, errors[:3])


SWAP_OUT = """
mkdir -p /w/dir/tmp
echo decoy > /w/dir/{secret_name}; echo decoy > /w/dir/tmp/{secret_name}
ln -s {target} /w/lnk
""", """
while :; do
  mv /w/dir /w/d; mv /w/d /w/dir
  mv /w/lnk /w/d; mv /w/d /w/lnk
done
"""


@pytest.mark.parametrize("target", ["/", "/tmp"])
def test_swap_race_copy_out_never_reads_the_host(pyboxd, names, api, host_secret, target):
    """1,000 copies out of a directory the container keeps swapping for a
    symlink to / or /tmp: the host's secret never appears in an archive."""
    secret, token = host_secret
    secret_name = os.path.basename(secret)
    name = names()
    rel = "" if target == "/tmp" else "/tmp"
    setup, loop = (part.format(secret_name=secret_name, target=target) for part in SWAP_OUT)
    cid = run(pyboxd, name, setup, loop=loop)
    codes = {}
    for i in range(RACE_COPIES):
        path = f"/w/d{rel}/{secret_name}" if i % 2 else f"/w/d{rel}/"
        status, _, data = api.get(cid, path)
        codes[status] = codes.get(status, 0) + 1
        assert token.encode() not in data, path
    assert codes.get(200, 0) > 0, codes
    assert set(codes) <= {200, 404}, codes


def test_archive_mode_owner_is_the_containers_user(pyboxd, names, tmp_path):
    """`docker cp -a` (copyUIDGID) gives what it copies to the container's
    Config.User, looked up in the container's own /etc/passwd; without -a the
    archive's owners stay."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--user", "nobody", "busybox", "sleep", "1000")
    src = tmp_path / "owned"
    src.write_text("x\n")
    os.chown(src, 0, 0)
    pyboxd.ok("cp", "-a", str(src), f"{name}:/tmp/with-a")
    pyboxd.ok("cp", str(src), f"{name}:/tmp/without-a")
    nobody = in_container(pyboxd, name, "sh", "-c", "grep ^nobody: /etc/passwd | cut -d: -f3,4")
    assert in_container(pyboxd, name, "stat", "-c", "%u:%g", "/tmp/with-a") == nobody
    assert in_container(pyboxd, name, "stat", "-c", "%u:%g", "/tmp/without-a") == "0:0\n"


def test_export_diff_and_commit_of_a_swapping_container_read_nothing_of_the_host(
        pyboxd, names, api, host_secret, canary, images_made):
    """docker export, diff and commit --pause=false walk a running container's
    tree from the host: a directory swapped for a symlink to /tmp meanwhile
    must bring in neither the host's files (export, commit) nor its names
    (diff: the host's /tmp has the canary, the container's directory never)."""
    secret, token = host_secret
    secret_name = os.path.basename(secret)
    name = names()
    setup, loop = (part.format(secret_name=secret_name, target="/tmp") for part in SWAP_OUT)
    cid = run(pyboxd, name, setup, loop=loop)
    for _ in range(40):
        status, _, data = api.call("GET", f"/containers/{cid}/export")
        assert status == 200 and token.encode() not in data
        status, _, data = api.call("GET", f"/containers/{cid}/changes")
        assert status == 200
        paths = [c["Path"] for c in json.loads(data) or ()]
        assert not [p for p in paths if os.path.basename(canary) in p]
    ref = f"pybox-cp-commit-{uuid.uuid4().hex[:8]}"
    for i in range(10):
        status, _, body = api.call("POST", f"/commit?container={cid}&repo={ref}&tag=t{i}"
                                           "&pause=false", body=b"{}",
                                   headers={"Content-Type": "application/json"})
        assert status == 201, body
        images_made.append(f"{ref}:t{i}")
        status, _, data = api.call("GET", f"/images/{ref}:t{i}/get")
        assert status == 200 and token.encode() not in data


def test_no_overwrite_dir_non_dir_and_replacement(pyboxd, names, api):
    """An existing entry in a member's way is replaced (a directory with its
    tree), unless noOverwriteDirNonDir refuses a directory for a non-directory
    or back, with moby's words; a directory over a directory merges."""
    name = names()
    cid = run(pyboxd, name, "mkdir -p /d/dir/sub /d/merge && echo f > /d/file && "
                            "echo keep > /d/merge/old")
    for members, path in (((("dir", b"now a file"),), "/d/dir"),
                          ((("file/", "/"),), "/d/file")):
        status, _, body = api.put(cid, "/d", make_tar(*members), noOverwriteDirNonDir="true")
        assert status == 400, body
        assert b"cannot overwrite" in body and path.encode() in body
    assert in_container(pyboxd, name, "cat", "/d/file") == "f\n"
    status, _, body = api.put(cid, "/d", make_tar(("dir", b"now a file\n"), ("file/", "/"),
                                                  ("merge/", "/"), ("merge/new", b"n\n")))
    assert status == 200, body
    assert in_container(pyboxd, name, "cat", "/d/dir", "/d/merge/old", "/d/merge/new") == \
        "now a file\nkeep\nn\n"
    assert in_container(pyboxd, name, "sh", "-c", "test -d /d/file && echo dir") == "dir\n"


def test_read_only_rootfs_of_a_stopped_container_holds_through_its_symlinks(
        pyboxd, names, api, tmp_path):
    """--read-only, stopped: refused with docker's words at the path, and by
    the kernel (the view's copy of the rootfs is read-only too) when a symlink
    in a bind leads into the rootfs; the writable bind stays writable."""
    bound = tmp_path / "rw"
    bound.mkdir()
    os.symlink("/etc", bound / "etclink")  # the container's /etc, seen from inside
    name = names()
    pyboxd.ok("create", "--name", name, "--read-only", "-v", f"{bound}:/rw", "busybox", "true")
    cid = pyboxd.inspect(name)["Id"]
    tar = make_tar(("f", b"x\n"))
    status, _, body = api.put(cid, "/etc", tar)
    assert status == 400 and b"container rootfs is marked read-only" in body
    status, _, body = api.put(cid, "/rw/etclink", tar)
    assert status == 400 and b"read-only file system" in body
    assert api.get(cid, "/etc/f")[0] == 404
    assert not os.path.exists("/etc/f")
    status, _, body = api.put(cid, "/rw", tar)
    assert status == 200, body
    assert (bound / "f").read_text() == "x\n"


# -- what the red-team review of issue 13 found (F3, F5) -----------------------------------------
def pax_tar(name, data=b"x\n", pax=None, **fields):
    """One regular file, with PAX records ``pax`` and TarInfo ``fields``."""
    buf = io.BytesIO()
    fmt = tarfile.GNU_FORMAT if fields.pop("gnu", False) else tarfile.PAX_FORMAT
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo(name)
        info.mtime = 1_600_000_000
        for key, value in fields.items():
            setattr(info, key, value)
        if pax:
            info.pax_headers = pax
        if info.type == tarfile.REGTYPE:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.addfile(info)
    return buf.getvalue()


def test_kernel_filesystem_paths_leak_no_descriptor(pyboxd, names, api, no_traceback):
    """A copy of a path below a kernel filesystem of a running container is a
    404 (a PUT into one a 400); each used to leave pyboxd one more open fd,
    which pinned the container's proc instance after its removal."""
    from support.host import fd_count
    from support.wait import settle

    name = names()
    cid = run(pyboxd, name, ":")
    assert api.call("GET", "/_ping")[0] == 200  # the keep-alive connection, counted
    before = fd_count(pyboxd.pid)
    for _ in range(10):
        for path in ("/sys/kernel", "/proc/1/environ", "/proc/1/fd", "/proc/1", "/proc/sys/"):
            status, _, body = api.get(cid, path)
            assert status == 404 and b"Could not find the file" in body, (path, body)
            assert api.call("HEAD", f"/containers/{cid}/archive?path={path}")[0] == 404
        status, _, body = api.put(cid, "/proc/sys/kernel", make_tar(("f", b"x")))
        assert status == 400 and b"kernel filesystem" in body, body
    assert settle(lambda: fd_count(pyboxd.pid) <= before), (before, fd_count(pyboxd.pid))


def test_kernel_filesystem_mount_points_are_empty_directories(pyboxd, names, api, tmp_path,
                                                             no_traceback):
    """/proc, /sys and /dev/pts themselves are what docker's view has there:
    empty directories (nothing of the kernel's read); so `docker cp f
    ctr:/proc` copies into a directory, refused with a clear message (not
    "cannot overwrite directory "/proc" with non-directory "/"")."""
    name = names()
    cid = run(pyboxd, name, ":")
    for path, arcname in (("/proc", "proc"), ("/sys", "sys"), ("/dev/pts", "pts")):
        status, headers, data = api.get(cid, path)
        assert status == 200, (path, data)
        assert [(m, v[0].isdir()) for m, v in members_of(data).items()] == [(arcname, True)]
        stat_doc = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
        assert stat_doc["name"] == arcname and stat_doc["mode"] & (1 << 31)
    local = tmp_path / "f.txt"
    local.write_text("x\n")
    proc = pyboxd.docker("cp", str(local), f"{name}:/proc")
    assert proc.returncode != 0
    assert "extraction point is a kernel filesystem" in proc.stderr, proc.stderr
    assert "cannot overwrite" not in proc.stderr


def test_deep_member_trees_are_made_and_removed(pyboxd, names, api, no_traceback):
    """A member 2,000 directories deep (the parents made in a loop, not a
    recursion: it was a 500 with a thousand chained tracebacks) lands, and the
    container holding it can be removed; one past PATH_MAX is a 400."""
    name = names()
    cid = run(pyboxd, name, "mkdir /d")
    deep = "a/" * 2000 + "f"
    status, _, body = api.put(cid, "/d", pax_tar(deep, b"deep\n"))
    assert status == 200, body
    assert in_container(pyboxd, name, "cat", "/d/" + deep) == "deep\n"
    status, _, body = api.put(cid, "/d", pax_tar("b/" * 3000 + "f"))
    assert status == 400 and b"file name too long" in body, body
    assert len(body) < 1000  # the path is not echoed whole
    status, _, body = api.put(cid, "/d", pax_tar("n" * 300))  # past NAME_MAX
    assert status == 400 and b"file name too long" in body, body
    rm = pyboxd.docker("rm", "-f", name)
    assert rm.returncode == 0, rm.stderr  # a deep tree removed too (no RecursionError)
    assert pyboxd.docker("inspect", name).returncode != 0


def test_bad_archive_values_are_400(pyboxd, names, api, no_traceback):
    """Values Go's tar reader or the kernel refuse -- a PAX time past an
    int64, a base-256 number past one, a 200 KB xattr, device numbers no
    dev_t holds -- and every decompressor's complaint about a corrupt body
    (xz's too) are 400s; zstd's magic and zeros is no empty archive."""
    name = names()
    cid = run(pyboxd, name, "mkdir /d")
    cases = [
        (pax_tar("m", pax={"mtime": "999999999999999999999.5"}), b"PAX time"),
        (pax_tar("b", mtime=1 << 80, gnu=True), b"invalid tar header"),
        (pax_tar("x", pax={"SCHILY.xattr.user.big": "v" * 200_000}),
         b"lsetxattr user.big /d/x: argument list too long"),
        (pax_tar("c", type=tarfile.CHRTYPE, devmajor=1 << 40, devminor=3, gnu=True),
         b"invalid device"),
        (b"\xfd7zXZ\0" + bytes(100), b"invalid compressed tar archive"),
        (b"\x28\xb5\x2f\xfd" + bytes(100), b"zstd: unexpected EOF"),
        (b"\x1f\x8b\x08" + bytes(100), b"invalid compressed tar archive"),
        (b"BZh9" + bytes(100), b"invalid compressed tar archive"),
    ]
    for body_sent, message in cases:
        status, _, body = api.put(cid, "/d", body_sent)
        assert status == 400 and message in body, (body_sent[:16], body)
    # refused before anything was made, but the file whose xattr the kernel
    # refused (made first, as moby's createTarFile does)
    assert in_container(pyboxd, name, "ls", "-A", "/d") == "x\n"


def test_out_of_range_mtimes_become_the_epoch(pyboxd, names, api, no_traceback):
    """moby's boundTime: an mtime before 1970 or past 2262 is set to the epoch
    (it was an OverflowError and a 500 past what utime takes)."""
    name = names()
    cid = run(pyboxd, name, "mkdir /d")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, mtime in (("neg", "-100.5"), ("far", "99999999999999")):
            info = tarfile.TarInfo(member)
            info.pax_headers = {"mtime": mtime}
            tar.addfile(info)
    status, _, body = api.put(cid, "/d", buf.getvalue())
    assert status == 200, body
    assert in_container(pyboxd, name, "stat", "-c", "%Y", "/d/neg", "/d/far") == "0\n0\n"


def test_bad_archive_paths_are_400_and_quoted_short(pyboxd, names, api, no_traceback):
    """A 100 KB path is 'file name too long' (a 400 that does not echo it
    whole), a NUL byte is refused (the C string would end there)."""
    name = names()
    cid = run(pyboxd, name, ":")
    long_path = "/" + "a" * 100_000
    for status, _, body in (api.get(cid, long_path),
                            api.put(cid, long_path, make_tar(("f", b"x")))):
        assert status == 400 and b"file name too long" in body, body[:300]
        assert len(body) < 1000
    status, _, body = api.call("HEAD", f"/containers/{cid}/archive?path={long_path}")
    assert status == 400
    for status, _, body in (api.get(cid, "/etc/hostname%00x"),
                            api.put(cid, "/tmp%00x", make_tar(("f", b"x")))):
        assert status == 400 and b"NUL" in body, body
