"""A client for the OCI distribution spec (Docker Registry HTTP API v2).

    registries = Registries(RegistryOptions())          # one per daemon: pools, tokens
    client = registries.client("127.0.0.1:5000", credentials)
    data, media_type, digest = client.get_manifest("me/app", "latest")
    with client.open_blob("me/app", layer_digest, size) as blob: ...   # resumes

What it does for its callers (pull.py, push.py, login):

* **Endpoints**: ``RegistryOptions.endpoints`` gives the URLs to try (mirrors,
  HTTPS, plain HTTP for insecure registries); ``GET /v2/`` picks the first that
  answers as a registry and tells which authentication it wants.
* **Authentication**: none, Basic (credentials on every request), or Bearer
  tokens from the ``WWW-Authenticate`` challenge's realm for the request's
  scopes (``repository:NAME:pull,push``), cached per (realm, service, account,
  scopes) until they expire.  A 401 on a request re-reads the challenge (a
  registry may ask for a wider scope) and retries once with a fresh token.
* **Retries**: connection errors, timeouts, 429 and 5xx are retried with
  exponential back-off (``Retry-After`` honoured) up to ``max_attempts``;
  ``BlobReader`` resumes an interrupted download with a Range request from the
  byte it got to, so a dropped connection costs no bytes twice.
* **Redirects** (blob storage on another host) are followed without the
  Authorization header.
* **Errors** become RegistryError / AuthenticationError / RegistryNotFound with
  docker's wording (``manifest unknown: manifest unknown``, ``received
  unexpected HTTP status: 500 Internal Server Error``).

HTTP is urllib3's: pooled keep-alive connections shared by the download
threads, proxies (CONNECT for HTTPS), TLS contexts per endpoint.
"""

import base64
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import IO, Any, Self

import urllib3

from pybox.errors import AuthenticationError, DigestMismatch, RegistryError, RegistryNotFound
from pybox.formats.registryauth import ANONYMOUS, Credentials, registry_domain
from pybox.images.auth import parse_challenges
from pybox.images.registry_config import Endpoint, RegistryOptions
from pybox.images.store import sha256_digest

USER_AGENT = "pybox/0.1 (linux) docker/28"
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST_BYTES = 4 << 20
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
TOKEN_DEFAULT_SECONDS = 60
READ_CHUNK = 1 << 20

# (scheme lower-cased, {param: value}) from a WWW-Authenticate header
Challenge = tuple[str, dict[str, str]]
# what a request sends: bytes, or a callable opening a fresh file per attempt
Body = bytes | Callable[[], IO[bytes]] | None
# a bearer token's cache key: realm, service, account, identity token, scopes
TokenKey = tuple[str | None, str | None, str, str, tuple[str, ...]]


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class TokenCache:
    """Bearer tokens by (realm, service, account, scopes), kept until shortly
    before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry and entry[1] > time.monotonic():
                return entry[0]
            self._tokens.pop(key, None)
            return None

    def put(self, key: TokenKey, token: str, expires_in: int | None) -> None:
        lifetime = max(10, int(expires_in or TOKEN_DEFAULT_SECONDS)) - 5
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + lifetime)

    def drop(self, key: TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)


class Registries:
    """What outlives one pull: connection pools per endpoint and proxy, which
    endpoint answered for a registry, and cached tokens.  Thread-safe."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.tokens = TokenCache()
        self._pools: dict[tuple[str, bool, str | None], urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def client(self, domain: str, credentials: Credentials = ANONYMOUS, *,
               push: bool = False) -> "RegistryClient":
        return RegistryClient(self, domain, credentials, push=push)

    def pool(self, endpoint: Endpoint, url: str) -> urllib3.PoolManager:
        """The urllib3 manager for requests to ``url`` found through
        ``endpoint`` (its TLS rules), through a proxy when the environment says."""
        proxy = self.options.proxy_for(url)
        key = (endpoint.url, endpoint.verify_tls, proxy)
        with self._lock:
            manager = self._pools.get(key)
            if manager is None:
                kwargs: dict[str, Any] = {"num_pools": 16, "maxsize": 16, "block": False,
                          "retries": False,
                          "timeout": urllib3.Timeout(connect=self.options.connect_timeout,
                                                     read=self.options.read_timeout)}
                if endpoint.url.startswith("https://"):
                    kwargs["ssl_context"] = self.options.ssl_context(endpoint)
                    if not endpoint.verify_tls:
                        kwargs["cert_reqs"] = "CERT_NONE"
                        kwargs["assert_hostname"] = False
                if proxy:
                    manager = urllib3.ProxyManager(proxy, **kwargs)
                else:
                    manager = urllib3.PoolManager(**kwargs)
                self._pools[key] = manager
            return manager

    def close(self) -> None:
        with self._lock:
            for manager in self._pools.values():
                manager.clear()
            self._pools.clear()


class RegistryClient:
    """One registry, one set of credentials.  ``ping`` chooses the endpoint;
    every other call goes through ``request`` (auth, retries, errors)."""

    def __init__(self, registries: Registries, domain: str, credentials: Credentials = ANONYMOUS,
                 *, push: bool = False) -> None:
        self.registries = registries
        self.options = registries.options
        self.domain = domain
        self.credentials = credentials or ANONYMOUS
        self.candidates: list[Endpoint] = self.options.endpoints(domain, push=push)
        self.endpoint: Endpoint | None = None
        self.challenge: Challenge | None = None  # from GET /v2/, None = no auth
        self.extra_scopes: set[str] = set()  # scopes a 401 asked for on top of ours
        self.refresh_token = ""  # the token server's, when it gives one (login)

    # -- endpoint and authentication ---------------------------------------------
    def ping(self, endpoint: Endpoint | None = None) -> Endpoint:
        """GET /v2/ on ``endpoint`` (or each candidate in turn) -> the endpoint
        chosen.  A candidate that cannot be reached, speaks no TLS (plain HTTP
        after an HTTPS try) or is not a v2 registry makes way for the next;
        the last one's error is raised."""
        endpoints = [endpoint] if endpoint else self.candidates
        last_error: RegistryError | None = None
        for candidate in endpoints:
            url = candidate.url + "/v2/"
            try:
                resp = self.send(candidate, "GET", url, {}, None, attempts=2)
            except RegistryError as e:
                last_error = e
                continue
            resp.drain_conn()
            if resp.status == 401:
                self.endpoint = candidate
                self.challenge = _pick_challenge(
                    resp.headers.getlist("WWW-Authenticate"))
                return candidate
            if resp.status == 200:
                self.endpoint = candidate
                self.challenge = None
                return candidate
            last_error = RegistryError(f"{candidate.url}/v2/: received unexpected HTTP "
                                       f"status: {resp.status} {resp.reason}",
                                       status=resp.status)
        raise last_error or RegistryError(f"no endpoint for registry {self.domain}")

    def auth_header(self, scopes: Iterable[str]) -> str | None:
        """The Authorization value for requests needing ``scopes`` (None: none)."""
        if self.credentials.registry_token:
            return "Bearer " + self.credentials.registry_token
        if self.challenge is None:
            return None
        scheme, params = self.challenge
        if scheme == "basic":
            if not (self.credentials.username or self.credentials.password):
                return None
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if scheme == "bearer":
            return "Bearer " + self.token(scopes)
        return None

    def _token_key(self, scopes: Iterable[str]) -> TokenKey:
        _, params = self._params()
        return (params.get("realm"), params.get("service"), self.credentials.username,
                self.credentials.identity_token, tuple(sorted(set(scopes) | self.extra_scopes)))

    def _params(self) -> Challenge:
        if self.challenge is None:
            raise AuthenticationError(f"{self.domain}: no authentication challenge")
        return self.challenge

    def token(self, scopes: Iterable[str], *, offline: bool = False) -> str:
        """A bearer token for ``scopes`` from the challenge's realm (cached).
        With credentials the token server gets them as Basic auth (or, with an
        identity token, as an OAuth refresh-token grant), as docker sends them."""
        key = self._token_key(scopes)
        cached = None if offline else self.registries.tokens.get(key)
        if cached:
            return cached
        _, params = self._params()
        realm = params.get("realm")
        if not realm:
            raise AuthenticationError(f"{self.domain}: bearer challenge without a realm")
        all_scopes = sorted(set(scopes) | self.extra_scopes)
        creds = self.credentials
        fields = [("service", params["service"])] if params.get("service") else []
        fields += [("scope", s) for s in all_scopes]
        headers: dict[str, str] = {}
        body: bytes | None
        if creds.identity_token:
            fields += [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                       ("client_id", "pybox")]
            body = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            method, url = "POST", realm
        else:
            if creds.username:
                fields.append(("account", creds.username))
                raw = f"{creds.username}:{creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            if offline:
                fields += [("offline_token", "true"), ("client_id", "pybox")]
            sep = "&" if "?" in realm else "?"
            method, url, body = "GET", realm + (sep + urllib.parse.urlencode(fields)
                                                if fields else ""), None
        resp = self.send(self._chosen(), method, url, headers, body)
        data = resp.data
        if resp.status in (401, 403):
            message = _error_text(data) or "incorrect username or password"
            raise AuthenticationError(f"unauthorized: {message}" if not message.startswith(
                "unauthorized") else message, status=resp.status)
        if resp.status != 200:
            raise AuthenticationError(f"getting a token from {realm}: received unexpected HTTP "
                                      f"status: {resp.status} {resp.reason}", status=resp.status)
        try:
            doc = json.loads(data)
        except ValueError:
            raise AuthenticationError(f"getting a token from {realm}: invalid JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not token or not isinstance(token, str):
            raise AuthenticationError(f"getting a token from {realm}: no token in the answer")
        self.registries.tokens.put(key, token, doc.get("expires_in"))
        self.refresh_token = doc.get("refresh_token") or ""
        return token

    # -- requests ---------------------------------------------------------------------
    def _chosen(self) -> Endpoint:
        """The endpoint ping chose (pinging first when none is yet)."""
        return self.endpoint if self.endpoint is not None else self.ping()

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self._chosen().url + path

    def request(self, method: str, path: str, *, scopes: Sequence[str] = (),
                headers: dict[str, str] | None = None, body: Body = None, stream: bool = False,
                expect: Iterable[int] = (200,), retry: bool = True,
                what: str | None = None) -> urllib3.BaseHTTPResponse:
        """Send with authentication, retries and redirects; the response when its
        status is in ``expect``, else the registry's error as an exception.
        ``body``: bytes, or a callable giving a fresh file object per attempt.
        With ``stream`` the body is left unread (``resp.read``, then
        ``resp.release_conn()``)."""
        endpoint = self._chosen()
        url = self.url(path)
        auth_retried = False
        attempts = self.options.max_attempts if retry else 1
        attempt = 0
        while True:
            send_headers = {"User-Agent": USER_AGENT}
            send_headers.update(headers or {})
            authorization = self.auth_header(scopes)
            if authorization:
                send_headers["Authorization"] = authorization
            resp = self.send(endpoint, method, url, send_headers, body,
                             stream=stream, attempts=attempts - attempt)
            if resp.status == 401 and not auth_retried and not self.credentials.registry_token:
                auth_retried = True
                self._learn_challenge(resp, scopes)
                resp.drain_conn()
                resp.release_conn()
                if self.challenge is not None:
                    continue
            if resp.status in RETRY_STATUSES and attempt + 1 < attempts:
                delay = _retry_after(resp) or self.options.backoff_seconds * (2 ** attempt)
                resp.drain_conn()
                resp.release_conn()
                attempt += 1
                time.sleep(min(delay, 30))
                continue
            if resp.status in expect:
                return resp
            error = self.error(resp, what or f"{method} {url}")
            resp.release_conn()
            raise error

    def _learn_challenge(self, resp: urllib3.BaseHTTPResponse, scopes: Sequence[str]) -> None:
        challenge = _pick_challenge(resp.headers.getlist("WWW-Authenticate"))
        if challenge is None:
            return
        if self.challenge is not None and self.challenge[0] == "bearer":
            self.registries.tokens.drop(self._token_key(scopes))
        scheme, params = challenge
        if scheme == "bearer" and params.get("scope"):
            wanted = set(params["scope"].split(" "))
            self.extra_scopes |= wanted - set(scopes)
        self.challenge = challenge

    def send(self, endpoint: Endpoint, method: str, url: str, headers: dict[str, str],
             body: Body, *, stream: bool = False,
             attempts: int | None = None) -> urllib3.BaseHTTPResponse:
        """One request to ``endpoint`` with connection-level retries and manual
        redirects (no authentication, no retry on an HTTP status: ``request``)."""
        attempts = attempts or self.options.max_attempts
        attempt = 0
        redirects = 0
        while True:
            payload = body() if callable(body) else body
            try:
                resp = self.registries.pool(endpoint, url).request(
                    method, url, headers=headers, body=payload, preload_content=not stream,
                    decode_content=False, redirect=False, retries=False)
            except urllib3.exceptions.SSLError as e:
                raise RegistryError(f'{method.title()} "{url}": tls: {_reason(e)}') from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if attempt + 1 < attempts and not _is_tls_mismatch(e):
                    time.sleep(min(self.options.backoff_seconds * (2 ** attempt), 30))
                    attempt += 1
                    continue
                raise RegistryError(f'{method.title()} "{url}": '
                                    f'{_reason(e, urllib.parse.urlsplit(url).hostname)}') from None
            finally:
                if payload is not None and not isinstance(payload, bytes):
                    payload.close()
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location") \
                    and redirects < MAX_REDIRECTS:
                target = urllib.parse.urljoin(url, resp.headers["Location"])
                resp.drain_conn()
                resp.release_conn()
                redirects += 1
                if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                if resp.status == 303:
                    method, body = "GET", None
                url = target
                continue
            return resp

    def error(self, resp: urllib3.BaseHTTPResponse, what: str) -> RegistryError:
        """The registry's answer as an exception (docker's texts)."""
        try:
            data = resp.data if resp.data is not None else b""
        except (urllib3.exceptions.HTTPError, OSError):
            data = b""
        text = _error_text(data)
        code = _error_code(data)
        if not text:
            text = f"received unexpected HTTP status: {resp.status} {resp.reason}"
            if resp.status == 401:
                text = "unauthorized: authentication required"
        cls: type[RegistryError] = RegistryError
        if resp.status == 401:
            cls = AuthenticationError
        elif resp.status == 404:
            cls = RegistryNotFound
        return cls(text, status=resp.status, code=code)

    # -- the distribution API ---------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index by tag or digest.
        The digest is the registry's Docker-Content-Digest when it sends one
        (checked against the bytes), else the bytes' own."""
        resp = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                            scopes=[pull_scope(repository)],
                            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
                            stream=True, what=f"manifest {repository}:{reference}")
        try:
            length = int(resp.headers.get("Content-Length") or 0)
            if length > MAX_MANIFEST_BYTES:
                raise RegistryError(f"manifest {repository}:{reference} is too large "
                                    f"({length} bytes)")
            data = resp.read(MAX_MANIFEST_BYTES + 1, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise RegistryError(f"reading manifest {repository}:{reference}: {_reason(e)}") \
                from None
        finally:
            resp.release_conn()
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest {repository}:{reference} is too large")
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        actual = sha256_digest(data)
        if reference.startswith("sha256:") and actual != reference:
            raise DigestMismatch(f"manifest {repository}@{reference}", reference, actual)
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != actual:
            raise DigestMismatch(f"manifest {repository}:{reference}", header, actual)
        return data, media_type, actual

    def list_tags(self, repository: str, page_size: int = 1000) -> list[str]:
        """Every tag of a repository (``GET /v2/NAME/tags/list``), following the
        registry's ``Link: <...>; rel="next"`` pages, in the registry's order."""
        tags: list[str] = []
        path = f"/v2/{repository}/tags/list?n={page_size}"
        for _ in range(10000):
            resp = self.request("GET", path, scopes=[pull_scope(repository)],
                                what=f"tags of {repository}")
            try:
                doc = json.loads(resp.data or b"{}")
            except ValueError:
                raise RegistryError(f"tags of {repository}: invalid JSON answer") from None
            finally:
                resp.release_conn()
            listed = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(t for t in (listed or []) if isinstance(t, str))
            following = _next_link(resp.headers.get("Link"))
            if not following:
                return tags
            path = urllib.parse.urljoin(self.url(path), following)
        raise RegistryError(f"tags of {repository}: too many pages")

    def open_blob(self, repository: str, digest: str, size: int | None = None,
                  on_bytes: Callable[[int], None] | None = None) -> "BlobReader":
        return BlobReader(self, repository, digest, size, on_bytes)

    def blob_size(self, repository: str, digest: str, *,
                  scopes: Sequence[str] | None = None) -> int | None:
        """HEAD a blob: its size when the registry has it, else None."""
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                            scopes=scopes or [pull_scope(repository)], expect=(200, 404),
                            what=f"blob {digest}")
        resp.release_conn()
        if resp.status == 404:
            return None
        return int(resp.headers.get("Content-Length") or 0)

    def start_upload(self, repository: str, *, mount: str | None = None,
                     source: str | None = None,
                     scopes: Sequence[str] | None = None) -> tuple[bool, str | None]:
        """POST /blobs/uploads/ -> (mounted: bool, upload URL or None).  With
        ``mount`` (a digest) and ``source`` (a repository on this registry) the
        registry may link the blob across repositories: 201, nothing to send."""
        path = f"/v2/{repository}/blobs/uploads/"
        if mount and source:
            path += "?" + urllib.parse.urlencode({"mount": mount, "from": source})
        resp = self.request("POST", path, scopes=scopes or [push_scope(repository)],
                            headers={"Content-Length": "0"}, body=b"", expect=(201, 202),
                            what=f"starting an upload to {repository}")
        resp.release_conn()
        if resp.status == 201:
            return True, None
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.domain}: upload started without a Location")
        return False, urllib.parse.urljoin(self.url(path), location)

    def finish_upload(self, location: str, digest: str, *, scopes: Sequence[str],
                      body: Body = None, size: int = 0) -> None:
        """PUT the upload (with the whole blob when ``body`` is given)."""
        url = _with_query(location, digest=digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = self.request("PUT", url, scopes=scopes, headers=headers,
                            body=body if body is not None else b"", expect=(201, 204),
                            retry=False, what=f"uploading blob {digest}")
        resp.release_conn()

    def upload_chunk(self, location: str, opener: Callable[[], IO[bytes]], start: int,
                     end: int, *, scopes: Sequence[str]) -> str:
        """PATCH bytes [start, end) of the blob; -> the next upload URL."""
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"{start}-{end - 1}", "Content-Length": str(end - start)}
        resp = self.request("PATCH", location, scopes=scopes, headers=headers, body=opener,
                            expect=(202, 204), retry=False, what="uploading a chunk")
        resp.release_conn()
        return urllib.parse.urljoin(location, resp.headers.get("Location") or location)

    def put_manifest(self, repository: str, tag: str, data: bytes, media_type: str) -> str:
        """PUT the manifest under ``tag``; -> its digest (the registry's)."""
        resp = self.request("PUT", f"/v2/{repository}/manifests/{tag}",
                            scopes=[push_scope(repository)],
                            headers={"Content-Type": media_type}, body=data,
                            expect=(201, 202, 204), what=f"manifest {repository}:{tag}")
        resp.release_conn()
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(data)


class BlobReader:
    """A blob's bytes as a file object for ``Images.write_blob``.  A connection
    that drops (or a body that ends short) is picked up again with ``Range:
    bytes=N-`` from the byte reached; a registry that ignores Range (200) is read
    again from the start and the bytes already seen are skipped.  Gives up after
    ``max_attempts`` interruptions in a row without progress."""

    def __init__(self, client: RegistryClient, repository: str, digest: str, size: int | None,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.client = client
        self.repository = repository
        self.digest = digest
        self.size = size
        self.on_bytes = on_bytes
        self.offset = 0
        self.resp: urllib3.BaseHTTPResponse | None = None
        self.failures = 0

    def _open(self) -> urllib3.BaseHTTPResponse:
        headers = {}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        resp = self.resp = self.client.request(
            "GET", f"/v2/{self.repository}/blobs/{self.digest}",
            scopes=[pull_scope(self.repository)], headers=headers, stream=True,
            expect=(200, 206), what=f"blob {self.digest}")
        if self.offset and resp.status == 200:
            skip = self.offset
            while skip:
                chunk = resp.read(min(skip, READ_CHUNK), decode_content=False)
                if not chunk:
                    raise RegistryError(f"blob {self.digest}: ended before the resume point")
                skip -= len(chunk)
        return resp

    def read(self, amount: int = READ_CHUNK, /) -> bytes:
        while True:
            try:
                resp = self._open() if self.resp is None else self.resp
                data = resp.read(amount, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                self._interrupted(e)
                continue
            if not data and self.size is not None and self.offset < self.size:
                self._interrupted(f"connection closed after {self.offset} of "
                                  f"{self.size} bytes")
                continue
            if data:
                self.offset += len(data)
                self.failures = 0
                if self.size is not None and self.offset > self.size:
                    raise RegistryError(f"blob {self.digest}: the registry sent more than "
                                        f"the {self.size} bytes the manifest says")
                if self.on_bytes:
                    self.on_bytes(len(data))
            return data

    def _interrupted(self, reason: BaseException | str) -> None:
        self._close_response()
        self.failures += 1
        if self.failures >= self.client.options.max_attempts:
            text = reason if isinstance(reason, str) else _reason(reason)
            raise RegistryError(f"downloading blob {self.digest}: {text} (gave up after "
                                f"{self.failures} attempts)")
        time.sleep(min(self.client.options.backoff_seconds * (2 ** (self.failures - 1)), 30))

    def _close_response(self) -> None:
        if self.resp is not None:
            try:
                self.resp.release_conn()
                self.resp.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass
            self.resp = None

    def close(self) -> None:
        self._close_response()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# -- helpers -------------------------------------------------------------------------

def _pick_challenge(values: Iterable[str] | None) -> Challenge | None:
    """Bearer over Basic when a registry offers both (docker's preference)."""
    found: list[Challenge] = []
    for value in values or []:
        if value:
            found.extend(parse_challenges(value))
    for scheme in ("bearer", "basic"):
        for challenge in found:
            if challenge[0] == scheme:
                return challenge
    return None


def _next_link(header: str | None) -> str | None:
    """The target of a ``Link: <URL>; rel="next"`` header (RFC 8288), or None."""
    for part in (header or "").split(","):
        target, _, params = part.strip().partition(">")
        if target.startswith("<") and any(p.strip().replace('"', "") == "rel=next"
                                          for p in params.split(";")):
            return target[1:]
    return None


def _retry_after(resp: urllib3.BaseHTTPResponse) -> int | None:
    value = resp.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return int(value.strip())
    return None


def _error_doc(data: bytes | None) -> list[dict[str, Any]]:
    try:
        doc = json.loads(data or b"")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errors or [] if isinstance(e, dict)]


def _error_code(data: bytes | None) -> str | None:
    errors = _error_doc(data)
    code = errors[0].get("code") if errors else None
    return code if isinstance(code, str) else None


def _error_text(data: bytes | None) -> str:
    """distribution's errcode text: ``manifest unknown: manifest unknown``."""
    errors = _error_doc(data)
    if not errors:
        try:
            doc = json.loads(data or b"")
            details = doc.get("details") if isinstance(doc, dict) else None
            if isinstance(details, str):
                return details
        except (ValueError, UnicodeDecodeError):
            pass
        return ""
    parts = []
    for e in errors:
        code = (e.get("code") or "unknown").replace("_", " ").lower()
        message = e.get("message") or code
        parts.append(f"{code}: {message}")
    return parts[0] if len(parts) == 1 else "errors:\n" + "\n".join(parts)


def _reason(exc: BaseException, host: str | None = None) -> str:
    """A connection error's innermost reason, as Go prints dial errors (a name
    that does not resolve, offline: ``dial tcp: lookup HOST: no such host``)."""
    seen = exc
    for _ in range(5):
        inner = getattr(seen, "reason", None) or getattr(seen, "__context__", None)
        if not isinstance(inner, BaseException) or inner is seen:
            break
        seen = inner
    text = str(seen)
    if isinstance(seen, ConnectionRefusedError) or "Connection refused" in text:
        return "connect: connection refused"
    if "timed out" in text.lower():
        return "i/o timeout"
    if host and isinstance(seen, socket.gaierror) and seen.errno in (
            socket.EAI_NONAME, socket.EAI_AGAIN, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return f"dial tcp: lookup {host}: no such host"
    return text


def _is_tls_mismatch(exc: BaseException) -> bool:
    text = str(exc)
    return "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or \
        "record layer failure" in text


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def login(registries: Registries, server_address: str | None,
          credentials: Credentials) -> dict[str, str]:
    """Check credentials against a registry as dockerd's ``POST /auth`` does:
    GET /v2/ with them (Basic), or a token for no scope from the challenge's
    realm (Bearer).  Returns {"Status": "Login Succeeded", "IdentityToken": ...};
    raises AuthenticationError with docker's text when they are refused."""
    domain = registry_domain(server_address)
    client = registries.client(domain, credentials, push=True)
    endpoint = client.ping()
    identity = ""
    if client.challenge is None:
        pass  # the registry wants no authentication at all
    elif client.challenge[0] == "basic":
        headers = {"User-Agent": USER_AGENT}
        authorization = client.auth_header([])
        if authorization is not None:
            headers["Authorization"] = authorization
        resp = client.send(endpoint, "GET", endpoint.url + "/v2/", headers, None)
        resp.drain_conn()
        resp.release_conn()
        if resp.status != 200:
            raise AuthenticationError(f"login attempt to {endpoint.url}/v2/ failed with "
                                      f"status: {resp.status} {resp.reason}",
                                      status=resp.status)
    elif client.challenge[0] == "bearer":
        if not (credentials.username or credentials.identity_token):
            raise AuthenticationError("unauthorized: no username given", status=401)
        client.token([], offline=True)
        identity = client.refresh_token
    return {"Status": "Login Succeeded", "IdentityToken": identity}
