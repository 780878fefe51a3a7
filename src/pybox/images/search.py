"""``docker search``: a registry's v1 search endpoint, as dockerd queries it
(moby's registry/search.go and search_endpoint_v1.go).

A term names its registry as an image name does: ``busybox`` and ``me/app``
search Docker Hub's index (``https://index.docker.io/v1/search``, never a
mirror: dockerd does not search mirrors), ``HOST[:PORT]/NAME`` that host's
``/v1/search``.  Another host is first pinged (``GET /v1/_ping``) over HTTPS,
then, when the registry is insecure (listed, or on 127.0.0.0/8), over plain
HTTP; any answer will do, a failure to connect is dockerd's "invalid registry
endpoint" (400).  The search itself: ``?q=NAME&n=LIMIT``; a registry that
cannot be reached is a 500 with the request in Go's words (``Get "URL": ...``),
which is also what ``docker search`` prints on a machine that is offline.

Results are filtered as dockerd filters them (``is-official``, ``stars``;
``is-automated=true`` matches nothing, and every result says it is not
automated: Docker Hub's flag is deprecated) and have exactly dockerd's keys.
"""

import base64
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypedDict

import urllib3

from pybox.errors import BadRequest, RegistryError
from pybox.formats.registryauth import ANONYMOUS, Credentials
from pybox.images.registry import USER_AGENT, Registries
from pybox.images.registry_config import Endpoint

INDEX_NAME = "docker.io"
INDEX_SERVER = "https://index.docker.io"
DEFAULT_LIMIT = 25
MAX_RESULTS_BYTES = 16 << 20
ACCEPTED_FILTERS = frozenset({"is-automated", "is-official", "stars"})


class SearchResult(TypedDict):
    """One repository found (registry.SearchResult: its keys, in its order)."""

    star_count: int
    is_official: bool
    name: str
    is_automated: bool
    description: str


def search(registries: Registries, term: str, *, limit: int = 0,
           filters: Mapping[str, list[str]] | None = None,
           credentials: Credentials = ANONYMOUS,
           headers: Mapping[str, str] | None = None) -> list[SearchResult]:
    """GET /images/search: the repositories matching ``term`` (``limit``: 1 to
    100, 0 for dockerd's 25), filtered by ``filters`` ({key: [values]}).
    ``headers``: more request headers (dockerd passes the client's X-Meta-*).
    BadRequest for what the client got wrong, RegistryError (500) when the
    registry cannot be asked or answers nonsense."""
    filters = dict(filters or {})
    for key in filters:
        if key not in ACCEPTED_FILTERS:
            raise BadRequest(f"invalid filter '{key}'")
    if _bool_filter(filters, "is-automated"):
        return []  # deprecated: Docker Hub's flag cannot be trusted
    official = _bool_filter(filters, "is-official")
    min_stars = 0
    for value in filters.get("stars") or []:
        try:
            min_stars = max(min_stars, int(value, 10))
        except ValueError:
            raise BadRequest(f"invalid filter 'stars={value}': strconv.Atoi: parsing "
                             f"{json.dumps(value)}: invalid syntax") from None
    found = _search_unfiltered(registries, term, limit, credentials, headers or {})
    results: list[SearchResult] = []
    for result in found:
        if official is not None and result["is_official"] != official:
            continue
        if "stars" in filters and result["star_count"] < min_stars:
            continue
        results.append(result)
    return results


def _bool_filter(filters: Mapping[str, list[str]], key: str) -> bool | None:
    """filters.GetBoolOrDefault: None when absent, else true/1 or false/0
    (case-insensitive); anything else, or two values, is "invalid filter"."""
    values = filters.get(key)
    if not values:
        return None
    if len(values) > 1 or values[0].lower() not in ("true", "1", "false", "0"):
        raise BadRequest(f"invalid filter '{key}={','.join(values)}'")
    return values[0].lower() in ("true", "1")


def split_term(term: str) -> tuple[str, str]:
    """(index name, remote name): a first component that looks like a host
    (has a '.' or ':', or is localhost) names the registry; else Docker Hub."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return INDEX_NAME, term
    if first == "index.docker.io":
        first = INDEX_NAME
    return first, rest


def _search_unfiltered(registries: Registries, term: str, limit: int,
                       credentials: Credentials, headers: Mapping[str, str]
                       ) -> list[SearchResult]:
    if "://" in term:
        raise BadRequest(f"invalid repository name: repository name ({term}) should not have "
                         "a scheme")
    index, remote = split_term(term)
    if limit == 0:
        limit = DEFAULT_LIMIT
    if limit < 1 or limit > 100:
        raise BadRequest(f"limit {limit} is outside the range of [1, 100]")
    send_headers = {"User-Agent": USER_AGENT, "X-Docker-Token": "true", **headers}
    if credentials.username and credentials.password:
        pair = f"{credentials.username}:{credentials.password}".encode()
        send_headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    client = registries.client(index)
    if index == INDEX_NAME:
        remote = remote.removeprefix("library/")
        endpoint = Endpoint(INDEX_SERVER)
    else:
        endpoint = _ping_v1(registries, index)
    url = (f"{endpoint.url}/v1/search?q={urllib.parse.quote_plus(remote)}"
           f"&n={urllib.parse.quote_plus(str(limit))}")
    resp = client.send(endpoint, "GET", url, send_headers, None, stream=True, attempts=1)
    try:
        if resp.status != 200:
            raise RegistryError(f"unexpected status code {resp.status}", status=resp.status)
        data = resp.read(MAX_RESULTS_BYTES + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise RegistryError(f"error decoding registry search results: {e}") from None
    finally:
        resp.release_conn()
    if len(data) > MAX_RESULTS_BYTES:
        raise RegistryError("error decoding registry search results: too large")
    return _results(data)


def _ping_v1(registries: Registries, index: str) -> Endpoint:
    """newV1Endpoint: HTTPS first; plain HTTP only for an insecure registry."""
    client = registries.client(index)
    insecure = registries.options.is_insecure(index)
    secure = Endpoint(f"https://{index}", verify_tls=not insecure)
    try:
        client.send(secure, "GET", f"{secure.url}/v1/_ping", {"User-Agent": USER_AGENT},
                    None, attempts=1).release_conn()
        return secure
    except RegistryError as e:
        https_error = str(e)
    if not insecure:
        raise BadRequest(
            f"invalid registry endpoint {secure.url}/v1/: {https_error}. If this private "
            "registry supports only HTTP or HTTPS with an unknown CA certificate, add "
            f"`--insecure-registry {index}` to the daemon's arguments. In the case of HTTPS, "
            "if you have access to the registry's CA certificate, no need for the flag; place "
            f"the CA certificate at /etc/docker/certs.d/{index}/ca.crt")
    plain = Endpoint(f"http://{index}", verify_tls=False)
    try:
        client.send(plain, "GET", f"{plain.url}/v1/_ping", {"User-Agent": USER_AGENT},
                    None, attempts=1).release_conn()
    except RegistryError as e:
        raise BadRequest(f'invalid registry endpoint "{plain.url}/v1/". HTTPS attempt: '
                         f"{https_error}. HTTP attempt: {e}") from None
    return plain


def _results(data: bytes) -> list[SearchResult]:
    """The registry's {"results": [...]} as Go decodes it into SearchResults
    (unknown keys dropped, missing ones zero, a wrong type an error)."""
    def bad(why: str) -> RegistryError:
        return RegistryError(f"error decoding registry search results: {why}")

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(str(e)) from None
    if not isinstance(doc, dict):
        raise bad("json: cannot unmarshal into Go value of type registry.SearchResults")
    listed: Any = doc.get("results")
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise bad("json: cannot unmarshal into Go struct field SearchResults.results")
    results: list[SearchResult] = []
    for item in listed:
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise bad("json: cannot unmarshal into Go struct field SearchResults.results")
        stars = item.get("star_count") or 0
        official = item.get("is_official") or False
        name = item.get("name") or ""
        description = item.get("description") or ""
        if (not isinstance(stars, int) or isinstance(stars, bool)
                or not isinstance(official, bool) or not isinstance(name, str)
                or not isinstance(description, str)):
            raise bad("json: cannot unmarshal into Go struct field SearchResult")
        results.append({"star_count": stars, "is_official": official, "name": name,
                        "is_automated": False, "description": description})
    return results
