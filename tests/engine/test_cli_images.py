"""The docker CLI's image and system commands on pyboxd: images, import, load,
save, tag, rmi, history, image inspect, info, version."""

import json
import os
import tarfile
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]


def repo():
    return f"pybox-engine-test/img{uuid.uuid4().hex[:8]}"


def test_version(pyboxd):
    out = pyboxd.ok("version", "--format", "{{json .}}")
    v = json.loads(out)
    assert v["Server"]["ApiVersion"] == "1.44"
    assert v["Server"]["Os"] == "linux"
    assert v["Client"]["ApiVersion"] == "1.44"  # negotiated down from the CLI's own
    text = pyboxd.ok("version")
    assert "Server:" in text and "API version:" in text


def test_info(pyboxd):
    info = json.loads(pyboxd.ok("info", "--format", "{{json .}}"))
    assert info["OSType"] == "linux"
    assert info["LoggingDriver"] == "json-file"
    assert info["CgroupVersion"] in ("1", "2")
    assert info["Images"] >= 1
    for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                "NCPU", "MemTotal", "KernelVersion", "ServerVersion", "Name"):
        assert key in info, key
    text = pyboxd.ok("info")
    assert "Server Version:" in text and "Storage Driver:" in text


def test_images_table_and_format(pyboxd):
    lines = pyboxd.ok("images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in lines[1:])
    image_id = pyboxd.ok("images", "-q", "--no-trunc", "busybox")
    assert image_id.startswith("sha256:")
    row = pyboxd.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "busybox")
    assert row == f"busybox:latest {image_id[7:19]}\n"


def test_import_with_changes_and_message(pyboxd, images_made, tmp_path):
    ref = repo() + ":v1"
    tar = os.path.join(pyboxd.base, "busybox.tar")
    out = pyboxd.ok("import", "-c", "ENV A=b", "-c", 'CMD ["echo", "from-cmd"]',
                    "-c", "WORKDIR /tmp", "-m", "my message", tar, ref)
    images_made.append(ref)
    assert out.startswith("sha256:")
    info = json.loads(pyboxd.ok("image", "inspect", ref))[0]
    assert info["Id"] == out.strip()
    assert info["RepoTags"] == [ref]
    assert "A=b" in info["Config"]["Env"]
    assert info["Config"]["Cmd"] == ["echo", "from-cmd"]
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert info["Comment"] == "my message"
    assert pyboxd.ok("run", "--rm", ref) == "from-cmd\n"
    assert pyboxd.ok("run", "--rm", ref, "sh", "-c", 'echo "$A $(pwd)"') == "b /tmp\n"
    # import from stdin ("-")
    ref2 = repo() + ":stdin"
    with open(tar, "rb") as f:
        data = f.read()
    import subprocess

    proc = subprocess.run(["docker", "import", "-", ref2], input=data, env=pyboxd.cli_env,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    images_made.append(ref2)
    assert json.loads(pyboxd.ok("image", "inspect", ref2))[0]["RepoTags"] == [ref2]


def test_tag_and_rmi(pyboxd, images_made, names):
    a, b = repo() + ":one", repo() + ":two"
    pyboxd.ok("tag", "busybox", a)
    images_made.append(a)
    pyboxd.ok("tag", a, b)
    images_made.append(b)
    busybox_id = pyboxd.ok("images", "-q", "--no-trunc", "busybox").strip()
    for ref in (a, b):
        assert pyboxd.ok("images", "-q", "--no-trunc", ref).strip() == busybox_id
    # removing one of several tags only untags
    assert pyboxd.ok("rmi", a) == f"Untagged: {a}\n"
    assert pyboxd.ok("images", "-q", a) == ""
    # an image in use by a container cannot lose its last tag... (busybox has more users)
    name = names()
    img = repo() + ":inuse"
    pyboxd.ok("tag", "busybox", img)
    images_made.append(img)
    pyboxd.ok("create", "--name", name, img, "true")
    # a tag still shared with busybox:latest: untag is fine even in use
    assert pyboxd.ok("rmi", img) == f"Untagged: {img}\n"
    proc = pyboxd.docker("rmi", "pybox-no-such-image:zz")
    assert proc.returncode == 1
    assert "No such image: pybox-no-such-image:zz" in proc.stderr


def test_rmi_of_an_image_in_use_is_a_conflict(pyboxd, images_made, names):
    ref = repo() + ":only"
    tar = os.path.join(pyboxd.base, "busybox.tar")
    # a distinct image (its own id): a different comment gives another config
    image_id = pyboxd.ok("import", "-m", ref, tar, ref).strip()
    images_made.append(ref)
    name = names()
    pyboxd.ok("create", "--name", name, ref, "true")
    proc = pyboxd.docker("rmi", ref)
    assert proc.returncode == 1
    assert "conflict: unable to remove repository reference" in proc.stderr
    assert "must force" in proc.stderr
    pyboxd.ok("rm", name)
    out = pyboxd.ok("rmi", ref)
    assert f"Untagged: {ref}" in out
    assert f"Deleted: {image_id}" in out


def test_history(pyboxd):
    lines = pyboxd.ok("history", "busybox").splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert len(lines) >= 2
    rows = [json.loads(line) for line in
            pyboxd.ok("history", "--format", "json", "--no-trunc", "busybox").splitlines()]
    assert rows[0]["ID"].startswith("sha256:")


def test_image_inspect_format(pyboxd):
    assert pyboxd.ok("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}",
                     "busybox").strip() in ("linux/amd64", "linux/arm64")
    assert pyboxd.ok("image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox") == '["sh"]\n'
    # docker inspect of an image name falls back to the image
    assert pyboxd.ok("inspect", "-f", "{{.RepoTags}}", "busybox") == "[busybox:latest]\n"


def test_save_and_load(pyboxd, images_made, tmp_path):
    ref = repo() + ":saved"
    pyboxd.ok("tag", "busybox", ref)
    images_made.append(ref)
    archive = tmp_path / "saved.tar"
    pyboxd.ok("save", "-o", str(archive), ref)
    with tarfile.open(archive) as t:
        members = t.getnames()
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    assert any(m.startswith("blobs/sha256/") or m.endswith("layer.tar") for m in members)
    pyboxd.ok("rmi", ref)
    assert pyboxd.ok("images", "-q", ref) == ""
    out = pyboxd.ok("load", "-i", str(archive))
    assert out == f"Loaded image: {ref}\n"
    assert pyboxd.ok("run", "--rm", ref, "echo", "loaded") == "loaded\n"
    # save to stdout and load from stdin
    import subprocess

    data = subprocess.run(["docker", "save", ref], env=pyboxd.cli_env, capture_output=True,
                          check=True).stdout
    pyboxd.ok("rmi", ref)
    proc = subprocess.run(["docker", "load"], input=data, env=pyboxd.cli_env,
                          capture_output=True)
    assert proc.returncode == 0 and proc.stdout == f"Loaded image: {ref}\n".encode()
    # a broken archive is a clear error
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    proc = pyboxd.docker("load", "-i", str(bad))
    assert proc.returncode == 1
    # dockerd's answer: a 200 stream whose last line is the error (issue 16)
    assert "Error processing tar file(exit status 1): unexpected EOF" in proc.stderr
