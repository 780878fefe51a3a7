"""The pybox CLI against a real dockerd (Debian's docker.io, private paths), and
next to the real docker CLI against the same daemon.

What this proves: our client speaks the Docker Engine API exactly as the docker
CLI does (request bodies compared through a logging proxy), every command of
issue 6 works end to end on a real daemon (so it will on pyboxd if pyboxd serves
the same API), exit codes follow docker's rules, interactive sessions work on a
real pty (resize, detach keys, exec -it, attach), and what we print looks like
what docker prints (the same text, with "docker" read as "pybox").
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from support.pty import PtyProcess
from support.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.clients]

TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"


def as_pybox(text):
    return text.replace("docker", "pybox")


def expect_answer(term, command, answer, tries=5):
    """Type ``command`` until ``answer`` shows: busybox's line editor asks the
    terminal for the cursor position (ESC[6n) and may swallow what is typed
    while it waits for a reply this test terminal never sends."""
    for attempt in range(tries):
        term.send(command)
        try:
            return term.expect(answer, timeout=3)
        except AssertionError:
            if attempt == tries - 1:
                raise


def create_bodies(proxy):
    return [e["json"] for e in proxy.events()
            if e.get("tag") == ">b" and isinstance(e.get("json"), dict)
            and "HostConfig" in e["json"]]


def requests(proxy):
    return [e["text"].split("   (")[0] for e in proxy.events() if e.get("tag") == ">>"]


def json_diff(ours, theirs, path=""):
    """Paths where two JSON values differ (values, or the set of keys)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = [f"{path}.{k}: only in ours" for k in ours if k not in theirs]
        out += [f"{path}.{k}: only in docker's" for k in theirs if k not in ours]
        for k in ours:
            if k in theirs:
                out += json_diff(ours[k], theirs[k], f"{path}.{k}")
        return out
    return [] if ours == theirs else [f"{path}: ours {ours!r}, docker's {theirs!r}"]


# -- the wire: same requests as the docker CLI ---------------------------------------
FLAG_SETS = [
    [],
    ["-h", "myhost", "-m", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
     "--oom-kill-disable", "-c", "512", "--cpu-period", "100000", "--cpu-quota", "50000",
     "--cpuset-cpus", "0", "--cpuset-mems", "0", "--pids-limit", "100", "--blkio-weight",
     "300", "--device-read-bps", "/dev/vda:1mb", "--device-write-bps", "/dev/vda:2mb",
     "--device-read-iops", "/dev/vda:10", "--device-write-iops", "/dev/vda:100",
     "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=50"],
    ["--cpus", "1.5", "-e", "FOO=bar", "-e", "BAZ_UNSET_VAR", "-e", "HOME", "-l", "a=b",
     "-l", "c", "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "-w", "/tmp", "-u",
     "1000:1000", "--entrypoint", "/bin/sh", "--network", "none", "--rm", "-i", "-t"],
    ["--tmpfs", "/run:size=1m", "--read-only", "--restart", "on-failure:3", "--init",
     "--health-cmd", "true", "--health-interval", "5s", "--health-retries", "2",
     "--cap-add", "net_admin", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
     "--device", "/dev/null:/dev/xnull:r", "--ipc", "private", "--pid", "host",
     "--group-add", "10", "--sysctl", "net.ipv4.ip_forward=1", "--oom-score-adj", "100",
     "--shm-size", "128m", "-p", "8080:80", "-p", "127.0.0.1::53/udp", "-P", "--dns",
     "1.1.1.1", "--dns-search", "ex.com", "--dns-option", "ndots:2", "--add-host",
     "h:1.2.3.4", "-v", "/tmp:/data:ro", "-v", "/anon", "--mount",
     "type=tmpfs,target=/t2,tmpfs-size=1000", "--mount", "type=bind,src=/tmp,dst=/b,ro",
     "--uts", "host", "--ip", "10.1.2.3", "--entrypoint="],
    ["-a", "stdout", "--expose", "90-91", "--env-file", "{envfile}", "--label-file",
     "{labelfile}", "--log-driver", "json-file", "--log-opt", "max-size=1m",
     "--cgroup-parent", "/x", "--memory-swappiness", "10", "--stop-timeout", "0"],
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=[f"set{i}" for i in range(len(FLAG_SETS))])
def test_create_body_is_dockers(dockerd, proxy, flags, tmp_path):
    """``pybox create`` sends the docker CLI's body, byte for byte (same fields,
    same order, same units), for every create/run flag."""
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nA=1\n\nHOME\nUNSET_IN_ENV_X\nB=two words\n")
    labelfile = tmp_path / "labels"
    labelfile.write_text("x=1\ny\n")
    flags = [f.format(envfile=envfile, labelfile=labelfile) for f in flags]
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), "src"), HOME="/root")
    env.pop("BAZ_UNSET_VAR", None)
    bodies = []
    from .conftest import DOCKER
    for argv in ([DOCKER], [sys.executable, "-m", "pybox.cli.pybox"]):
        proxy.clear()
        subprocess.run(argv + ["-H", proxy.host, "create"] + flags + ["busybox", "-c", "x"],
                       env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        got = create_bodies(proxy)
        assert got, f"{argv[0]} sent no create body"
        bodies.append(json.dumps(got[0]))
    dockerd.docker("container", "prune", "-f", check=False)
    # docker 28 sends Env in no stable order (it goes through a Go map): compare
    # it as a set, everything else exactly, key order included
    ours, theirs = json.loads(bodies[1]), json.loads(bodies[0])
    assert sorted(ours["Env"] or []) == sorted(theirs["Env"] or [])
    ours["Env"] = theirs["Env"]
    assert json_diff(ours, theirs) == []
    assert json.dumps(ours) == json.dumps(theirs)


def test_run_sequence_is_dockers(pybox, proxy, dockerd):
    """create -> attach (101) -> wait?condition=removed -> start, then the wait's
    StatusCode; the same requests the docker CLI makes."""
    proxy.clear()
    proc = subprocess.run(pybox.argv[:-2] + ["-H", proxy.host, "run", "--rm", "busybox",
                                             "echo", "hi"], env=pybox.env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"hi\n"
    seen = [re.sub(r"[0-9a-f]{64}", "{id}", r) for r in requests(proxy)]
    assert seen == ["HEAD /_ping", "POST /v1.41/containers/create",
                    "POST /v1.41/containers/{id}/attach?stderr=1&stdout=1&stream=1",
                    "POST /v1.41/containers/{id}/wait?condition=removed",
                    "POST /v1.41/containers/{id}/start"]


# -- run, exit codes, streams ----------------------------------------------------------
def test_run_output_and_exit_codes(pybox, docker):
    p = pybox("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (p.returncode, p.out, p.err) == (7, "out\n", "err\n")
    p = pybox("run", "--rm", "busybox", "sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?')
    assert p.returncode == 137
    for args, code in ((["/nonexistent"], 127), (["/etc/passwd"], 126)):
        ours = pybox("run", "--rm", "busybox", *args)
        theirs = docker("run", "--rm", "busybox", *args)
        assert ours.returncode == theirs.returncode == code
        assert ours.err == as_pybox(theirs.err)
    assert pybox("ps", "-aq").out == ""   # --rm removed them all, failed starts too


def test_run_stdin_pipe_and_tty_without_terminal(pybox):
    p = pybox("run", "-i", "--rm", "busybox", "sh", input=b"echo from-stdin; exit 4\n")
    assert (p.returncode, p.out) == (4, "from-stdin\n")
    p = pybox("run", "-t", "--rm", "busybox", "sh", "-c", "echo a; echo b >&2; exit 2")
    assert p.returncode == 2 and p.out == "a\r\nb\r\n"   # raw pty stream, merged
    p = pybox("run", "-it", "--rm", "busybox", "true", input=b"")
    assert p.returncode == 1 and p.err == "the input device is not a TTY\n"


def test_lifecycle(pybox, docker, name):
    p = pybox("run", "-d", "--name", name, "busybox", "sh", "-c", TICKER)
    assert p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", p.out)
    cid = p.out.strip()
    assert pybox("ps", "-q").out.split() == [cid[:12]]
    assert pybox("pause", name).out == f"{name}\n"
    assert "(Paused)" in pybox("ps", "--format", "{{.Status}}").out
    assert pybox("inspect", "-f", "{{.State.Status}}", name).out == "paused\n"
    assert pybox("unpause", name).out == f"{name}\n"
    assert pybox("stop", "-t", "1", name).out == f"{name}\n"
    assert pybox("inspect", "-f", "{{.State.Running}}", name).out == "false\n"
    assert pybox("start", name).out == f"{name}\n"
    assert pybox("restart", "-t", "1", name).out == f"{name}\n"
    assert pybox("kill", "-s", "KILL", name).out == f"{name}\n"
    assert pybox("wait", name).out == "137\n"
    p = pybox("start", name)
    ours = pybox("rm", name)
    theirs = docker("rm", name)
    assert ours.returncode == theirs.returncode == 1
    assert ours.err == theirs.err and "cannot remove a running container" in ours.err
    assert pybox("rm", "-f", "-v", name).out == f"{name}\n"


def test_create_start_attach_and_interactive(pybox, name):
    assert pybox("create", "--name", name, "busybox", "sh", "-c",
                 "echo started; exit 2").returncode == 0
    p = pybox("start", "-a", name)
    assert (p.returncode, p.out) == (2, "started\n")
    pybox("rm", name)
    pybox("create", "-i", "--name", name, "busybox", "sh", check=True)
    p = pybox("start", "-ai", name, input=b"echo in; exit 9\n")
    assert (p.returncode, p.out) == (9, "in\n")
    pybox("rm", name)


def test_logs(pybox, name):
    pybox("run", "-d", "--name", name, "busybox", "sh", "-c",
          "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; sleep 100", check=True)
    wait_for(lambda: "three" in pybox("logs", name).out, "logs")
    p = pybox("logs", name)
    assert (p.out, p.err) == ("one\nthree\n", "two\n")
    assert pybox("logs", "--tail", "1", name).out == "three\n"
    stamped = pybox("logs", "-t", "--tail", "1", name).out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z three\n", stamped)
    assert pybox("logs", "--since", "1h", "--until", "1h", name).out == ""
    # -f follows until the container stops
    follow = subprocess.Popen(pybox.argv + ["logs", "-f", name], env=pybox.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    pybox("exec", name, "sh", "-c", "echo four > /proc/1/fd/1", check=True)
    pybox("kill", name, check=True)
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0 and out == b"one\nthree\nfour\n" and err == b"two\n"
    pybox("rm", "-f", name)


def test_exec(pybox, name):
    pybox("run", "-d", "--name", name, "busybox", "sleep", "100", check=True)
    p = pybox("exec", name, "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (p.returncode, p.out, p.err) == (5, "out\n", "err\n")
    p = pybox("exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", name, "sh", "-c",
              'echo "$X $(pwd) $(id -u)"')
    assert p.out == "1 /tmp 65534\n"
    p = pybox("exec", "-i", name, "sh", input=b"echo piped; exit 3\n")
    assert (p.returncode, p.out) == (3, "piped\n")
    assert pybox("exec", "-d", name, "touch", "/tmp/detached").out == ""
    wait_for(lambda: pybox("exec", name, "test", "-f", "/tmp/detached").returncode == 0,
             "the detached exec")
    pybox("rm", "-f", name)


# -- interactive sessions on a real pty ------------------------------------------------
def test_run_it_resize_and_exit(pybox, docker):
    for cli in (docker, pybox):
        term = PtyProcess(cli.argv + ["run", "-it", "--rm", "busybox", "sh"], cli.env)
        term.expect("# ")
        expect_answer(term, "stty size\n", "24 80")
        # docker's CLI installs its SIGWINCH handler only after the start call
        # returns, so a resize that lands before that is lost (the shell's
        # prompt can come first): the reference gets more tries, each with a new
        # size (the same size again sends no SIGWINCH).  pybox's catches the
        # signal before it starts the container: one try.
        tries = 4 if cli is docker else 1
        for attempt in range(tries):
            rows = 40 + attempt
            term.resize(rows, 120)
            time.sleep(0.5)
            try:
                expect_answer(term, "stty size\n", f"{rows} 120")
                break
            except AssertionError as e:
                if attempt == tries - 1:
                    raise AssertionError(f"{cli.argv[0]}: {e}") from None
        term.send("exit 3\n")
        assert term.wait() == 3, cli.argv


def test_run_it_detach_keys_then_attach(pybox, docker, name):
    term = PtyProcess(pybox.argv + ["run", "-it", "--name", name, "busybox", "sh"],
                      pybox.env)
    term.expect("# ")
    term.send(b"\x10\x11")                      # ctrl-p ctrl-q
    assert term.wait() == 0
    assert pybox("inspect", "-f", "{{.State.Running}}", name).out == "true\n"
    results = []
    for cli in (docker, pybox):
        term = PtyProcess(cli.argv + ["attach", "--detach-keys", "ctrl-x,x", name], cli.env)
        time.sleep(1)
        expect_answer(term, "echo attached-$((40+2))\n", "attached-42")
        term.send(b"\x18x")
        results.append((term.wait(), term.output.strip().endswith(b"read escape sequence")))
    assert results[0] == results[1] == (1, True)
    assert pybox("inspect", "-f", "{{.State.Running}}", name).out == "true\n"
    pybox("rm", "-f", name)


def test_exec_it(pybox, name):
    pybox("run", "-d", "--name", name, "busybox", "sleep", "100", check=True)
    term = PtyProcess(pybox.argv + ["exec", "-it", name, "sh"], pybox.env, rows=30, cols=90)
    term.expect("# ")
    expect_answer(term, "stty size\n", "30 90")
    term.resize(50, 132)
    time.sleep(0.5)
    expect_answer(term, "stty size\n", "50 132")
    term.send("exit 6\n")
    assert term.wait() == 6
    pybox("rm", "-f", name)


def test_attach_non_tty_forwards_signals(pybox, name):
    pybox("run", "-d", "--name", name, "busybox", "sh", "-c",
          "trap 'echo got-INT; exit 42' INT; while true; do sleep 0.1; done", check=True)
    client = subprocess.Popen(pybox.argv + ["attach", name], env=pybox.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=30)
    assert client.returncode == 42 and b"got-INT" in out, (out, err)
    pybox("rm", "-f", name)
    p = pybox("create", "--name", name, "busybox", "true")
    p = pybox("attach", name)
    assert p.returncode == 1
    assert p.err == "You cannot attach to a stopped container, start it first\n"
    pybox("rm", name)


# -- output looks like docker's --------------------------------------------------------
def test_ps_images_history_inspect_look_like_docker(pybox, docker, name):
    pybox("run", "-d", "--name", name, "-l", "k=v", "busybox", "sh", "-c",
          "sleep 100", check=True)
    pybox("create", "--name", name + "-c", "busybox", "echo", "a-long-command-line",
          "that-is-truncated", check=True)
    for args in (["ps", "-a", "--format", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t"
                  "{{.Names}}\t{{.Labels}}"],
                 ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}} {{.Names}} "
                  "{{.State}} {{.Label \"k\"}}"],
                 ["ps", "--filter", f"name={name}", "-q"],
                 ["ps", "-n", "1", "--format", "{{json .Names}}"],
                 ["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                  "{{.Size}}"],
                 ["images", "-q"],
                 ["history", "--format", "table {{.ID}}\t{{.CreatedBy}}\t{{.Size}}\t"
                  "{{.Comment}}", "busybox"],
                 ["history", "--no-trunc", "-q", "busybox"],
                 ["inspect", name],
                 ["inspect", "busybox"],
                 ["inspect", "-f", "{{.State.Pid}} {{json .Config}} {{.Name}} "
                  "{{range .Config.Env}}[{{.}}]{{end}} {{.HostConfig.NanoCpus}}", name],
                 ["image", "inspect", "-f", "{{.Id}} {{.Size}} {{.Os}}", "busybox"],
                 ["inspect", "nosuchthing-x"],
                 ["port", name]):
        ours, theirs = pybox(*args), docker(*args)
        assert (ours.returncode, ours.out, ours.err) == \
            (theirs.returncode, theirs.out, as_pybox(theirs.err)), args
    # top: the same table but for ps's C (recent cpu %), which may tick between calls
    ours, theirs = pybox("top", name), docker("top", name)
    assert (ours.returncode, ours.err) == (theirs.returncode, as_pybox(theirs.err))
    assert ours.out.splitlines()[0] == theirs.out.splitlines()[0]

    def without_c(out):
        return [line.split()[:3] + line.split()[4:] for line in out.splitlines()]
    assert without_c(ours.out) == without_c(theirs.out)
    # the default tables: the same columns (times may tick between calls, and a
    # column is as wide as its longest cell: "Up 9 seconds", "Up 10 seconds")
    for args in (["ps", "-a"], ["images"], ["history", "busybox"], ["ps", "-s"]):
        ours, theirs = pybox(*args).out.splitlines(), docker(*args).out.splitlines()
        assert re.split(r"\s{2,}", ours[0]) == re.split(r"\s{2,}", theirs[0]), args
        assert len(ours) == len(theirs)
    pybox("rm", "-f", name, name + "-c")


def test_error_messages_like_docker(pybox, docker):
    cases = [["rm", "nosuch"], ["stop", "nosuch", "n2"], ["start", "nosuch"],
             ["logs", "nosuch"], ["run", "-m", "12x", "busybox"], ["ps", "--foo"],
             ["rm"], ["create", "--pid", "foo", "busybox"],
             ["run", "--restart", "always", "--rm", "busybox"],
             ["create", "--cpus", "1", "--cpu-period", "1000", "busybox"],
             ["kill", "nosuch"], ["pause", "nosuch"], ["wait", "nosuch"],
             ["exec", "nosuch", "true"], ["rmi", "nosuch:tag"], ["tag", "nosuch", "x:y"],
             ["history", "nosuch"], ["run", "--ulimit", "bogus=1", "busybox"]]
    for args in cases:
        ours, theirs = pybox(*args), docker(*args)
        assert (ours.returncode, ours.out, ours.err) == \
            (theirs.returncode, theirs.out, as_pybox(theirs.err)), args


# -- images --------------------------------------------------------------------------------
def test_image_commands(pybox, dockerd, tmp_path):
    tar = os.path.join(dockerd.base, "busybox.tar")
    p = pybox("import", "-c", "ENV A=b", "-c", 'CMD ["sh"]', "-m", "my msg", tar,
              "pbx-imported:v1")
    assert p.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", p.out)
    with open(tar, "rb") as f:
        p = pybox("import", "-", "pbx-imported:v2", input=f.read())
    assert p.returncode == 0
    assert pybox("inspect", "-f", "{{.Comment}} {{.Config.Env}}",
                 "pbx-imported:v1").out == "my msg [A=b]\n"
    assert pybox("tag", "pbx-imported:v1", "pbx-imported:v1b").returncode == 0
    assert "pbx-imported:v1b" in pybox("images", "--format", "{{.Repository}}:{{.Tag}}").out
    p = pybox("rmi", "pbx-imported:v1b")
    assert p.out == "Untagged: pbx-imported:v1b\n"
    saved = str(tmp_path / "saved.tar")
    assert pybox("save", "-o", saved, "pbx-imported:v1").returncode == 0
    assert os.path.getsize(saved) > 100000
    p = pybox("rmi", "pbx-imported:v1", "pbx-imported:v2")
    assert p.returncode == 0 and "Deleted: sha256:" in p.out
    p = pybox("load", "-i", saved)
    assert p.returncode == 0 and "pbx-imported:v1" in p.out
    p = pybox("history", "pbx-imported:v1")
    assert p.out.splitlines()[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE",
                                             "COMMENT"]
    assert pybox("rmi", "-f", "pbx-imported:v1").returncode == 0


def test_info_version(pybox):
    p = pybox("version")
    assert p.returncode == 0
    assert " API version:       1.41 (downgraded from 1.44)\n" in p.out
    assert "Server:" in p.out and "Engine:" in p.out
    assert pybox("version", "--format", "{{.Server.ApiVersion}}").out == "1.41\n"
    p = pybox("info")
    assert p.returncode == 0 and " Containers: " in p.out and "Storage Driver: " in p.out
    assert pybox("info", "--format", "{{.OSType}}").out == "linux\n"


def test_no_daemon_no_autostart_with_host(tmp_path):
    from .conftest import pybox_argv
    sock = tmp_path / "none.sock"
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), "src"), PATH=str(tmp_path))
    (tmp_path / "pyboxd").write_text("#!/bin/sh\ntouch " + str(tmp_path / "started") + "\n")
    (tmp_path / "pyboxd").chmod(0o755)
    p = subprocess.run(pybox_argv() + ["-H", f"unix://{sock}", "ps"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Cannot connect to the pybox daemon at unix://{sock}. "
                               "Is pyboxd running?")
    assert not (tmp_path / "started").exists()


# -- issue 7's commands ------------------------------------------------------------------
def test_issue7_commands(pybox, name, tmp_path):
    pybox("run", "-d", "--name", name, "busybox", "sh", "-c",
          "echo data > /srv-file; sleep 100", check=True)
    wait_for(lambda: pybox("exec", name, "test", "-f", "/srv-file").returncode == 0, "file")
    assert pybox("rename", name, name + "-r").returncode == 0
    name2 = name + "-r"
    assert "A /srv-file" in pybox("diff", name2).out
    export = tmp_path / "export.tar"
    assert pybox("export", "-o", str(export), name2).returncode == 0
    assert export.stat().st_size > 100000
    # cp both ways, a directory tree too
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.txt").write_text("x\n")
    assert pybox("cp", str(src), f"{name2}:/copied").returncode == 0
    assert pybox("exec", name2, "cat", "/copied/sub/x.txt").out == "x\n"
    back = tmp_path / "back"
    assert pybox("cp", f"{name2}:/copied", str(back)).returncode == 0
    assert (back / "sub" / "x.txt").read_text() == "x\n"
    assert pybox("cp", f"{name2}:/srv-file", str(tmp_path / "f")).returncode == 0
    assert (tmp_path / "f").read_text() == "data\n"
    p = pybox("commit", "-c", "ENV C=1", name2, "pbx-committed:v1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", p.out)
    assert pybox("run", "--rm", "pbx-committed:v1", "cat", "/srv-file").out == "data\n"
    p = pybox("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name2)
    assert p.returncode == 0 and p.out.startswith(f"{name2} ")
    assert pybox("update", "-m", "128m", "--memory-swap", "256m", name2).out == f"{name2}\n"
    assert pybox("inspect", "-f", "{{.HostConfig.Memory}}", name2).out == "134217728\n"
    assert pybox("volume", "create", name + "-vol").out == f"{name}-vol\n"
    assert f"{name}-vol" in pybox("volume", "ls", "-q").out
    assert pybox("volume", "inspect", "-f", "{{.Driver}}", name + "-vol").out == "local\n"
    assert pybox("volume", "rm", name + "-vol").out == f"{name}-vol\n"
    assert "none" in pybox("network", "ls").out
    assert pybox("system", "df").out.startswith("TYPE ")
    p = pybox("events", "--since", "5m", "--until", "0s", "--filter", "event=rename",
              "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert f"rename {name2}" in p.out
    pybox("rm", "-f", name2)
    pybox("rmi", "pbx-committed:v1")
