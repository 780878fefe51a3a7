"""Image verbs as dockerd does them (issue 16): which tags `docker save` writes
for an Id, a NAME:TAG and a bare NAME; a bad archive to `docker load` answered
in the JSON stream (HTTP 200) with dockerd's message; a commit (docker-py's,
pause on by default) of a container that has just exited."""

import io
import json
import os
import tarfile
import time
import uuid

import pytest

from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]


def repo() -> str:
    return f"pybox-parity/img{uuid.uuid4().hex[:8]}"


def saved(pyboxd, tmp_path, *names):
    """docker save NAMES -> (manifest.json, repositories or None, the members)."""
    archive = tmp_path / f"save-{uuid.uuid4().hex[:6]}.tar"
    pyboxd.ok("save", "-o", str(archive), *names)
    with tarfile.open(archive) as t:
        members = t.getnames()
        manifest = json.load(t.extractfile("manifest.json"))
        repositories = (json.load(t.extractfile("repositories"))
                        if "repositories" in members else None)
    return manifest, repositories, members


def test_save_writes_the_tags_named(pyboxd, images_made, tmp_path):
    name = repo()
    one, two = f"{name}:one", f"{name}:two"
    for ref in (one, two):
        pyboxd.ok("tag", "busybox", ref)
        images_made.append(ref)
    image_id = pyboxd.inspect(one)["Id"]
    # by Id, full or short: no tag at all (dockerd: RepoTags null, no repositories)
    for by_id in (image_id, image_id[7:19]):
        manifest, repositories, _ = saved(pyboxd, tmp_path, by_id)
        assert len(manifest) == 1 and manifest[0]["RepoTags"] is None
        assert repositories is None
    # NAME:TAG: that tag only
    manifest, repositories, _ = saved(pyboxd, tmp_path, one)
    assert manifest[0]["RepoTags"] == [one]
    assert list(repositories) == [name] and list(repositories[name]) == ["one"]
    # a bare NAME: every tag of that repository (not busybox:latest, same image)
    manifest, repositories, _ = saved(pyboxd, tmp_path, name)
    assert sorted(manifest[0]["RepoTags"]) == [one, two]
    assert sorted(repositories[name]) == ["one", "two"]
    # an Id and a tag of the same image: one image, that tag
    manifest, _, _ = saved(pyboxd, tmp_path, image_id, two)
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == [two]
    # what is not there: dockerd's errors, nothing written
    proc = pyboxd.docker("save", "-o", str(tmp_path / "none.tar"), f"{name}:nope")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error response from daemon: reference does not exist"
    proc = pyboxd.docker("save", "-o", str(tmp_path / "none.tar"), f"{name}-nosuch")
    assert proc.stderr.strip() == f"Error response from daemon: No such image: {name}-nosuch"
    assert not (tmp_path / "none.tar").exists()


def test_save_a_bare_name_writes_every_image_of_the_repository(pyboxd, images_made, tmp_path):
    name = repo()
    pyboxd.ok("tag", "busybox", f"{name}:base")
    images_made.append(f"{name}:base")
    tar = os.path.join(pyboxd.base, "busybox.tar")
    other = pyboxd.ok("import", "-c", f"LABEL parity={uuid.uuid4().hex}", tar,
                      f"{name}:other").strip()
    images_made.append(f"{name}:other")
    manifest, repositories, _ = saved(pyboxd, tmp_path, name)
    by_config = {entry["Config"].rsplit("/", 1)[-1]: entry["RepoTags"] for entry in manifest}
    assert by_config == {pyboxd.inspect("busybox")["Id"][7:]: [f"{name}:base"],
                         other[7:]: [f"{name}:other"]}
    assert sorted(repositories[name]) == ["base", "other"]


def test_save_by_id_loads_untagged(pyboxd, images_made, tmp_path):
    ref = repo() + ":v1"
    tar = os.path.join(pyboxd.base, "busybox.tar")
    image_id = pyboxd.ok("import", "-c", f"LABEL parity={uuid.uuid4().hex}", tar, ref).strip()
    images_made.append(image_id)
    archive = tmp_path / "by-id.tar"
    pyboxd.ok("save", "-o", str(archive), image_id)
    pyboxd.ok("rmi", ref)
    assert pyboxd.ok("load", "-i", str(archive)) == f"Loaded image ID: {image_id}\n"
    info = pyboxd.inspect(image_id)  # the CLI's generic inspect parses LastTagTime
    assert info["RepoTags"] == []
    assert info["Metadata"]["LastTagTime"] == "0001-01-01T00:00:00Z"


def raw_load(pyboxd, body: bytes, quiet: str) -> tuple[int, list[dict]]:
    conn = UnixHTTPConnection(pyboxd.socket)
    try:
        conn.request("POST", f"/v1.44/images/load?quiet={quiet}", body=body,
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, [json.loads(line) for line in data.splitlines() if line.strip()]
    finally:
        conn.close()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BAD_ARCHIVES = {
    # what dockerd (20.10 and today's) answers for each, as the stream's last line
    "short": (b"not a tar", "Error processing tar file(exit status 1): unexpected EOF"),
    "not-a-tar": (b"#" * 3000,
                  "Error processing tar file(exit status 1): archive/tar: invalid tar header"),
    "truncated": (tar_of({"manifest.json": b"[]", "big": b"x" * 20000})[:5000],
                  "Error processing tar file(exit status 1): unexpected EOF"),
    "no-manifest": (tar_of({"x": b"hi\n"}), "invalid archive: does not contain a manifest.json"),
    "empty": (b"", "invalid archive: does not contain a manifest.json"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_load_bad_archive_is_an_error_in_the_stream(pyboxd, tmp_path, case):
    body, message = BAD_ARCHIVES[case]
    images_before = pyboxd.ok("images", "-aq", "--no-trunc")
    for quiet in ("0", "1"):
        status, lines = raw_load(pyboxd, body, quiet)
        assert status == 200
        assert lines == [{"errorDetail": {"message": message}, "error": message}]
    path = tmp_path / "bad.tar"
    path.write_bytes(body)
    proc = pyboxd.docker("load", "-i", str(path))
    assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (1, "", message)
    assert pyboxd.ok("images", "-aq", "--no-trunc") == images_before


def test_commit_right_after_exit(dockerpy, names, images_made):
    """docker-py commits with pause=true: a container whose program ends just
    before or while the commit pauses it is committed as it is, never a 500,
    never left paused."""
    for attempt in range(6):
        name = names()
        container = dockerpy.containers.run(
            "busybox", ["sh", "-c", f"echo {attempt} > /made; sleep 0.{attempt}"],
            detach=True, name=name)
        if attempt % 2:
            container.wait(timeout=30)  # just exited, maybe not yet recorded
        else:
            time.sleep(attempt / 10)  # around the moment it exits
        ref = f"{repo()}:c{attempt}"
        image = container.commit(repository=ref.split(":")[0], tag=f"c{attempt}")
        images_made.append(ref)
        assert image.id.startswith("sha256:")
        container.reload()
        assert container.attrs["State"]["Paused"] is False
        state = container.wait(timeout=30)
        assert state["StatusCode"] == 0
        out = dockerpy.containers.run(ref, ["cat", "/made"], remove=True)
        assert out == f"{attempt}\n".encode()


def test_info_counts_every_image_as_images_all(dockerpy, images_made):
    """docker info's Images is the image store's size, the builder's untagged
    intermediate images too, as dockerd's CountImages: docker-py's test_images
    checks it against the distinct Ids of `images -a` (it said fewer)."""
    tag = repo() + ":built"
    dockerfile = b'FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nCMD ["sh"]\n'
    dockerpy.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    images_made.append(tag)
    every = {image["Id"] for image in dockerpy.api.images(all=True)}
    top = {image["Id"] for image in dockerpy.api.images()}
    assert len(every) > len(top)  # the RUN steps' images are listed with -a only
    assert dockerpy.info()["Images"] == len(every)
