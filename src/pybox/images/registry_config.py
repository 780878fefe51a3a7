"""How pybox reaches registries: insecure ones, mirrors, proxies, TLS files, limits.

The daemon reads docker's keys from a JSON file (``/etc/pybox/daemon.json`` by
default, as dockerd reads /etc/docker/daemon.json) plus its flags:

    {"insecure-registries": ["127.0.0.1:5000", "10.0.0.0/8"],
     "registry-mirrors": ["https://mirror.example.com"],
     "max-concurrent-downloads": 3, "max-concurrent-uploads": 5,
     "max-download-attempts": 5}

Rules, docker's:
* a registry is *insecure* when it is listed by ``host[:port]`` or its address
  is in a listed CIDR; 127.0.0.0/8 always is (so `localhost:5000` works out of
  the box).  An insecure registry is tried over HTTPS without certificate
  checks first, then over plain HTTP;
* a secure registry is HTTPS only, checked against the system's CAs plus any
  ``*.crt`` under ``CERTS_DIR/HOST[:PORT]/`` (``/etc/pybox/certs.d``, then
  ``/etc/docker/certs.d``), with a client certificate from ``*.cert`` + ``*.key``
  there when present;
* mirrors are tried, in order, before Docker Hub, for pulls of docker.io images
  only; a failing mirror falls through to the next and then to Docker Hub;
* ``registry_mirrors``, containerd's per-registry mirrors (its CRI plugin's
  ``registry.mirrors."HOST".endpoint``, what pyboxd's CRI pulls use:
  daemon.json's ``cri-registry-mirrors``): ``{"registry.k8s.io": [URL, ...]}``
  tried in order before that registry, for pulls only, with the same
  fall-through (a "docker.io" entry joins the docker.io mirrors above);
* proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``,
  ``NO_PROXY``, upper or lower case), read when the options are made.
"""

import copy
import glob
import ipaddress
import json
import os
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from pybox.errors import RegistryError

DEFAULT_DAEMON_JSON = "/etc/pybox/daemon.json"
DEFAULT_CERTS_DIRS = ("/etc/pybox/certs.d", "/etc/docker/certs.d")
DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
LOOPBACK_CIDR = "127.0.0.0/8"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Endpoint:
    """One base URL to reach a registry by, and how to treat its TLS."""

    url: str                 # scheme://host[:port][/path], no trailing slash
    verify_tls: bool = True
    mirror: bool = False

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc


class RegistryOptions:
    def __init__(self, *, insecure_registries: Iterable[str] = (), mirrors: Iterable[str] = (),
                 proxies: dict[str, str] | None = None,
                 certs_dirs: Iterable[str] | None = DEFAULT_CERTS_DIRS,
                 loopback_insecure: bool = True, max_concurrent_downloads: int = 3,
                 max_concurrent_uploads: int = 5, max_attempts: int = 5,
                 backoff_seconds: float = 0.5, connect_timeout: float = 30.0,
                 read_timeout: float = 120.0, chunk_size: int | None = None,
                 registry_mirrors: Mapping[str, Sequence[str]] | None = None) -> None:
        """``proxies``: {"http": URL, "https": URL, "no": "host,.domain"}; None reads
        the environment.  ``loopback_insecure``: docker's 127.0.0.0/8 default
        (tests of certificate checking turn it off).  ``chunk_size``: push blobs
        in PATCH chunks of this many bytes instead of one monolithic PUT."""
        self.insecure_names: set[str] = set()
        self.insecure_networks: list[Network] = []
        for entry in insecure_registries:
            self._add_insecure(entry)
        if loopback_insecure:
            self.insecure_networks.append(ipaddress.ip_network(LOOPBACK_CIDR))
        self.mirrors = [_mirror_url(m) for m in mirrors]
        self.registry_mirrors = mirrors_by_registry(registry_mirrors or {})
        self.proxies = dict(urllib.request.getproxies_environment()
                            if proxies is None else proxies)
        self.certs_dirs = tuple(certs_dirs or ())
        self.max_concurrent_downloads = max(1, int(max_concurrent_downloads))
        self.max_concurrent_uploads = max(1, int(max_concurrent_uploads))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_seconds = float(backoff_seconds)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.chunk_size = chunk_size

    def _add_insecure(self, entry: str) -> None:
        text = entry.strip()
        for prefix in ("http://", "https://"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        text = text.rstrip("/")
        if "/" in text:
            try:
                self.insecure_networks.append(ipaddress.ip_network(text, strict=False))
                return
            except ValueError:
                raise RegistryError(f"insecure registry {entry} is not a valid CIDR or "
                                    "host[:port]") from None
        self.insecure_names.add(text.lower())

    @classmethod
    def from_daemon_config(cls, path: str | None = DEFAULT_DAEMON_JSON, *,
                           insecure_registries: Iterable[str] = (), mirrors: Iterable[str] = (),
                           **overrides: Any) -> Self:
        """Options from docker's daemon.json keys (a missing file is an empty one)
        plus flag values, which add to the file's lists."""
        doc: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as f:
                    doc = json.loads(f.read() or b"{}")
            except FileNotFoundError:
                doc = {}
            except (OSError, ValueError) as e:
                raise RegistryError(f"unable to configure the daemon with file {path}: "
                                    f"{e}") from None
        kwargs: dict[str, Any] = dict(
            insecure_registries=list(doc.get("insecure-registries") or [])
            + list(insecure_registries),
            mirrors=list(doc.get("registry-mirrors") or []) + list(mirrors))
        for key, name in (("max-concurrent-downloads", "max_concurrent_downloads"),
                          ("max-concurrent-uploads", "max_concurrent_uploads"),
                          ("max-download-attempts", "max_attempts")):
            if key in doc:
                kwargs[name] = doc[key]
        kwargs.update(overrides)
        return cls(**kwargs)

    def with_registry_mirrors(self, registry_mirrors: Mapping[str, Sequence[str]]) -> Self:
        """A copy whose per-registry mirrors are these (the rest shared): the
        CRI's pulls use the daemon's registry settings plus its own mirrors."""
        other = copy.copy(self)
        other.registry_mirrors = mirrors_by_registry(registry_mirrors)
        return other

    # -- decisions --------------------------------------------------------------
    def is_insecure(self, host: str) -> bool:
        """``host[:port]`` listed, or its address in an insecure network."""
        host = host.lower()
        if host in self.insecure_names:
            return True
        name = _strip_port(host)
        if name in self.insecure_names:
            return True
        if not self.insecure_networks:
            return False
        for address in _addresses(name):
            if any(address in net for net in self.insecure_networks
                   if net.version == address.version):
                return True
        return False

    def endpoints(self, domain: str, *, push: bool = False) -> list[Endpoint]:
        """Where to send requests for a registry, in the order to try them."""
        mirrors: list[str] = []
        if not push:
            mirrors = list(self.registry_mirrors.get(domain.lower(), ()))
            if domain == DOCKER_HUB_DOMAIN:
                mirrors = self.mirrors + [m for m in mirrors if m not in self.mirrors]
        out = [Endpoint(m, not self.is_insecure(_host(m)), True) for m in mirrors]
        if domain == DOCKER_HUB_DOMAIN:
            return out + [Endpoint(DOCKER_HUB_ENDPOINT)]
        if self.is_insecure(domain):
            return out + [Endpoint(f"https://{domain}", False),
                          Endpoint(f"http://{domain}", False)]
        return out + [Endpoint(f"https://{domain}")]

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for a request to ``url`` (None: connect directly)."""
        parts = urllib.parse.urlsplit(url)
        proxy = self.proxies.get(parts.scheme)
        if not proxy:
            return None
        no_proxy = self.proxies.get("no")
        if no_proxy and _bypass(parts.hostname or "", parts.port, no_proxy):
            return None
        return proxy if "://" in proxy else "http://" + proxy

    def ssl_context(self, endpoint: Endpoint) -> ssl.SSLContext:
        """The TLS settings for an HTTPS endpoint: no checks when insecure,
        else system CAs plus the certs.d files for its host."""
        if not endpoint.verify_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        context = ssl.create_default_context()
        for base in self.certs_dirs:
            directory = os.path.join(base, endpoint.host)
            for ca in sorted(glob.glob(os.path.join(directory, "*.crt"))):
                try:
                    context.load_verify_locations(cafile=ca)
                except (OSError, ssl.SSLError) as e:
                    raise RegistryError(f"loading CA certificate {ca}: {e}") from None
            for cert in sorted(glob.glob(os.path.join(directory, "*.cert"))):
                key = cert[:-len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise RegistryError(f"missing key {key} for client certificate {cert}")
                context.load_cert_chain(cert, key)
        return context


def mirrors_by_registry(mirrors: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per-registry mirrors checked: a registry's host[:port] (Docker Hub's
    other names are docker.io; lower-cased) -> its mirrors' URLs."""
    out: dict[str, list[str]] = {}
    for host, urls in mirrors.items():
        name = host.strip().lower().rstrip("/")
        for prefix in ("https://", "http://"):
            name = name.removeprefix(prefix)
        if not name or "/" in name:
            raise RegistryError(f"invalid registry {host!r} for mirrors: want host[:port]")
        if name in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
            name = DOCKER_HUB_DOMAIN
        if isinstance(urls, str):
            raise RegistryError(f"mirrors of {host}: want a list of URLs, not a string")
        out.setdefault(name, []).extend(_mirror_url(u) for u in urls)
    return out


def _mirror_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"invalid mirror: {text!r}: the URL needs an http:// or "
                            "https:// scheme and a host")
    if parts.query or parts.fragment:
        raise RegistryError(f"invalid mirror: {text!r}: no query or fragment allowed")
    return url


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def _addresses(name: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    if name == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out: list[Address] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return out


def _bypass(host: str, port: int | None, no_proxy: str) -> bool:
    """curl's NO_PROXY rules: ``*``, exact hosts, ``.domain`` suffixes, host:port."""
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port and str(port) != entry_port:
            continue
        name = name.lstrip(".") if name.startswith(".") else name
        if host == name or host.endswith("." + name):
            return True
        try:
            if "/" in name and ipaddress.ip_address(host) in ipaddress.ip_network(name, False):
                return True
        except ValueError:
            pass
    return False
