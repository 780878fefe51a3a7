"""The CRI's ImageService (pybox.cri.images) as kubelet and crictl use it:
pulls from docker-registry on 127.0.0.1 (plain and with htpasswd auth, the
AuthConfig kubelet passes), the names, ids and users containerd reports,
status by every kind of name, list with and without a filter, removal of the
whole image, ImageFsInfo, and the CRI's per-registry mirrors
(daemon.json's cri-registry-mirrors).

The images are the busybox root filesystem imported with `docker import`
(one per test, with the config the test needs) and pushed by the same private
pyboxd, then removed from its store, so each CRI pull is a real one."""

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.request
import uuid

import grpc
import pytest
from cri_api.v1 import api_pb2

from registry.conftest import PASSWORD, USER, RegistryServer, ensure_tools
from support.paths import busybox_tar

from .conftest import CALL_TIMEOUT, CRIHelper, CRIPyboxd, rpc_code


@pytest.fixture(scope="module")
def registries():
    """A plain registry and one asking for htpasswd credentials."""
    ensure_tools()
    base = tempfile.mkdtemp(prefix="pybox-cri-images-")
    servers = []
    try:
        for mode in ("plain", "htpasswd"):
            servers.append(RegistryServer(base, mode).start())
        yield {s.mode: s for s in servers}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def publish(cri_pyboxd, registries):
    """publish(registry, user=None, tags=("v1",), cmd) -> (repository, [tags]): a
    new busybox image (its own Id) pushed under each tag, then removed from
    pyboxd's store."""
    tar = busybox_tar(cri_pyboxd.base)
    cli = os.path.join(cri_pyboxd.base, "cli")
    logged_in = set()

    def run(mode="plain", user=None, tags=("v1",), cmd='["sh"]'):
        server = registries[mode]
        if mode == "htpasswd" and server.host not in logged_in:
            cri_pyboxd.ok("login", "-u", USER, "--password-stdin", server.host,
                          input=PASSWORD)
            logged_in.add(server.host)
        repo = f"{server.host}/cri-images/t{uuid.uuid4().hex[:10]}"
        changes = ["-c", f"CMD {cmd}"] + (["-c", f"USER {user}"] if user else [])
        first = f"{repo}:{tags[0]}"
        cri_pyboxd.ok("import", *changes, tar, first)
        for tag in tags[1:]:
            cri_pyboxd.ok("tag", first, f"{repo}:{tag}")
        for tag in tags:
            cri_pyboxd.ok("push", f"{repo}:{tag}")
        cri_pyboxd.ok("rmi", *[f"{repo}:{tag}" for tag in tags])
        return repo, list(tags)

    yield run
    shutil.rmtree(cli, ignore_errors=True)


def manifest_of(server, repo, tag):
    """(manifest digest, config digest) as the registry serves them."""
    path = repo.split("/", 1)[1]
    req = urllib.request.Request(
        f"{server.url()}/v2/{path}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                           "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        digest = resp.headers["Docker-Content-Digest"]
        return digest, json.loads(resp.read())["config"]["digest"]


def pull(stub, image, auth=None, timeout=CALL_TIMEOUT):
    return stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image),
                                                   auth=auth), timeout=timeout).image_ref


def status(stub, image, verbose=False):
    return stub.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image),
                                                       verbose=verbose), timeout=CALL_TIMEOUT)


def remove(stub, image):
    stub.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image)),
                     timeout=CALL_TIMEOUT)


def listed(stub, image=None):
    flt = api_pb2.ImageFilter(image=api_pb2.ImageSpec(image=image)) if image else None
    return list(stub.ListImages(api_pb2.ListImagesRequest(filter=flt),
                                timeout=CALL_TIMEOUT).images)


def test_pull_status_list_remove(image_stub, cri_pyboxd, registries, publish):
    server = registries["plain"]
    repo, _ = publish(user="1234:5", tags=("v1", "v2"))
    manifest, config = manifest_of(server, repo, "v1")
    image_id = pull(image_stub, f"{repo}:v1")
    assert image_id == config  # containerd's image_ref: the config's digest
    assert pull(image_stub, f"{repo}:v2") == image_id

    image = status(image_stub, f"{repo}:v1").image
    assert image.id == image_id
    assert list(image.repo_tags) == [f"{repo}:v1", f"{repo}:v2"]
    assert list(image.repo_digests) == [f"{repo}@{manifest}"]
    assert image.size > 1_000_000  # busybox, unpacked
    assert image.HasField("uid") and image.uid.value == 1234 and image.username == ""
    # every kind of name answers the same status (critest's "all kinds of references")
    for name in (image_id, image_id[len("sha256:"):][:12], f"{repo}:v2", f"{repo}@{manifest}"):
        assert status(image_stub, name).image == image, name

    # the one store: the Docker API sees the CRI's pull
    assert f"{repo}:v1" in cri_pyboxd.ok("images", "--format", "{{.Repository}}:{{.Tag}}")

    assert image_id in [i.id for i in listed(image_stub)]
    only = listed(image_stub, f"{repo}:v2")
    assert [i.id for i in only] == [image_id]
    assert listed(image_stub, f"{repo}:nosuchtag") == []

    # removal by one tag removes the image with all its names (the CRI's RemoveImage)
    remove(image_stub, f"{repo}:v1")
    assert not status(image_stub, f"{repo}:v2").HasField("image")
    assert not status(image_stub, image_id).HasField("image")
    assert image_id not in [i.id for i in listed(image_stub)]
    remove(image_stub, f"{repo}:v1")  # gone already: a success, as containerd answers
    remove(image_stub, image_id)


def test_status_of_what_is_not_there_is_no_image(image_stub):
    for name in ("127.0.0.1:1/nothing/here:v1", "sha256:" + "0" * 64, "NotAName!"):
        assert not status(image_stub, name).HasField("image"), name


def test_verbose_status_and_username(image_stub, publish):
    repo, _ = publish(user="www-data:www-data")
    image_id = pull(image_stub, f"{repo}:v1")
    try:
        reply = status(image_stub, f"{repo}:v1", verbose=True)
        assert not reply.image.HasField("uid")
        assert reply.image.username == "www-data"
        info = json.loads(reply.info["info"])
        assert info["chainID"].startswith("sha256:")
        assert info["imageSpec"]["config"]["User"] == "www-data:www-data"
        assert info["imageSpec"]["rootfs"]["type"] == "layers"
        assert status(image_stub, f"{repo}:v1").info == {}  # not verbose: no info
    finally:
        remove(image_stub, image_id)


def test_pull_by_digest_names_only_the_digest(image_stub, registries, publish):
    repo, _ = publish()
    manifest, config = manifest_of(registries["plain"], repo, "v1")
    assert pull(image_stub, f"{repo}@{manifest}") == config
    try:
        image = status(image_stub, f"{repo}@{manifest}").image
        assert list(image.repo_tags) == []
        assert list(image.repo_digests) == [f"{repo}@{manifest}"]
    finally:
        remove(image_stub, f"{repo}@{manifest}")
    assert not status(image_stub, config).HasField("image")


def test_pull_with_kubelet_credentials(image_stub, registries, publish):
    server = registries["htpasswd"]
    repo, _ = publish("htpasswd")
    name = f"{repo}:v1"
    before = {i.id for i in listed(image_stub)}
    with pytest.raises(grpc.RpcError) as anonymous:
        pull(image_stub, name)
    assert "unauthorized" in anonymous.value.details().lower() \
        or "authentication" in anonymous.value.details().lower()
    # credentials kubelet would send for another registry are not given to this one
    with pytest.raises(grpc.RpcError):
        pull(image_stub, name, api_pb2.AuthConfig(username=USER, password=PASSWORD,
                                                  server_address="other.example:5000"))
    with pytest.raises(grpc.RpcError):
        pull(image_stub, name, api_pb2.AuthConfig(username=USER, password="wrong"))
    assert {i.id for i in listed(image_stub)} == before  # failed pulls left nothing

    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for config in (api_pb2.AuthConfig(username=USER, password=PASSWORD,
                                      server_address=server.host),
                   api_pb2.AuthConfig(auth=auth),
                   api_pb2.AuthConfig(auth=auth, server_address=f"http://{server.host}/")):
        image_id = pull(image_stub, name, config)
        assert status(image_stub, name).image.id == image_id
        remove(image_stub, image_id)
    with pytest.raises(grpc.RpcError) as bad:
        pull(image_stub, name, api_pb2.AuthConfig(auth=base64.b64encode(b"nocolon").decode()))
    assert rpc_code(bad) == grpc.StatusCode.INVALID_ARGUMENT


def test_pull_errors(image_stub, registries):
    server = registries["plain"]
    before = {i.id for i in listed(image_stub)}
    with pytest.raises(grpc.RpcError) as missing:
        pull(image_stub, f"{server.host}/cri-images/nosuchrepo:v1")
    assert rpc_code(missing) in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNKNOWN)
    for bad in ("", "Busybox:v1", "a:b:c:d", "busybox@sha256:nothex"):
        with pytest.raises(grpc.RpcError) as invalid:
            pull(image_stub, bad)
        assert rpc_code(invalid) == grpc.StatusCode.INVALID_ARGUMENT, bad
    assert {i.id for i in listed(image_stub)} == before


def test_image_fs_info(image_stub, cri_pyboxd):
    started = time.time_ns()
    reply = image_stub.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=CALL_TIMEOUT)
    [fs] = reply.image_filesystems
    assert fs.fs_id.mountpoint == os.path.join(cri_pyboxd.data_root, "images")
    # busybox (imported at the session's start) is in the store
    assert fs.used_bytes.value > 1_000_000
    assert fs.inodes_used.value > 100
    assert started - 60 * 10**9 < fs.timestamp <= time.time_ns()


class MirroredPyboxd(CRIPyboxd):
    """A second private pyboxd whose daemon.json mirrors a registry that does
    not exist to the test's registry."""

    def __init__(self, mirrors, pod_infra_image):
        super().__init__()
        config = os.path.join(self.base, "daemon.json")
        with open(config, "w") as f:
            json.dump({"cri-registry-mirrors": mirrors}, f)
        self.extra_args += ["--config-file", config,
                            "--pod-infra-container-image", pod_infra_image]


def test_registry_mirrors_and_the_pinned_sandbox_image(registries, publish, tmp_path):
    """cri-registry-mirrors send a registry's pulls to its mirror; a sandbox
    image configured without a tag is pulled as NAME:latest (not every tag)
    through the mirror at the first pod, and pinned (kubelet's GC spares
    it), other images not."""
    server = registries["plain"]
    repo, _ = publish(tags=("latest", "v2"), cmd='["sleep", "3600"]')
    other, _ = publish()
    upstream = "registry.pybox-mirror.test"  # .test: never resolves
    pause = f"{upstream}/{repo.split('/', 1)[1]}"
    daemon = MirroredPyboxd({upstream: [f"http://{server.host}"]}, pause)
    helper = None
    try:
        daemon.start()
        stub = daemon.images
        helper = CRIHelper(daemon, tmp_path)
        helper.run_pod()
        image = status(stub, pause).image
        assert list(image.repo_tags) == [f"{pause}:latest"]  # v2 was not pulled
        assert image.pinned
        other_id = pull(stub, f"{upstream}/{other.split('/', 1)[1]}:v1")
        assert list(status(stub, other_id).image.repo_tags) == [
            f"{upstream}/{other.split('/', 1)[1]}:v1"]
        assert {i.id: i.pinned for i in listed(stub)} == {image.id: True, other_id: False}
        remove(stub, other_id)
    finally:
        if helper is not None:
            helper.cleanup()
        if daemon.process is not None and daemon.process.poll() is None:
            remove(daemon.images, pause)
        problems = daemon.stop()
    assert not problems, "\n".join(problems)


def test_pybox_pause_image_is_pinned(image_stub, cri):
    """The sandbox's image (pybox's pause, imported at the first pod) is
    pinned, as containerd's sandbox_image: kubelet's image GC spares it."""
    cri.run_pod()
    images = listed(image_stub)
    pinned = [list(i.repo_tags) for i in images if i.pinned]
    assert len(pinned) == 1 and pinned[0][0].startswith("localhost/pybox-pause:"), pinned
    assert any(not i.pinned for i in images)  # busybox, imported at the session's start
