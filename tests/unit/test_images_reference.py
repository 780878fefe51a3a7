"""Image references are read as docker reads them (distribution/reference):
normalisation, validation, and docker's error texts."""

import pytest

from pybox.errors import InvalidReference
from pybox.images import reference as refs

pytestmark = pytest.mark.unit
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, normalised, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
    ("me/app", "docker.io/me/app:latest", "me/app:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/x:1", "docker.io/library/x:1", "x:1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
    ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}",
     f"busybox:1@{DIGEST}"),
    ("a__b-c/e---f.g:T_1.x-y", "docker.io/a__b-c/e---f.g:T_1.x-y", None),
])
def test_normalisation(text, normalised, familiar):
    ref = refs.parse(text)
    assert str(ref) == normalised
    if familiar:
        assert ref.familiar() == familiar


def test_domain_rule_follows_docker():
    # a first component is a registry only when it looks like a host
    assert refs.parse("myhost/app").domain == "docker.io"
    assert refs.parse("my.host/app").domain == "my.host"
    assert refs.parse("myhost:80/app").domain == "myhost:80"
    assert refs.parse("[::1]:5000/app").domain == "[::1]:5000"


@pytest.mark.parametrize("text, message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be "
                "lowercase"),
    ("busybox:", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("bus//box", "invalid reference format"),
    ("busybox:" + "x" * 129, "invalid reference format"),
    ("a" * 64, "invalid repository name (" + "a" * 64 + "), cannot specify 64-byte "
               "hexadecimal strings"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("", "invalid reference format"),
    ("x" * 256, "repository name must not be more than 255 characters"),
])
def test_invalid(text, message):
    with pytest.raises(InvalidReference) as err:
        refs.parse(text)
    assert message in str(err.value)


def test_no_default_tag_and_helpers():
    ref = refs.parse("busybox", default_tag=False)
    assert ref.tag is None and str(ref) == "docker.io/library/busybox"
    assert str(refs.parse("busybox").with_tag("1.36")) == "docker.io/library/busybox:1.36"
    assert refs.familiar_name("docker.io/library/busybox") == "busybox"
    assert refs.familiar_name("docker.io/library/a/b") == "library/a/b"
    assert refs.looks_like_id("3f57d9401f8d")
    assert refs.looks_like_id("sha256:" + "0" * 64)
    assert not refs.looks_like_id("busybox")
    with pytest.raises(InvalidReference):
        refs.validate_tag("-bad")
