"""More client mistakes that must be a 400, never a 500 or a traceback in the
daemon's log (issue 13, point 2; what a red-team review found after it):
timestamps that are no time (inf, nan, 1e400), image archives whose JSON is
nested 10,000 deep or of the wrong type, an X-Registry-Auth header nested as
deep, health checks with the longest durations Go takes, and a Content-Length
that is a list.  Each test also reads pyboxd's log while it ran: no Python
traceback may appear in it.
"""

import base64
import hashlib
import json
import socket
import time
import urllib.parse

import pytest

from support.tarbuild import tar_of
from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]

GO_MAX_DURATION = (1 << 63) - 1  # ns: what a Go time.Duration holds, 292 years


# -- helpers ----------------------------------------------------------------------------------
def call(pyboxd, method, path, body=None, headers=None):
    """One request on a fresh connection -> (status, body bytes).  A reply cut
    short (the daemon dropping the connection mid-response) raises."""
    conn = UnixHTTPConnection(pyboxd.socket, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def message(body):
    return json.loads(body)["message"]


LAYER = tar_of({"hello": b"hi\n"})
DIFF_ID = "sha256:" + hashlib.sha256(LAYER).hexdigest()


def image_config(**fields):
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]}}
    config.update(fields)
    return json.dumps(config).encode()


def docker_archive(repo_tags, config=None, layers=("l.tar",)):
    """``repo_tags`` and ``layers`` as they are put in manifest.json."""
    if isinstance(layers, tuple):
        layers = list(layers)
    manifest = [{"Config": "c.json", "RepoTags": repo_tags, "Layers": layers}]
    return {"manifest.json": json.dumps(manifest).encode(), "c.json": config or image_config(),
            "l.tar": LAYER}


def load(pyboxd, files):
    return call(pyboxd, "POST", "/images/load?quiet=1", tar_of(files),
                {"Content-Type": "application/x-tar"})


def load_error(pyboxd, files):
    """The error a load of ``files`` ends with: as dockerd, HTTP 200 and the
    error as the JSON stream's last message (a bad archive is no HTTP error)."""
    status, body = load(pyboxd, files)
    assert status == 200, body
    last = json.loads(body.strip().splitlines()[-1])
    assert "errorDetail" in last, body
    return last["error"]


def repo_tags(pyboxd):
    status, body = call(pyboxd, "GET", "/images/json")
    assert status == 200
    return {tag for image in json.loads(body) for tag in image.get("RepoTags") or ()}


# -- timestamps -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-inf", "xT", "2024-13-45T99:00:00Z"])
def test_events_with_a_timestamp_that_is_no_time_get_400(pyboxd, value, no_traceback):
    """GET /events?since=inf logged a traceback and dropped the connection
    mid-response; now a 400 (timetypes.GetTimestamp's words) before the
    stream begins, for since and until alike."""
    for query in (f"since={value}", f"until={value}", f"since=1&until={value}"):
        status, body = call(pyboxd, "GET", f"/events?{query}")
        assert status == 400, (query, body)
        assert message(body) == f'failed to parse value as time or duration: "{value}"'
    status, body = call(pyboxd, "GET", "/events?since=100&until=50")
    assert status == 400
    assert message(body) == "`since` time (100) cannot be after `until` time (50)"
    status, _ = call(pyboxd, "GET", f"/events?since=1&until={int(time.time()) - 1}")
    assert status == 200  # a good window still answers


def test_logs_and_prune_timestamps_that_are_no_time_get_400(pyboxd, names, no_traceback):
    """The same values for logs since/until and a prune's until filter: a 400,
    and above all no `until=inf` prune that removes every stopped container."""
    name = names()
    pyboxd.ok("create", "--name", name, "busybox", "true")
    for query in ("since=inf", "until=nan", "since=1e400", "since=xT"):
        status, body = call(pyboxd, "GET", f"/containers/{name}/logs?stdout=1&{query}")
        assert status == 400 and "failed to parse value" in message(body), (query, body)
    for endpoint in ("/containers/prune", "/images/prune"):
        for value in ("inf", "nan", "1e400"):
            filters = urllib.parse.quote(json.dumps({"until": [value]}))
            status, body = call(pyboxd, "POST", f"{endpoint}?filters={filters}")
            assert status == 400, (endpoint, value, body)
            assert message(body) == f'failed to parse value as time or duration: "{value}"'
    assert pyboxd.docker("inspect", name).returncode == 0  # not pruned


# -- image archives ---------------------------------------------------------------------------
def test_image_load_of_json_nested_too_deep_gets_400(pyboxd, no_traceback):
    """manifest.json, index.json or an image config of 10,000 nested '[' was a
    RecursionError and a 500; Go's decoder stops at depth 10,000 with an
    error: the load's error (in its stream, as dockerd's)."""
    nested = b"[" * 10_000
    for files in ({"manifest.json": nested}, {"index.json": nested},
                  dict(docker_archive(["h13-nested:x"]), **{"c.json": nested})):
        error = load_error(pyboxd, files)
        assert error.endswith("is not valid JSON: exceeded max depth"), error
    assert "h13-nested:x" not in repo_tags(pyboxd)


def test_image_load_decodes_its_documents_by_type(pyboxd, images_made, no_traceback):
    """`RepoTags: "notalist"` made the tags n, o, t, a, l, i, s; a config whose
    `created` is a number would break every later `docker images`.  As docker
    (the documents decoded into Go structs): the load fails with encoding/json's
    words, nothing tagged; a well-typed archive still loads."""
    before = repo_tags(pyboxd)
    cases = [
        (docker_archive("notalist"), "json: cannot unmarshal string into Go struct field "
                                     "manifestItem.RepoTags of type []string"),
        (docker_archive(["h13-typed:a"], layers="l.tar"), "manifestItem.Layers"),
        (docker_archive(["h13-typed:b"], image_config(created=5)),
         "json: cannot unmarshal number into Go struct field Image.created of type string"),
        (docker_archive(["h13-typed:c"], image_config(rootfs={"diff_ids": DIFF_ID})),
         "RootFS.rootfs.diff_ids"),
        (docker_archive(["h13-typed:d"], image_config(config={"Env": "A=1"})), "Config.config.Env"),
        ({"index.json": b"[]"}, "cannot unmarshal array into Go value of type Index"),
        ({"index.json": b'{"manifests": ["x"]}'}, "Index.manifests"),
    ]
    for files, words in cases:
        error = load_error(pyboxd, files)
        assert words in error, (words, error)
    assert repo_tags(pyboxd) == before  # no n:latest, o:latest...
    images_made.append("h13-typed:good")
    status, body = load(pyboxd, docker_archive(["h13-typed:good"]))
    assert status == 200, body
    assert "h13-typed:good" in repo_tags(pyboxd)


def test_registry_auth_header_nested_too_deep_gets_400(pyboxd, no_traceback):
    """An X-Registry-Auth of 10,000 nested '[' was a 500 (RecursionError):
    moby's words, 'invalid X-Registry-Auth header: ...', and a 400; so is a
    credential of the wrong JSON type.  Nothing is pulled (no registry asked)."""
    for doc, words in ((b"[" * 10_000, "exceeded max depth"),
                       (b'{"username": 5}', "json: cannot unmarshal number into Go struct "
                                            "field AuthConfig.username of type string")):
        header = base64.urlsafe_b64encode(doc).decode()
        status, body = call(pyboxd, "POST", "/images/create?fromImage=h13-nothing&tag=x",
                            headers={"X-Registry-Auth": header})
        assert status == 400, body
        assert message(body) == f"invalid X-Registry-Auth header: {words}"


# -- health checks ----------------------------------------------------------------------------
def test_health_check_with_the_longest_go_durations_keeps_working(pyboxd, names, no_traceback):
    """Interval, Timeout and StartPeriod of 2**63-1 ns (docker takes them)
    crashed the health thread (Python's timers refuse such waits) and the
    status stayed 'starting': now the waits are made of pieces the timers
    take; a check every StartInterval within the start period turns healthy,
    and the thread then waits out its 292-year Interval without a traceback."""
    name = names()
    body = {"Image": "busybox", "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": GO_MAX_DURATION,
                            "Timeout": GO_MAX_DURATION, "StartPeriod": GO_MAX_DURATION,
                            "StartInterval": 100_000_000}}
    status, created = call(pyboxd, "POST", f"/containers/create?name={name}",
                           json.dumps(body), {"Content-Type": "application/json"})
    assert status == 201, created
    pyboxd.ok("start", name)
    deadline = time.monotonic() + 30
    while pyboxd.inspect(name)["State"]["Health"]["Status"] != "healthy":
        assert time.monotonic() < deadline, pyboxd.inspect(name)["State"]["Health"]
        time.sleep(0.1)
    health = pyboxd.inspect(name)["State"]["Health"]
    assert health["FailingStreak"] == 0 and health["Log"][-1]["ExitCode"] == 0


# -- HTTP ---------------------------------------------------------------------------------------
def raw_exchange(pyboxd, data):
    """``data`` on a fresh connection -> (status, body, whether the server
    closed the connection after its reply)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(pyboxd.socket)
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"closed before a reply: {buf!r}"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk, f"closed mid-reply: {buf!r}"
            body += chunk
        s.settimeout(5)
        try:
            closed = s.recv(1) == b""
        except (TimeoutError, ConnectionResetError) as e:
            closed = isinstance(e, ConnectionResetError)
    return int(head.split()[1]), body[:length], closed


def test_a_content_length_that_is_a_list_gets_400(pyboxd, no_traceback):
    """`Content-Length: 2, 2` (h11 takes it for 2) is no length for Go's
    net/http: 400 and the connection closed (a smuggling guard)."""
    before = set(pyboxd.docker("ps", "-aq", "--no-trunc").stdout.split())
    for value in (b"2, 2", b"2,2", b"2 ,3"):
        status, body, closed = raw_exchange(
            pyboxd, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/json\r\nContent-Length: " + value + b"\r\n\r\n{}")
        assert status == 400 and closed, body
        assert body.startswith(b"400 Bad Request: bad Content-Length"), body
    assert set(pyboxd.docker("ps", "-aq", "--no-trunc").stdout.split()) == before
    # a comma elsewhere in a head is nothing to refuse
    status, body = call(pyboxd, "GET", "/_ping", headers={"X-Anything": "1, 2"})
    assert (status, body) == (200, b"OK")
