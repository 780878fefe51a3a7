"""docker import/commit --change lines: every instruction docker allows, its two
forms (JSON exec form, shell form), and docker's refusals."""

import pytest

from pybox.errors import ImageError
from pybox.images.config import apply_changes, docker_container_config, parse_change

pytestmark = pytest.mark.unit


def test_every_instruction():
    config = apply_changes({"Env": ["PATH=/bin", "A=1"]}, [
        'CMD ["sh", "-c", "echo hi"]',
        "ENTRYPOINT /bin/tini --",
        "ENV A=2 B=\"two words\"",
        "ENV LEGACY some value",
        "WORKDIR /srv",
        "WORKDIR app",
        "USER 1000:1000",
        "EXPOSE 80 53/udp",
        "LABEL org.example=yes other=\"a b\"",
        'VOLUME ["/data"]',
        "VOLUME /cache /logs",
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --retries=3 CMD true",
        "onbuild RUN echo",
    ])
    assert config["Cmd"] == ["sh", "-c", "echo hi"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/tini --"]
    assert config["Env"] == ["PATH=/bin", "A=2", "B=two words", "LEGACY=some value"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"org.example": "yes", "other": "a b"}
    assert config["Volumes"] == {"/data": {}, "/cache": {}, "/logs": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Interval": 5 * 10**9, "Retries": 3,
                                     "Test": ["CMD-SHELL", "true"]}
    assert config["OnBuild"] == ["RUN echo"]


@pytest.mark.parametrize("line, message", [
    ("RUN echo", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("ENV =x", "ENV names can not be blank"),
    ("EXPOSE http", "Invalid containerPort: http"),
    ("CMD", "CMD requires at least one argument"),
])
def test_refusals(line, message):
    with pytest.raises(ImageError) as err:
        apply_changes({}, [line])
    assert message in str(err.value)


def test_parse_change_is_case_insensitive():
    assert parse_change("cmd  echo") == ("CMD", "echo")


def test_inspect_config_shape():
    shape = docker_container_config({"Cmd": ["sh"], "StopSignal": "SIGTERM",
                                     "ExposedPorts": {"80/tcp": {}}})
    # the keys docker always prints, in its order, and the optional ones when set
    assert list(shape)[:6] == ["Hostname", "Domainname", "User", "AttachStdin",
                               "AttachStdout", "AttachStderr"]
    assert shape["Cmd"] == ["sh"] and shape["Entrypoint"] is None
    assert shape["StopSignal"] == "SIGTERM" and shape["ExposedPorts"] == {"80/tcp": {}}
    assert "Healthcheck" not in docker_container_config({})
