"""Compose builds: Debian's docker-compose 1.29 (docker-py 5 underneath, the
classic builder's API) `build` and `up --build` against the private pyboxd, a
service image built from a Dockerfile with a build argument; `down --rmi local`
removes what compose built (issue 17 point 1)."""

import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]

COMPOSE_FILE = """\
version: "3.8"
services:
  app:
    build:
      context: ./app
      args:
        GREETING: hello-from-compose
    command: cat /greeting
"""

DOCKERFILE = """\
FROM busybox:latest
ARG GREETING=unset
RUN echo "$GREETING" > /greeting
LABEL org.example.built-by=compose
"""


@pytest.fixture
def compose(pyboxd, tmp_path):
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("needs Debian's docker-compose (apt-get install docker-compose)")
    project = f"pbxb{os.getpid()}"

    def run(*args, check=True):
        proc = subprocess.run([exe, "-p", project, *args], cwd=tmp_path, env=pyboxd.cli_env,
                              capture_output=True, text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {proc.returncode}: "
                                 f"{proc.stderr}\n{pyboxd.log_tail(1500)}")
        return proc
    run.project = project
    run.dir = tmp_path
    yield run
    run("down", "--rmi", "local", "-v", "--remove-orphans", check=False)


def test_compose_build_and_up_build(pyboxd, compose):
    (compose.dir / "app").mkdir()
    (compose.dir / "app" / "Dockerfile").write_text(DOCKERFILE)
    (compose.dir / "docker-compose.yml").write_text(COMPOSE_FILE)
    image = f"{compose.project}_app"
    built = compose("build")
    assert "Successfully built" in built.stdout + built.stderr, built.stdout + built.stderr
    labels = pyboxd.inspect(image)["Config"]["Labels"]
    assert labels["org.example.built-by"] == "compose"
    first_id = pyboxd.inspect(image)["Id"]
    # a changed Dockerfile: up --build builds again and runs the new image
    (compose.dir / "app" / "Dockerfile").write_text(DOCKERFILE + "RUN echo more >> /greeting\n")
    compose("up", "--build", "--abort-on-container-exit")
    assert pyboxd.inspect(image)["Id"] != first_id
    logs = compose("logs", "--no-color", "app").stdout
    assert "hello-from-compose" in logs and "more" in logs, logs
    compose("down", "--rmi", "local")
    assert pyboxd.docker("images", "-q", image).stdout.strip() == ""
