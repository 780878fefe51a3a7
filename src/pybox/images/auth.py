"""Registry credentials, kept and passed as docker keeps and passes them.

* ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``): ``auths`` maps a
  registry to ``{"auth": base64("user:password")}`` (or ``identitytoken``);
  ``credsStore`` names a helper for every registry and ``credHelpers`` one per
  registry: ``docker-credential-NAME get|store|erase`` speaking JSON on
  stdin/stdout.  Docker Hub's key is ``https://index.docker.io/v1/``, others
  are ``host[:port]``.  Sharing the file and the helpers means `docker login` and
  `pybox login` see each other's logins.
* ``X-Registry-Auth``: the API's header, base64 (URL-safe) JSON
  ``{"username", "password", "serveraddress", "identitytoken", "registrytoken"}``.
* ``WWW-Authenticate`` challenges: ``Bearer realm="...",service="...",scope="..."``
  or ``Basic realm="..."``, parsed per RFC 7235 (quoted strings, commas).
"""

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from pybox.errors import AuthenticationError, BadRequest, RegistryError

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
IDENTITY_TOKEN_USER = "<token>"


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


# -- WWW-Authenticate ---------------------------------------------------------------

_CHALLENGE_TOKEN = re.compile(
    r'\s*(?:([!#$%&\'*+.^_`|~0-9A-Za-z/-]+)|"((?:[^"\\]|\\.)*)"|(=)|(,))')


def parse_challenges(header):
    """[(scheme lower-cased, {param: value})] from a WWW-Authenticate value
    (several challenges may share one header, separated by commas)."""
    tokens, pos, text = [], 0, header or ""
    while pos < len(text):
        match = _CHALLENGE_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        word, quoted, equals, _comma = match.groups()
        if word is not None:
            tokens.append(("word", word))
        elif quoted is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", quoted)))
        elif equals:
            tokens.append(("=", "="))
        else:
            tokens.append((",", ","))
    challenges, i = [], 0
    while i < len(tokens):
        kind, value = tokens[i]
        is_param = i + 2 < len(tokens) and tokens[i + 1][0] == "="
        if kind == "word" and not is_param:
            challenges.append((value.lower(), {}))
            i += 1
        elif kind == "word" and challenges:
            challenges[-1][1][value.lower()] = tokens[i + 2][1]
            i += 3
        else:
            i += 1
    return challenges


# -- the API's X-Registry-Auth ----------------------------------------------------------

class InvalidAuthHeader(AuthenticationError, BadRequest):
    """An X-Registry-Auth header that does not decode (moby's
    errInvalidParameter: a 400, not the registry's 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid X-Registry-Auth header: {reason}", status=400)


AUTH_CONFIG_FIELDS = ("username", "password", "auth", "email", "serveraddress",
                      "identitytoken", "registrytoken")


def decode_registry_auth(header):
    """Credentials from an X-Registry-Auth value ('' or ``e30=`` = anonymous).
    docker sends URL-safe base64, older clients standard base64, some unpadded."""
    if not header:
        return ANONYMOUS
    text = header.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        doc = json.loads(raw or b"{}")
    except (ValueError, TypeError):
        raise InvalidAuthHeader("not base64 JSON") from None
    except RecursionError:  # 10,000 nested '[': Go's decoder stops at depth 10,000 too
        raise InvalidAuthHeader("exceeded max depth") from None
    if not isinstance(doc, dict):
        return ANONYMOUS
    for key in AUTH_CONFIG_FIELDS:  # decoded by type, as Go's into AuthConfig
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            kind = {bool: "bool", int: "number", float: "number", list: "array",
                    dict: "object"}.get(type(value), "value")
            raise InvalidAuthHeader(f"json: cannot unmarshal {kind} into Go struct field "
                                    f"AuthConfig.{key} of type string")
    return Credentials(username=doc.get("username") or "",
                       password=doc.get("password") or "",
                       identity_token=doc.get("identitytoken") or "",
                       registry_token=doc.get("registrytoken") or "")


def encode_registry_auth(credentials, server_address: str=""):
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


def registry_auth_header(domain, config=None):
    """The X-Registry-Auth docker's CLI sends with a pull or push from registry
    ``domain`` (``docker.io``, ``host:port``): the login stored for it, with its
    config key as ``serveraddress``, else ``e30=`` (anonymous).  As docker's CLI,
    a credential store that fails to answer counts as no login."""
    config = config or DockerConfig()
    try:
        credentials = config.get(domain)
    except RegistryError:
        credentials = ANONYMOUS
    if not credentials:
        return "e30="
    return encode_registry_auth(credentials, config_key(domain))


# -- ~/.docker/config.json ----------------------------------------------------------------

def registry_domain(server_address):
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


def config_key(domain):
    """The key docker files a registry's credentials under."""
    if domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DOCKER_HUB_CONFIG_KEY
    return domain


def _host_of(key):
    """``https://host:port/v1/`` -> ``host:port`` (docker's ConvertToHostname)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]


def default_config_dir():
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


class DockerConfig:
    """docker's client config file, for credentials only (other keys are kept
    untouched when it is rewritten)."""

    def __init__(self, directory=None) -> None:
        self.directory = directory or default_config_dir()
        self.path = os.path.join(self.directory, "config.json")

    def load(self):
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as e:
            raise RegistryError(f"loading {self.path}: {e}") from None
        return data if isinstance(data, dict) else {}

    def _save(self, data) -> None:
        from pybox.oci.state import write_atomic

        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent="\t") + "\n", mode=0o600,
                     durable=True)

    def helper_for(self, domain, data=None):
        data = self.load() if data is None else data
        key = config_key(domain)
        helpers = data.get("credHelpers") or {}
        for name in (key, domain, _host_of(key)):
            if name in helpers:
                return helpers[name]
        return data.get("credsStore") or None

    def get(self, domain):
        """Credentials for a registry (``docker.io``, ``host:port``), or ANONYMOUS."""
        data = self.load()
        helper = self.helper_for(domain, data)
        key = config_key(domain)
        if helper:
            found = CredentialHelper(helper).get(key)
            if found:
                return found
        auths = data.get("auths") or {}
        entry = auths.get(key)
        if entry is None:
            host = _host_of(key)
            entry = next((v for k, v in auths.items() if _host_of(k) == host), None)
        if not isinstance(entry, dict):
            return ANONYMOUS
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{self.path}: invalid auth for {key}") from None
            username, _, password = decoded.partition(":")
        return Credentials(username=username, password=password,
                           identity_token=entry.get("identitytoken") or "",
                           registry_token=entry.get("registrytoken") or "")

    def store(self, domain, credentials) -> None:
        """Save a login: in the helper if one is configured (the file then only
        records the key, as docker does), else base64 in ``auths``."""
        data = self.load()
        helper = self.helper_for(domain, data)
        key = config_key(domain)
        auths = data.setdefault("auths", {})
        if helper:
            CredentialHelper(helper).store(key, credentials)
            auths[key] = {}
        else:
            entry = {}
            if credentials.username or credentials.password:
                entry["auth"] = base64.b64encode(
                    f"{credentials.username}:{credentials.password}".encode()).decode()
            if credentials.identity_token:
                entry["identitytoken"] = credentials.identity_token
            auths[key] = entry
        self._save(data)

    def erase(self, domain):
        """Forget a login (docker logout); False when there was none."""
        data = self.load()
        key = config_key(domain)
        auths = data.get("auths") or {}
        helper = self.helper_for(domain, data)
        found = False
        if helper:
            found = CredentialHelper(helper).erase(key)
        for k in [k for k in auths if k == key or _host_of(k) == _host_of(key)]:
            del auths[k]
            found = True
        if found:
            self._save(data)
        return found


class CredentialHelper:
    """``docker-credential-NAME`` (pass, secretservice, osxkeychain, ecr-login...):
    the protocol is the program's stdin/stdout, one verb per run."""

    def __init__(self, name) -> None:
        self.name = name
        self.program = f"docker-credential-{name}"

    def _run(self, verb, data):
        path = shutil.which(self.program)
        if path is None:
            raise RegistryError(f"error getting credentials - err: exec: \"{self.program}\":"
                                " executable file not found in $PATH")
        proc = subprocess.run([path, verb], input=data, capture_output=True, timeout=60)
        return proc.returncode, proc.stdout.decode(errors="replace").strip()

    def get(self, server_url):
        code, out = self._run("get", server_url.encode())
        if code != 0:
            if "credentials not found" in out.lower():
                return None
            raise RegistryError(f"error getting credentials - err: {self.program} get: {out}")
        try:
            doc = json.loads(out)
        except (ValueError, RecursionError):
            raise RegistryError(f"{self.program} get: invalid JSON answer") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{self.program} get: invalid JSON answer")
        username, secret = doc.get("Username") or "", doc.get("Secret") or ""
        if username == IDENTITY_TOKEN_USER:
            return Credentials(identity_token=secret)
        return Credentials(username=username, password=secret)

    def store(self, server_url, credentials):
        if credentials.identity_token:
            username, secret = IDENTITY_TOKEN_USER, credentials.identity_token
        else:
            username, secret = credentials.username, credentials.password
        payload = json.dumps({"ServerURL": server_url, "Username": username,
                              "Secret": secret}).encode()
        code, out = self._run("store", payload)
        if code != 0:
            raise RegistryError(f"error storing credentials - err: {self.program} store: {out}")

    def erase(self, server_url) -> bool:
        code, out = self._run("erase", server_url.encode())
        if code != 0:
            if "credentials not found" in out.lower():
                return False
            raise RegistryError(f"error erasing credentials - err: {self.program} erase: {out}")
        return True
