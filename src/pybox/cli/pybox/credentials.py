"""docker's client config file and credential helpers, for logins only.

* ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``): ``auths`` maps a
  registry to ``{"auth": base64("user:password")}`` (or ``identitytoken``);
  ``credsStore`` names a helper for every registry and ``credHelpers`` one per
  registry: ``docker-credential-NAME get|store|erase`` speaking JSON on
  stdin/stdout.  Sharing the file and the helpers means `docker login` and
  `pybox login` see each other's logins.

The client's alone (dockerd never reads it): the daemon only receives what the
client puts in ``X-Registry-Auth`` (pybox.formats.registryauth).
"""

import base64
import json
import os
import shutil
import subprocess
from typing import Any

from pybox.errors import RegistryError
from pybox.formats.registryauth import (
    ANONYMOUS,
    IDENTITY_TOKEN_USER,
    Credentials,
    config_key,
    encode_registry_auth,
    host_of,
)
from pybox.oci.state import write_atomic


def default_config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


class DockerConfig:
    """docker's client config file, for credentials only (other keys are kept
    untouched when it is rewritten)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or default_config_dir()
        self.path = os.path.join(self.directory, "config.json")

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as e:
            raise RegistryError(f"loading {self.path}: {e}") from None
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent="\t") + "\n", mode=0o600,
                     durable=True)

    def helper_for(self, domain: str, data: dict[str, Any] | None = None) -> str | None:
        data = self.load() if data is None else data
        key = config_key(domain)
        helpers = data.get("credHelpers") or {}
        for name in (key, domain, host_of(key)):
            if name in helpers:
                return str(helpers[name])
        return data.get("credsStore") or None

    def get(self, domain: str) -> Credentials:
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
            host = host_of(key)
            entry = next((v for k, v in auths.items() if host_of(k) == host), None)
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

    def store(self, domain: str, credentials: Credentials) -> None:
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

    def erase(self, domain: str) -> bool:
        """Forget a login (docker logout); False when there was none."""
        data = self.load()
        key = config_key(domain)
        auths = data.get("auths") or {}
        helper = self.helper_for(domain, data)
        found = False
        if helper:
            found = CredentialHelper(helper).erase(key)
        for k in [k for k in auths if k == key or host_of(k) == host_of(key)]:
            del auths[k]
            found = True
        if found:
            self._save(data)
        return found


class CredentialHelper:
    """``docker-credential-NAME`` (pass, secretservice, osxkeychain, ecr-login...):
    the protocol is the program's stdin/stdout, one verb per run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.program = f"docker-credential-{name}"

    def _run(self, verb: str, data: bytes) -> tuple[int, str]:
        path = shutil.which(self.program)
        if path is None:
            raise RegistryError(f"error getting credentials - err: exec: \"{self.program}\":"
                                " executable file not found in $PATH")
        proc = subprocess.run([path, verb], input=data, capture_output=True, timeout=60)
        return proc.returncode, proc.stdout.decode(errors="replace").strip()

    def get(self, server_url: str) -> Credentials | None:
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

    def store(self, server_url: str, credentials: Credentials) -> None:
        if credentials.identity_token:
            username, secret = IDENTITY_TOKEN_USER, credentials.identity_token
        else:
            username, secret = credentials.username, credentials.password
        payload = json.dumps({"ServerURL": server_url, "Username": username,
                              "Secret": secret}).encode()
        code, out = self._run("store", payload)
        if code != 0:
            raise RegistryError(f"error storing credentials - err: {self.program} store: {out}")

    def erase(self, server_url: str) -> bool:
        code, out = self._run("erase", server_url.encode())
        if code != 0:
            if "credentials not found" in out.lower():
                return False
            raise RegistryError(f"error erasing credentials - err: {self.program} erase: {out}")
        return True


def registry_auth_header(domain: str, config: DockerConfig | None = None) -> str:
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
