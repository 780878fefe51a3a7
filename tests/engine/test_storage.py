"""Storage for containers through the docker CLI and docker-py: -v binds and
named volumes, the image's VOLUME content copied into a new volume, anonymous
volumes and rm -v, --mount bind|volume|tmpfs with options, --tmpfs,
--read-only, the volume commands, and the errors docker gives for bad input."""

import json
import os
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]


@pytest.fixture
def volumes(pyboxd):
    """volumes() -> a unique volume name; each is `docker volume rm -f`'d at the end
    (after the test's containers: this fixture is set up before ``names``)."""
    made = []

    def new(prefix="vol"):
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield new
    if made:
        pyboxd.docker("volume", "rm", "-f", *made)


@pytest.fixture
def volume_image(pyboxd, images_made, names):
    """An image with VOLUME /data whose /data holds a file and a directory (made
    with `docker commit --change 'VOLUME /data'`)."""
    ref = f"pybox-vol-{uuid.uuid4().hex[:8]}:1"
    src = names("src")
    pyboxd.ok("run", "--name", src, "busybox", "sh", "-c",
              "mkdir -p /data/sub && echo from-image > /data/seed && "
              "echo deep > /data/sub/f && chmod 0750 /data/sub && chown 1000:1000 /data/seed")
    pyboxd.ok("commit", "--change", "VOLUME /data", src, ref)
    images_made.append(ref)
    pyboxd.ok("rm", src)
    return ref


def volume_names(pyboxd):
    return set(pyboxd.ok("volume", "ls", "-q").split())


def mounts_of(pyboxd, name):
    return {m["Destination"]: m for m in pyboxd.inspect(name)["Mounts"]}


# -- -v and --mount type=bind ----------------------------------------------------------
def test_bind_mount_read_write_and_read_only(pyboxd, names, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from the host\n")
    out = pyboxd.ok("run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c",
                    "cat /mnt/in.txt && echo from-ctr > /mnt/out.txt")
    assert out == "from the host\n"
    assert (host / "out.txt").read_text() == "from-ctr\n"
    # :ro -- reading works, writing is refused by the kernel
    proc = pyboxd.docker("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "sh", "-c",
                         "cat /mnt/in.txt; echo x > /mnt/new.txt")
    assert proc.returncode == 1
    assert proc.stdout == "from the host\n"
    assert "Read-only file system" in proc.stderr
    assert not (host / "new.txt").exists()
    # inspect reports the mount as docker does
    name = names()
    pyboxd.ok("create", "--name", name, "-v", f"{host}:/mnt:ro,z", "busybox", "true")
    m = mounts_of(pyboxd, name)["/mnt"]
    assert (m["Type"], m["Source"], m["RW"], m["Mode"], m["Propagation"]) == (
        "bind", str(host), False, "ro,z", "rprivate")


def test_bind_of_a_missing_directory_with_v_creates_it(pyboxd, tmp_path):
    host = tmp_path / "made" / "by" / "docker"
    pyboxd.ok("run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c", "echo hi > /mnt/f")
    assert (host / "f").read_text() == "hi\n"


def test_mount_bind_options(pyboxd, tmp_path):
    host = tmp_path / "m"
    host.mkdir()
    (host / "f").write_text("bound\n")
    out = pyboxd.ok("run", "--rm", "--mount", f"type=bind,source={host},target=/b,readonly",
                    "busybox", "sh", "-c", "cat /b/f; grep ' /b ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0] == "bound"
    assert lines[1].split()[3].split(",")[0] == "ro"
    # a bind of one file
    out = pyboxd.ok("run", "--rm", "--mount", f"type=bind,src={host}/f,dst=/etc/motd",
                    "busybox", "cat", "/etc/motd")
    assert out == "bound\n"


def test_mount_bind_of_a_missing_path_is_dockers_error(pyboxd, names, tmp_path):
    missing = tmp_path / "no-such-dir"
    name = names()
    proc = pyboxd.docker("run", "--name", name, "--mount",
                         f"type=bind,source={missing},target=/x", "busybox", "true")
    assert proc.returncode == 125
    assert ("Error response from daemon: invalid mount config for type \"bind\": bind source "
            f"path does not exist: {missing}") in proc.stderr
    assert not missing.exists()
    # nothing was made
    assert pyboxd.docker("inspect", name).returncode == 1


# -- named volumes --------------------------------------------------------------------
def test_named_volume_data_survives_container_removal(pyboxd, volumes, names):
    vol = volumes()
    a, b = names(), names()
    pyboxd.ok("run", "--name", a, "-v", f"{vol}:/data", "busybox", "sh", "-c",
              "echo kept > /data/file && mkdir /data/dir")
    assert vol in volume_names(pyboxd)  # -v NAME creates the volume on first use
    m = mounts_of(pyboxd, a)["/data"]
    assert (m["Type"], m["Name"], m["Driver"], m["RW"]) == ("volume", vol, "local", True)
    pyboxd.ok("rm", "-v", a)  # -v removes anonymous volumes only
    assert vol in volume_names(pyboxd)
    out = pyboxd.ok("run", "--name", b, "--mount", f"type=volume,source={vol},target=/v",
                    "busybox", "sh", "-c", "cat /v/file; ls -d /v/dir")
    assert out == "kept\n/v/dir\n"
    # the data is in the volume's mount point on the host
    mountpoint = json.loads(pyboxd.ok("volume", "inspect", vol))[0]["Mountpoint"]
    with open(os.path.join(mountpoint, "file")) as f:
        assert f.read() == "kept\n"


def test_volume_events(pyboxd, volumes):
    import time

    made, implicit = volumes(), volumes()
    since = time.time()
    pyboxd.ok("volume", "create", made)
    pyboxd.ok("run", "--rm", "-v", f"{implicit}:/x", "busybox", "true")
    pyboxd.ok("run", "--rm", "-v", f"{made}:/x", "busybox", "true")  # exists: no event
    pyboxd.ok("volume", "rm", made, implicit)
    out = pyboxd.ok("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                    "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
    events = [line for line in out.splitlines() if line.split()[1] in (made, implicit)]
    assert events == [f"create {made}", f"create {implicit}", f"destroy {made}",
                      f"destroy {implicit}"]


def test_named_volume_is_filled_from_the_image_on_first_use(pyboxd, volumes, names,
                                                            volume_image):
    vol = volumes()
    a = names()
    out = pyboxd.ok("run", "--name", a, "-v", f"{vol}:/data", volume_image, "sh", "-c",
                    "cat /data/seed /data/sub/f; stat -c '%a %u:%g' /data/sub /data/seed;"
                    " echo changed > /data/seed")
    assert out == "from-image\ndeep\n750 0:0\n644 1000:1000\n"
    # second use: the volume's content (changed), not the image's again
    out = pyboxd.ok("run", "--rm", "-v", f"{vol}:/data", volume_image, "cat", "/data/seed")
    assert out == "changed\n"
    # an empty volume mounted elsewhere with nocopy stays empty
    vol2 = volumes()
    out = pyboxd.ok("run", "--rm", "--mount",
                    f"type=volume,source={vol2},target=/data,volume-nocopy",
                    volume_image, "ls", "-A", "/data")
    assert out == ""


def test_anonymous_volumes_and_rm_v(pyboxd, names, volume_image):
    before = volume_names(pyboxd)
    a = names()
    pyboxd.ok("run", "--name", a, "-v", "/scratch", volume_image, "sh", "-c",
              "cat /data/seed; echo s > /scratch/s")
    mounts = mounts_of(pyboxd, a)
    assert set(mounts) == {"/data", "/scratch"}  # the image's VOLUME and -v /path
    made = {m["Name"] for m in mounts.values()}
    assert all(len(n) == 64 for n in made)
    assert made <= volume_names(pyboxd) - before
    assert pyboxd.ok("logs", a) == "from-image\n"
    labels = json.loads(pyboxd.ok("volume", "inspect", *made))
    assert all("com.docker.volume.anonymous" in v["Labels"] for v in labels)
    pyboxd.ok("rm", "-v", a)
    assert not made & volume_names(pyboxd)
    # without -v they stay (docker's behaviour), and --rm removes them
    b = names()
    pyboxd.ok("run", "--name", b, volume_image, "true")
    kept = {m["Name"] for m in mounts_of(pyboxd, b).values()}
    pyboxd.ok("rm", b)
    try:
        assert kept <= volume_names(pyboxd)
    finally:
        pyboxd.ok("volume", "rm", *kept)
    before = volume_names(pyboxd)
    pyboxd.ok("run", "--rm", volume_image, "true")
    assert volume_names(pyboxd) == before


# -- tmpfs and read-only ----------------------------------------------------------------
def test_tmpfs_flags(pyboxd):
    out = pyboxd.ok("run", "--rm", "--tmpfs", "/scratch:rw,size=2m,mode=1770", "busybox",
                    "sh", "-c", "grep ' /scratch ' /proc/mounts; stat -c %a /scratch;"
                    " df -k /scratch | tail -1")
    mount, mode, df = out.splitlines()
    fields = mount.split()
    assert fields[2] == "tmpfs"
    assert {"rw", "nosuid", "nodev", "noexec", "size=2048k", "mode=1770"} <= \
        set(fields[3].split(","))
    assert mode == "1770"
    assert df.split()[1] == "2048"
    out = pyboxd.ok("run", "--rm", "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,"
                    "tmpfs-mode=0700", "busybox", "sh", "-c",
                    "grep ' /t ' /proc/mounts; stat -c %a /t")
    mount, mode = out.splitlines()
    assert mount.split()[2] == "tmpfs" and "size=1024k" in mount.split()[3]
    assert mode == "700"


def test_read_only_rootfs(pyboxd):
    proc = pyboxd.docker("run", "--rm", "--read-only", "--tmpfs", "/run", "busybox", "sh",
                         "-c", "echo ok > /run/f && cat /run/f; touch /etc/x")
    assert proc.returncode == 1
    assert proc.stdout == "ok\n"
    assert "Read-only file system" in proc.stderr
    # the engine's own files (hosts, resolv.conf) and /dev/shm are still there
    out = pyboxd.ok("run", "--rm", "--read-only", "busybox", "sh", "-c",
                    "cat /etc/hostname >/dev/null && touch /dev/shm/x && echo fine")
    assert out == "fine\n"


# -- the volume commands ----------------------------------------------------------------
def test_volume_create_ls_inspect_rm(pyboxd, volumes):
    vol = volumes()
    assert pyboxd.ok("volume", "create", "--label", "team=a", vol) == vol + "\n"
    # create of an existing name is idempotent
    assert pyboxd.ok("volume", "create", vol) == vol + "\n"
    doc = json.loads(pyboxd.ok("volume", "inspect", vol))[0]
    assert (doc["Name"], doc["Driver"], doc["Scope"], doc["Labels"]) == (
        vol, "local", "local", {"team": "a"})
    assert os.path.isdir(doc["Mountpoint"])
    assert pyboxd.ok("volume", "inspect", "-f", "{{.Driver}} {{.Labels.team}}", vol) == \
        "local a\n"
    rows = pyboxd.ok("volume", "ls", "--filter", f"name={vol}").splitlines()
    assert rows[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert rows[1].split() == ["local", vol]
    assert pyboxd.ok("volume", "ls", "-q", "--filter", "label=team=a").split().count(vol) == 1
    assert vol not in pyboxd.ok("volume", "ls", "-q", "--filter", "label=team=b").split()
    assert pyboxd.ok("volume", "rm", vol) == vol + "\n"
    assert not os.path.exists(doc["Mountpoint"])
    proc = pyboxd.docker("volume", "inspect", vol)
    assert proc.returncode == 1
    assert f"get {vol}: no such volume" in proc.stderr
    proc = pyboxd.docker("volume", "rm", vol)
    assert proc.returncode == 1 and "no such volume" in proc.stderr
    assert pyboxd.docker("volume", "rm", "-f", vol).returncode == 0
    # a bad name
    proc = pyboxd.docker("volume", "create", "bad/name")
    assert proc.returncode == 1
    assert ('"bad/name" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed') in proc.stderr


def test_volume_create_with_tmpfs_driver_options(pyboxd, volumes):
    vol = volumes()
    pyboxd.ok("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt",
              "device=tmpfs", "--opt", "o=size=1m", vol)
    out = pyboxd.ok("run", "--rm", "-v", f"{vol}:/t", "busybox", "sh", "-c",
                    "grep ' /t ' /proc/mounts; echo x > /t/x")
    assert out.split()[2] == "tmpfs" and "size=1024k" in out.split()[3]
    assert json.loads(pyboxd.ok("volume", "inspect", vol))[0]["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    pyboxd.ok("volume", "rm", vol)
    assert vol not in volume_names(pyboxd)


def test_volume_in_use_cannot_be_removed(pyboxd, volumes, names):
    vol = volumes()
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, "-v", f"{vol}:/data", "busybox", "sh", "-c",
                    "echo precious > /data/p; sleep 1000").strip()
    status, body = pyboxd.api("DELETE", f"/volumes/{vol}")
    assert status == 409
    assert body["message"] == f"remove {vol}: volume is in use - [{cid}]"
    proc = pyboxd.docker("volume", "rm", vol)
    assert proc.returncode == 1
    assert f"remove {vol}: volume is in use - [{cid}]" in proc.stderr
    # stopped is still in use (the container record mounts it); nothing lost
    pyboxd.ok("stop", "-t", "0", name)
    assert pyboxd.docker("volume", "rm", vol).returncode == 1
    assert pyboxd.docker("volume", "rm", "-f", vol).returncode == 1
    assert vol not in pyboxd.ok("volume", "prune", "-af")
    out = pyboxd.ok("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/p")
    assert out == "precious\n"
    pyboxd.ok("rm", name)
    assert pyboxd.ok("volume", "rm", vol) == vol + "\n"


def test_volume_prune(pyboxd, volumes, names):
    named, used = volumes(), volumes()
    pyboxd.ok("volume", "create", named)
    anon = pyboxd.ok("volume", "create").strip()  # no name: anonymous
    assert len(anon) == 64
    name = names()
    pyboxd.ok("create", "--name", name, "-v", f"{used}:/u", "busybox", "true")
    # default: anonymous volumes not in use only
    out = pyboxd.ok("volume", "prune", "-f")
    assert anon in out and named not in out and used not in out
    assert anon not in volume_names(pyboxd)
    assert "Total reclaimed space:" in out
    # --all: named ones too, never one in use
    out = pyboxd.ok("volume", "prune", "-af", "--filter", f"name={named}")
    assert named in out and used not in out
    assert used in volume_names(pyboxd) and named not in volume_names(pyboxd)


def test_volume_dangling_filter(pyboxd, volumes, names):
    free, used = volumes(), volumes()
    pyboxd.ok("volume", "create", free)
    pyboxd.ok("create", "--name", names(), "-v", f"{used}:/u", "busybox", "true")
    dangling = pyboxd.ok("volume", "ls", "-q", "--filter", "dangling=true").split()
    assert free in dangling and used not in dangling
    not_dangling = pyboxd.ok("volume", "ls", "-q", "--filter", "dangling=false").split()
    assert used in not_dangling and free not in not_dangling


def test_bad_volume_specs_are_125(pyboxd, names):
    for spec, message in (("relative/path:/x", "includes invalid characters"),
                          ("/tmp:/x:bogus", "invalid mode: bogus"),
                          ("/tmp:relative", "must be absolute")):
        proc = pyboxd.docker("run", "--rm", "-v", spec, "busybox", "true")
        assert proc.returncode == 125, (spec, proc.stderr)
        assert message in proc.stderr, (spec, proc.stderr)
    name = names()
    proc = pyboxd.docker("create", "--name", name, "-v", "/tmp:/x", "-v", "/var:/x",
                         "busybox", "true")
    # docker create reports a daemon error with 1 (only run uses 125)
    assert proc.returncode == 1 and "Duplicate mount point: /x" in proc.stderr
    assert pyboxd.docker("inspect", name).returncode == 1  # nothing was made


# -- docker-py ---------------------------------------------------------------------------
def test_dockerpy_volumes(dockerpy, pyboxd, volumes):
    docker = pytest.importorskip("docker")
    vol = volumes()
    v = dockerpy.volumes.create(vol, labels={"k": "v"})
    assert v.name == vol and v.attrs["Labels"] == {"k": "v"}
    assert dockerpy.volumes.get(vol).attrs["Driver"] == "local"
    assert vol in [x.name for x in dockerpy.volumes.list(filters={"name": vol})]
    out = dockerpy.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"],
                                  volumes={vol: {"bind": "/v", "mode": "rw"}}, remove=True)
    assert out == b"py\n"
    out = dockerpy.containers.run("busybox", ["cat", "/v/f"], remove=True,
                                  mounts=[docker.types.Mount("/v", vol, read_only=True)])
    assert out == b"py\n"
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        dockerpy.volumes.get(vol)


def test_bind_wins_over_an_anonymous_volume_at_the_same_path(pyboxd, names, tmp_path):
    before = volume_names(pyboxd)
    name = names()
    pyboxd.ok("create", "--name", name, "-v", "/dup", "-v", f"{tmp_path}:/dup", "busybox",
              "true")
    assert [(m["Type"], m["Destination"]) for m in pyboxd.inspect(name)["Mounts"]] == [
        ("bind", "/dup")]
    assert volume_names(pyboxd) == before


def test_a_failed_create_makes_no_volume(pyboxd, names, volumes, volume_image):
    before = volume_names(pyboxd)
    name, vol = names(), volumes()
    # docker checks every mount before it creates any volume
    proc = pyboxd.docker("create", "--name", name, "-v", f"{vol}:/a", "--mount",
                         "type=bind,source=/no/such/pybox/dir,target=/x", volume_image)
    assert proc.returncode == 1 and "bind source path does not exist" in proc.stderr
    assert pyboxd.docker("inspect", name).returncode == 1
    assert volume_names(pyboxd) == before
    # an existing volume named in a failed create is kept, with its data
    pyboxd.ok("run", "--rm", "-v", f"{vol}:/a", "busybox", "sh", "-c", "echo d > /a/d")
    proc = pyboxd.docker("create", "--name", name, "-v", f"{vol}:/a", "--mount",
                         "type=bind,source=/no/such/pybox/dir,target=/x", "busybox")
    assert proc.returncode == 1
    assert pyboxd.ok("run", "--rm", "-v", f"{vol}:/a", "busybox", "cat", "/a/d") == "d\n"


def test_volumes_from(pyboxd, names, volumes, tmp_path):
    vol = volumes()
    donor, reader, ro_reader = names(), names(), names()
    pyboxd.ok("create", "--name", donor, "-v", f"{vol}:/data", "-v", f"{tmp_path}:/host",
              "-v", "/anon", "--tmpfs", "/scratch", "busybox", "true")
    out = pyboxd.ok("run", "--name", reader, "--volumes-from", donor, "busybox", "sh", "-c",
                    "echo shared > /data/f && echo h > /host/h && echo a > /anon/a && "
                    "grep -c ' /scratch ' /proc/mounts; true")
    assert out == "0\n"  # a tmpfs is not shared
    assert (tmp_path / "h").read_text() == "h\n"
    mine = mounts_of(pyboxd, reader)
    assert set(mine) == {"/data", "/host", "/anon"}
    assert mine["/data"]["Name"] == vol
    assert mine["/anon"]["Name"] == mounts_of(pyboxd, donor)["/anon"]["Name"]
    # :ro makes every one of them read-only
    proc = pyboxd.docker("run", "--name", ro_reader, "--volumes-from", f"{donor}:ro",
                         "busybox", "sh", "-c", "cat /data/f /anon/a; touch /data/x")
    assert proc.stdout == "shared\na\n"
    assert proc.returncode == 1 and "Read-only file system" in proc.stderr
    # rm -v of a user keeps the donor's anonymous volume (still in use)
    anon = mine["/anon"]["Name"]
    pyboxd.ok("rm", "-v", reader)
    assert anon in volume_names(pyboxd)
    pyboxd.ok("rm", "-v", ro_reader, donor)
    assert anon not in volume_names(pyboxd)
    proc = pyboxd.docker("run", "--rm", "--volumes-from", "pybox-no-such-ctr", "busybox", "true")
    assert proc.returncode == 125 and "No such container: pybox-no-such-ctr" in proc.stderr
