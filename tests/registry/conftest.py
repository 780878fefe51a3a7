"""Real registries on 127.0.0.1 for the registry client's tests (issue 9).

* ``RegistryServer``: Debian's docker-registry (distribution 2.8) with its own
  storage dir and port, in one of four modes: plain HTTP, htpasswd basic auth,
  TLS from a test CA made with openssl, and token auth against ``TokenServer``.
* ``TokenServer``: the tests' own Bearer token service (a threaded HTTP
  server): checks Basic credentials, grants the scopes asked for (anonymous
  callers: pull of ``public/*`` only) and signs RS256 JWTs with a key whose
  certificate the registry trusts (``kid`` in libtrust's format).  It records
  every token request, so tests can see scopes and caching.
* ``FaultProxy``: a reverse proxy in front of a registry that injects faults
  by rule -- an HTTP status N times, a body cut short, a byte flipped -- and
  records every request (method, path, Range) it forwarded.  It also serves as a
  forward proxy (absolute-URI requests), for the proxy-from-environment test.
* ``OCI layouts`` written by the tests (``write_layout``): any layers, gzip or
  zstd or plain, several platforms in one index; skopeo copies them into the
  registry (``--format v2s2`` gives Docker schema2 manifests).

Nothing here contacts anything but 127.0.0.1; every server is stopped and
every directory removed at the end.
"""

import base64
import contextlib
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid

import pytest

from pybox.images.layers import write_tree
from pybox.images.registry import Registries
from pybox.images.registry_config import RegistryOptions
from pybox.images.rootfs import build_busybox_rootfs
from pybox.images.service import Images

pytestmark = [pytest.mark.registry, pytest.mark.root]

TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "umoci": "umoci",
         "openssl": "openssl", "htpasswd": "apache2-utils"}
USER, PASSWORD = "pyboxtest", "s3cret-pw"


def ensure_tools():
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"{missing} missing and not root to apt-get install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                           *missing], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot install {missing}: {proc.stderr[-500:]}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process=None, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def run(*argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


# -- a test CA --------------------------------------------------------------------------
class TestCA:
    def __init__(self, directory):
        self.dir = directory
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_cert = os.path.join(directory, "ca.crt")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            self.ca_key, "-out", self.ca_cert, "-days", "2", "-subj", "/CN=pybox-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def server_cert(self, name="server"):
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


# -- the tests' token server ------------------------------------------------------------------
def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_der):
    """docker/libtrust's key id: base32 of sha256(SPKI DER)[:30], groups of 4."""
    digest = hashlib.sha256(public_der).digest()[:30]
    text = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


class TokenServer:
    """Issues Bearer tokens for docker-registry's token auth."""

    service = "pybox-test-registry"
    issuer = "pybox-test-issuer"

    def __init__(self, directory, users=None):
        self.dir = directory
        self.users = users if users is not None else {USER: PASSWORD}
        self.key = os.path.join(directory, "token.key")
        self.cert = os.path.join(directory, "token.crt")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
            "-out", self.cert, "-days", "2", "-subj", "/CN=pybox-test-token")
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-pubkey", "-noout"],
                             capture_output=True, check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der,
                             capture_output=True, check=True).stdout
        self.kid = libtrust_key_id(der)
        self.requests = []  # (account or None, [scopes], authorized)
        self.lock = threading.Lock()
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode())).encode()
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=signing_input, capture_output=True, check=True).stdout
        return signing_input.decode() + "." + _b64url(signature)

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import urllib.parse

                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                account = None
                authorized = False
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(user) != password:
                        with server.lock:
                            server.requests.append((user, query.get("scope", []), False))
                        self._reply(401, {"details": "incorrect username or password"})
                        return
                    account, authorized = user, True
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    wanted = actions.split(",")
                    granted = wanted if authorized else (
                        ["pull"] if name.startswith("public/") and "pull" in wanted else [])
                    access.append({"type": kind, "name": name, "actions": granted})
                with server.lock:
                    server.requests.append((account, query.get("scope", []), authorized))
                now = int(time.time())
                token = server.sign({"iss": server.issuer, "sub": account or "",
                                     "aud": server.service, "exp": now + 300,
                                     "nbf": now - 10, "iat": now,
                                     "jti": uuid.uuid4().hex, "access": access})
                self._reply(200, {"token": token, "access_token": token,
                                  "expires_in": 300})

            def _reply(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- docker-registry --------------------------------------------------------------------------
class RegistryServer:
    def __init__(self, base, mode="plain", ca=None, token_server=None):
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix=f"registry-{mode}-", dir=base)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process = None
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:",
                 "    disabled: true", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.dir}/data", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}"]
        if mode == "tls":
            cert, key = ca.server_cert(f"server-{self.port}")
            lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        if mode == "htpasswd":
            htpasswd = os.path.join(self.dir, "htpasswd")
            with open(htpasswd, "w") as f:
                f.write(run("htpasswd", "-Bbn", USER, PASSWORD))
            lines += ["auth:", "  htpasswd:", "    realm: pybox-test-realm",
                      f"    path: {htpasswd}"]
        if mode == "token":
            lines += ["auth:", "  token:", f"    realm: {token_server.realm}",
                      f"    service: {token_server.service}",
                      f"    issuer: {token_server.issuer}",
                      f"    rootcertbundle: {token_server.cert}"]
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = os.path.join(self.dir, "registry.log")

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["docker-registry", "serve", self.config],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_port(self.port, self.process)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self):
        return ("https://" if self.mode == "tls" else "http://") + self.host


# -- a fault-injecting proxy ----------------------------------------------------------------
class Fault:
    """What to do to requests matching ``method`` and the ``path`` regex, the
    first ``times`` times (None: always): ``status`` (with ``headers``,
    ``body``), ``truncate`` (send half the body, then close), ``corrupt`` (flip a
    byte of the body)."""

    def __init__(self, method, path, *, status=None, truncate=False, corrupt=False,
                 times=None, headers=None, body=b""):
        self.method = method
        self.path = re.compile(path)
        self.status = status
        self.truncate = truncate
        self.corrupt = corrupt
        self.times = times
        self.headers = headers or {}
        self.body = body
        self.hits = 0


class FaultProxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.faults = []
        self.seen = []  # (method, path, range header)
        self.lock = threading.Lock()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, *args, **kwargs):
        fault = Fault(*args, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self):
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def _take(self, method, path):
        with self.lock:
            self.seen.append((method, path))
            for fault in self.faults:
                if fault.method == method and fault.path.search(path) and \
                        (fault.times is None or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                path = self.path
                if path.startswith("http://"):  # a forward-proxy request
                    path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
                with proxy.lock:
                    pass
                fault = proxy._take(self.command, path)
                if self.headers.get("Range"):
                    with proxy.lock:
                        proxy.seen.append(("RANGE", path, self.headers["Range"]))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fault is not None and fault.status is not None:
                    self.send_response(fault.status)
                    for k, v in fault.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(fault.body)))
                    self.end_headers()
                    self.wfile.write(fault.body)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "proxy-connection")}
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fault is not None and fault.corrupt and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if fault is not None and fault.truncate:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler

    def ranges(self):
        with self.lock:
            return [s for s in self.seen if s[0] == "RANGE"]

    def requests(self, method=None):
        with self.lock:
            return [s for s in self.seen if s[0] != "RANGE" and (method is None or
                                                                   s[0] == method)]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- OCI layouts the tests write ----------------------------------------------------------------
def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files):
    """A layer tar of {path: bytes} (directories made as needed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


def compress(data, kind):
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               None: "application/vnd.oci.image.layer.v1.tar"}


class ImageSpec:
    """One image of a layout: layer tars (uncompressed), their compression, a
    platform, a command."""

    def __init__(self, layers, compression="gzip", os_="linux", arch=None, variant=None,
                 cmd=("sh",)):
        from pybox.images.platforms import host_platform

        host = host_platform()
        self.layers = layers
        self.compression = compression
        self.os = os_
        self.arch = arch or host.architecture
        self.variant = variant if variant is not None else (host.variant if arch is None
                                                            else "")
        self.cmd = list(cmd)


def write_layout(path, images, tag="latest"):
    """An OCI layout at ``path``: one image (a manifest) or several (an index of
    platform manifests) under ``tag``.  Returns {"digests": [manifest digests],
    "configs": [config digests], "layers": [[blob digests]]}."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        digest = sha(data)
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return digest

    out = {"digests": [], "configs": [], "layers": [], "sizes": []}
    descriptors = []
    for spec in images:
        layer_descs, diff_ids = [], []
        for layer in spec.layers:
            blob = compress(layer, spec.compression)
            layer_descs.append({"mediaType": LAYER_TYPES[spec.compression],
                                "digest": put(blob), "size": len(blob)})
            diff_ids.append(sha(layer))
        config = {"created": "2024-01-02T03:04:05Z", "architecture": spec.arch,
                  "os": spec.os, "config": {"Cmd": spec.cmd, "Env": [
                      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "test"}
                              for _ in diff_ids]}
        if spec.variant:
            config["variant"] = spec.variant
        config_bytes = json.dumps(config).encode()
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": put(config_bytes), "size": len(config_bytes)},
                    "layers": layer_descs}
        manifest_bytes = json.dumps(manifest).encode()
        digest = put(manifest_bytes)
        platform = {"architecture": spec.arch, "os": spec.os}
        if spec.variant:
            platform["variant"] = spec.variant
        descriptors.append({"mediaType": manifest["mediaType"], "digest": digest,
                            "size": len(manifest_bytes), "platform": platform})
        out["digests"].append(digest)
        out["configs"].append(sha(config_bytes))
        out["layers"].append([d["digest"] for d in layer_descs])
    if len(descriptors) == 1:
        top = dict(descriptors[0])
        top.pop("platform")
    else:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": descriptors}
        index_bytes = json.dumps(index).encode()
        top = {"mediaType": index["mediaType"], "digest": put(index_bytes),
               "size": len(index_bytes)}
        out["index"] = top["digest"]
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return out


def skopeo_copy(layout, tag, dest, *, all_=False, fmt=None, creds=None, tls_verify=False,
                cert_dir=None):
    argv = ["skopeo", "--insecure-policy", "copy", "--retry-times", "0"]
    if not fmt:
        argv.append("--preserve-digests")  # keep plain layers plain, digests as written
    if all_:
        argv.append("--all")
    if fmt:
        argv += ["--format", fmt]
    if creds:
        argv += ["--dest-creds", creds]
    argv += [f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
    if cert_dir:
        argv += ["--dest-cert-dir", cert_dir]
    argv += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    run(*argv)


def skopeo_inspect(ref, *, raw=False, creds=None, tls_verify=False):
    argv = ["skopeo", "inspect", f"--tls-verify={'true' if tls_verify else 'false'}"]
    if raw:
        argv.append("--raw")
    if creds:
        argv += ["--creds", creds]
    return json.loads(run(*argv, f"docker://{ref}"))


def store_listing(data_root):
    """Everything that makes the store's content, for "unchanged" checks."""
    root = os.path.join(data_root, "images")
    listing = {}
    for sub in ("blobs/sha256", "imagedb", "layers", "l", "containers", "ingest"):
        path = os.path.join(root, sub)
        listing[sub] = sorted(os.listdir(path)) if os.path.isdir(path) else []
    tags = os.path.join(root, "repositories.json")
    listing["tags"] = json.load(open(tags)) if os.path.exists(tags) else None
    return listing


def random_layer(seed, size):
    """A layer of incompressible bytes (so sizes are what they say)."""
    import random

    rng = random.Random(seed)
    return tar_of({f"data/{seed}.bin": rng.randbytes(size)})


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def base_dir():
    ensure_tools()
    path = tempfile.mkdtemp(prefix="pybox-test-registry-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_ca(base_dir):
    directory = os.path.join(base_dir, "ca")
    os.makedirs(directory)
    return TestCA(directory)


def _server(base_dir, mode, **kw):
    server = RegistryServer(base_dir, mode, **kw)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def registry(base_dir):
    server = _server(base_dir, "plain")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(base_dir):
    server = _server(base_dir, "htpasswd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(base_dir, test_ca):
    server = _server(base_dir, "tls", ca=test_ca)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_server(base_dir):
    directory = os.path.join(base_dir, "token")
    os.makedirs(directory)
    server = TokenServer(directory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(base_dir, token_server):
    server = _server(base_dir, "token", token_server=token_server)
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(registry.port)
    yield proxy
    proxy.stop()


@pytest.fixture
def data_root():
    root = tempfile.mkdtemp(prefix="pybox-test-regstore-")
    yield root
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(root + "/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def images(data_root):
    return Images.open(data_root)


@pytest.fixture
def options():
    """Fast back-off, no proxies from the environment."""
    return RegistryOptions(backoff_seconds=0.01, proxies={}, max_attempts=4,
                           read_timeout=20, connect_timeout=5)


@pytest.fixture
def registries(options):
    regs = Registries(options)
    yield regs
    regs.close()


@pytest.fixture
def workdir(base_dir):
    path = tempfile.mkdtemp(prefix="work-", dir=base_dir)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory):
    """The busybox-static root filesystem as a plain layer tar (a runnable base)."""
    tree = build_busybox_rootfs(str(tmp_path_factory.mktemp("pybox-reg-busybox") / "rootfs"))
    out = io.BytesIO()
    write_tree(tree, out)
    shutil.rmtree(os.path.dirname(tree), ignore_errors=True)
    return out.getvalue()


def unique(prefix="t"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def published(registry, busybox_layer, workdir):
    """publish(images=[ImageSpec...], repo=None, tag="latest", fmt=None) -> info:
    writes an OCI layout and skopeo-copies it to the plain registry."""

    def publish(specs=None, repo=None, tag="latest", fmt=None, server=None, creds=None):
        server = server or registry
        specs = specs or [ImageSpec([busybox_layer, random_layer(unique(), 300_000)])]
        layout = os.path.join(workdir, unique("layout"))
        info = write_layout(layout, specs, tag)
        repo = repo or f"test/{unique()}"
        skopeo_copy(layout, tag, f"{server.host}/{repo}:{tag}", all_=len(specs) > 1,
                    fmt=fmt, creds=creds)
        info["repo"] = repo
        info["ref"] = f"{server.host}/{repo}:{tag}"
        return info

    return publish
