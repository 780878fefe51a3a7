"""Registry credentials in docker's two wire forms, shared by client and daemon.

* ``X-Registry-Auth``: the Engine API's header, URL-safe base64 of compact JSON
  ``{"username", "password", "serveraddress", "identitytoken", "registrytoken"}``
  (docker's ``EncodeAuthConfig``).  The client encodes it; the daemon decodes it
  (pybox.images.auth, which owns the daemon's 400 for a bad one).
* The names docker files a login under in ``~/.docker/config.json``: Docker
  Hub's key is ``https://index.docker.io/v1/``, other registries ``host[:port]``.
  (The file itself and the credential helpers are the client's:
  pybox.cli.pybox.credentials.)
"""

import base64
import json
from dataclasses import dataclass

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
IDENTITY_TOKEN_USER = "<token>"  # a helper's Username when the Secret is an identity token


@dataclass(frozen=True)
class Credentials:
    """What a client has for one registry.  An ``identity_token`` is an OAuth
    refresh token (docker's ``IdentityToken``); a ``registry_token`` is a bearer
    token to send as is."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token
                    or self.registry_token)


ANONYMOUS = Credentials()


def encode_registry_auth(credentials: Credentials, server_address: str = "") -> str:
    """The X-Registry-Auth value a client sends for ``credentials``: docker's
    ``EncodeAuthConfig`` (Go's field order, compact JSON, URL-safe base64)."""
    doc = {}
    if credentials.username:
        doc["username"] = credentials.username
    if credentials.password:
        doc["password"] = credentials.password
    if server_address:
        doc["serveraddress"] = server_address
    if credentials.identity_token:
        doc["identitytoken"] = credentials.identity_token
    if credentials.registry_token:
        doc["registrytoken"] = credentials.registry_token
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def registry_domain(server_address: str | None) -> str:
    """The registry a login names: ``""``, ``docker.io`` and
    ``https://index.docker.io/v1/`` are Docker Hub; ``http://host:5000/`` is
    ``host:5000``."""
    text = (server_address or "").strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0].lower()
    if text in ("", "docker.io", "index.docker.io", "registry-1.docker.io",
                "registry.hub.docker.com"):
        return "docker.io"
    return text


def config_key(domain: str) -> str:
    """The key docker files a registry's credentials under."""
    if domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DOCKER_HUB_CONFIG_KEY
    return domain


def host_of(key: str) -> str:
    """``https://host:port/v1/`` -> ``host:port`` (docker's ConvertToHostname)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]
