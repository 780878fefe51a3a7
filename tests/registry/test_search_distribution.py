"""docker search and GET /distribution/NAME/json on pyboxd (issue 16), as dockerd
answers them: a search goes to the registry the term names (its /v1/search,
here a stub of the test's own on 127.0.0.1), filtered as dockerd filters, and
fails clearly when the registry cannot be reached (offline: Docker Hub's index
is behind a dead proxy); a distribution inspect gives the registry's descriptor
of a manifest or index and its platforms (Debian's docker-registry)."""

import http.server
import json
import threading
import urllib.parse

import pytest

from pybox.images.platforms import host_platform
from support.unixhttp import UnixHTTPConnection

from .conftest import ImageSpec, free_port, random_layer, skopeo_inspect, unique
from .test_pyboxd import Daemon

pytestmark = [pytest.mark.registry, pytest.mark.root]

RESULTS = [
    {"name": "library/found", "description": "the official one", "star_count": 50,
     "is_official": True, "is_automated": True, "is_trusted": False},
    {"name": "someone/found", "description": "a fork", "star_count": 5,
     "is_official": False, "is_automated": False},
    {"name": "other/found-too", "star_count": 12},
]


class SearchStub:
    """A v1 registry's search on 127.0.0.1: /v1/_ping, /v1/search?q=&n= (the
    first ``n`` of RESULTS); every request recorded (path, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/v1/_ping":
                    body = b"{}"
                elif url.path == "/v1/search":
                    query = urllib.parse.parse_qs(url.query)
                    n = int(query["n"][0])
                    body = json.dumps({"num_results": len(RESULTS), "query": query["q"][0],
                                       "results": RESULTS[:n]}).encode()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def daemon(registry):
    """pyboxd with the plain registry as Docker Hub's mirror and every proxy
    dead (test_pyboxd's Daemon): nothing leaves the machine."""
    d = Daemon(f"http://{registry.host}")
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture
def stub():
    s = SearchStub()
    yield s
    s.stop()


def get(daemon, path):
    conn = UnixHTTPConnection(daemon.socket, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_search_asks_the_registry_the_term_names(daemon, stub):
    status, found = get(daemon, f"/v1.44/images/search?term={stub.host}/found")
    assert status == 200
    # dockerd's keys and order; is_automated always false (deprecated upstream)
    assert found == [
        {"star_count": 50, "is_official": True, "name": "library/found",
         "is_automated": False, "description": "the official one"},
        {"star_count": 5, "is_official": False, "name": "someone/found",
         "is_automated": False, "description": "a fork"},
        {"star_count": 12, "is_official": False, "name": "other/found-too",
         "is_automated": False, "description": ""}]
    searches = [(p, h) for p, h in stub.requests if p.startswith("/v1/search")]
    assert searches[-1][0] == "/v1/search?q=found&n=25"
    assert searches[-1][1]["x-docker-token"] == "true"
    assert any(p == "/v1/_ping" for p, _ in stub.requests)  # plain HTTP after HTTPS
    # limit, filters
    status, found = get(daemon, f"/v1.44/images/search?term={stub.host}/found&limit=2")
    assert [r["name"] for r in found] == ["library/found", "someone/found"]
    assert stub.requests[-1][0] == "/v1/search?q=found&n=2"
    for filters, names in (({"is-official": ["true"]}, ["library/found"]),
                           ({"is-official": ["false"]}, ["someone/found", "other/found-too"]),
                           ({"stars": ["10"]}, ["library/found", "other/found-too"]),
                           ({"is-automated": ["true"]}, [])):
        query = urllib.parse.urlencode({"term": f"{stub.host}/found",
                                        "filters": json.dumps(filters)})
        status, found = get(daemon, f"/v1.44/images/search?{query}")
        assert (status, [r["name"] for r in found]) == (200, names), filters
    # the docker CLI's table and --filter
    out = daemon.ok("search", "--filter", "stars=10", f"{stub.host}/found")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "DESCRIPTION", "STARS"]
    assert [line.split()[0] for line in lines[1:]] == ["library/found", "other/found-too"]


def test_search_refuses_what_dockerd_refuses(daemon, stub):
    term = f"term={stub.host}/found"
    for query, status, message in (
            (f"{term}&limit=101", 400, "limit 101 is outside the range of [1, 100]"),
            (f"{term}&limit=abc", 400,
             'invalid limit specified: strconv.Atoi: parsing "abc": invalid syntax'),
            (f"{term}&filters=" + urllib.parse.quote('{"color":["red"]}'), 400,
             "invalid filter 'color'"),
            (f"{term}&filters=" + urllib.parse.quote('{"is-official":["maybe"]}'), 400,
             "invalid filter 'is-official=maybe'"),
            ("term=http://" + stub.host + "/found", 400,
             f"invalid repository name: repository name (http://{stub.host}/found) should "
             "not have a scheme")):
        assert get(daemon, f"/v1.44/images/search?{query}") == (status, {"message": message})


def test_search_offline_fails_clearly(daemon):
    # Docker Hub's index, behind the daemon's dead proxy: what an offline machine sees
    status, body = get(daemon, "/v1.44/images/search?term=busybox")
    assert status == 500
    assert body["message"].startswith(
        'Get "https://index.docker.io/v1/search?q=busybox&n=25": ')
    proc = daemon.docker("search", "busybox")
    assert proc.returncode == 1
    assert proc.stderr.startswith('Error response from daemon: Get "https://index.docker.io/'
                                  'v1/search?q=busybox&n=25": ')
    # a registry on this machine that does not answer: dockerd's invalid endpoint
    dead = f"127.0.0.1:{free_port()}"
    status, body = get(daemon, f"/v1.44/images/search?term={dead}/x")
    assert status == 400
    assert body["message"] == (
        f'invalid registry endpoint "http://{dead}/v1/". HTTPS attempt: Get '
        f'"https://{dead}/v1/_ping": connect: connection refused. HTTP attempt: Get '
        f'"http://{dead}/v1/_ping": connect: connection refused')


def test_distribution_inspect(daemon, published, registry, busybox_layer):
    multi = published([ImageSpec([busybox_layer]),
                       ImageSpec([random_layer(unique(), 100)], arch="arm64", variant="v8")])
    status, body = get(daemon, f"/v1.44/distribution/{multi['ref']}/json")
    assert status == 200
    descriptor = body["Descriptor"]
    assert descriptor["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert descriptor["digest"] == multi["index"]
    assert list(descriptor) == ["mediaType", "digest", "size"]
    host_arch = host_platform().architecture
    assert {"architecture": host_arch, "os": "linux"} in [
        {k: v for k, v in p.items() if k != "variant"} for p in body["Platforms"]]
    assert {"architecture": "arm64", "os": "linux", "variant": "v8"} in body["Platforms"]
    # a single Docker schema2 manifest: its config's platform; by digest too
    single = published([ImageSpec([busybox_layer])], fmt="v2s2")
    status, body = get(daemon, f"/v1.44/distribution/{single['ref']}/json")
    assert status == 200
    assert body["Descriptor"]["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    digest = body["Descriptor"]["digest"]
    assert [p["os"] for p in body["Platforms"]] == ["linux"]
    by_digest = single["ref"].rsplit(":", 1)[0] + "@" + digest
    status, again = get(daemon, f"/v1.44/distribution/{by_digest}/json")
    assert (status, again) == (200, body)
    # what the registry lacks, what is no name, an image Id
    missing = single["ref"].rsplit(":", 1)[0] + ":nope"
    assert get(daemon, f"/v1.44/distribution/{missing}/json") == (
        404, {"message": "manifest unknown: manifest unknown"})
    status, body = get(daemon, f"/v1.44/distribution/{registry.host}/Upper/x/json")
    assert status == 400 and "must be lowercase" in body["message"]
    assert get(daemon, "/v1.44/distribution/" + "a" * 64 + "/json") == (
        500, {"message": "no manifest found for full image ID"})


def test_docker_py_inspect_distribution(daemon, published, busybox_layer):
    docker = pytest.importorskip("docker")
    info = published([ImageSpec([busybox_layer])], fmt="v2s2")
    client = docker.APIClient(base_url=daemon.env["DOCKER_HOST"], timeout=60)
    try:
        data = client.inspect_distribution(info["ref"])
        assert data["Platforms"] == [{"architecture": host_platform().architecture,
                                      "os": "linux"}]
        assert data["Descriptor"]["digest"] == skopeo_inspect(info["ref"])["Digest"]
    finally:
        client.close()



def test_distribution_inspect_of_a_docker_hub_name_asks_the_mirror(daemon, published,
                                                                   busybox_layer):
    name = unique("mirrored")
    info = published([ImageSpec([busybox_layer])], repo=f"library/{name}")
    status, body = get(daemon, f"/v1.44/distribution/{name}/json")
    assert status == 200
    assert body["Descriptor"]["digest"] == info["digests"][0]
    # not on the mirror: Docker Hub itself, behind the dead proxy
    status, body = get(daemon, f"/v1.44/distribution/{unique('absent')}/json")
    assert status == 500
    assert body["message"].startswith('Get "https://registry-1.docker.io/v2/": ')
