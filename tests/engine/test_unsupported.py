"""What pyboxd does not implement -- swarm mode, managed plugins -- answered as a
dockerd that is not part of a swarm and has no plugins (issue 16): its status
and its words, so clients that probe or clean up go on."""

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]

docker = pytest.importorskip("docker", reason="docker-py (./install.sh --dev)")

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')


def test_docker_py_swarm_calls_fail_as_on_a_node_outside_a_swarm(dockerpy):
    # docker-py's integration suite calls this in every network test's teardown
    assert dockerpy.api.leave_swarm(force=True) is True
    for call in (dockerpy.api.inspect_swarm, dockerpy.api.nodes, dockerpy.api.services,
                 dockerpy.api.tasks, dockerpy.api.secrets, dockerpy.api.configs):
        with pytest.raises(docker.errors.APIError) as e:
            call()
        assert e.value.status_code == 503
        assert e.value.explanation == NOT_A_MANAGER
    with pytest.raises(docker.errors.APIError) as e:
        dockerpy.api.leave_swarm(force=False)
    assert (e.value.status_code, e.value.explanation) == (503, "This node is not part of a swarm")


def test_docker_cli_swarm_commands(pyboxd):
    proc = pyboxd.docker("node", "ls")
    assert proc.returncode == 1
    assert NOT_A_MANAGER in proc.stderr
    proc = pyboxd.docker("swarm", "init")
    assert proc.returncode == 1
    assert "pybox does not implement swarm mode" in proc.stderr


def test_no_plugins(pyboxd, dockerpy):
    assert dockerpy.plugins.list() == []
    proc = pyboxd.docker("plugin", "ls", "--format", "{{.Name}}")
    assert (proc.returncode, proc.stdout) == (0, "")
    proc = pyboxd.docker("plugin", "inspect", "vieux/sshfs")
    assert proc.returncode == 1
    assert 'plugin "vieux/sshfs" not found' in proc.stderr
    proc = pyboxd.docker("plugin", "rm", "vieux/sshfs:latest")
    assert proc.returncode == 1 and "not found" in proc.stderr
    # docker inspect's probe chain ends in "No such object", as on dockerd
    proc = pyboxd.docker("inspect", "nosuchthing-at-all")
    assert proc.returncode == 1
    assert "No such object: nosuchthing-at-all" in proc.stderr
