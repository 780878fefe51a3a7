"""Registry commands: login, logout, push (pull is in images.py).

As with docker's CLI, the daemon keeps no credentials: ``login`` has the daemon
check them (``POST /auth``) and then stores them where docker stores them --
``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) ``auths``, or
the credential helper ``credsStore`` / ``credHelpers`` names
(pybox.cli.pybox.credentials.DockerConfig) -- so ``docker login`` and ``pybox login`` see
each other's logins.  ``pull`` and ``push`` send the stored login for the
image's registry as ``X-Registry-Auth``."""

from __future__ import annotations

import getpass
import sys

from pybox.cli.pybox.common import (
    drain_json_stream,
    familiar_repository,
    image_path,
    print_json_stream,
    registry_auth,
    split_reference,
)
from pybox.cli.pybox.credentials import DockerConfig
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import is_terminal
from pybox.errors import ClientError, DaemonError, RegistryError
from pybox.formats.registryauth import Credentials, config_key, registry_domain

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.pybox import Cli

HUB_SERVER = "https://index.docker.io/v1/"
UNENCRYPTED_WARNING = ("WARNING! Your credentials are stored unencrypted in '{}'.\n"
                       "Configure a credential helper to remove this warning. See\n"
                       "https://docs.docker.com/go/credential-store/\n")


def login_server(address: str) -> tuple[str, str]:
    """-> (registry domain, the server address docker files and sends it under):
    no server, ``docker.io`` or the index URL is Docker Hub
    (``https://index.docker.io/v1/``); another is its ``host[:port]``."""
    domain = registry_domain(address)
    return domain, config_key(domain)


def _prompt_credentials(cli: Cli, username: str, password: str,
                        default_user: str = "") -> tuple[str, str]:
    """docker's PromptUserForCredentials: only on a terminal."""
    if not is_terminal(0):
        raise ClientError("Error: Cannot perform an interactive login from a non TTY device")
    if not username:
        cli.out(f"Username ({default_user}): " if default_user else "Username: ")
        cli.flush()
        username = sys.stdin.readline().strip() or default_user
        if not username:
            raise ClientError("Error: Non-null Username Required")
    if not password:
        cli.flush()
        password = getpass.getpass("Password: ")
        if not password:
            raise ClientError("Error: Password Required")
    return username, password


def _authenticate(cli: Cli, credentials: Credentials, server: str) -> dict[str, Any]:
    """``POST /auth`` with docker's AuthConfig body: the daemon's answer."""
    body = {"username": credentials.username, "password": credentials.password,
            "serveraddress": server}
    if credentials.identity_token:
        body["identitytoken"] = credentials.identity_token
    return cli.client.request("POST", "/auth", json=body).json() or {}


def _store(cli: Cli, config: DockerConfig, domain: str, credentials: Credentials) -> None:
    try:
        helper = config.helper_for(domain)
        config.store(domain, credentials)
    except RegistryError as err:
        raise ClientError(f"Error saving credentials: {err}") from None
    if not helper and credentials.password:
        cli.err(UNENCRYPTED_WARNING.format(config.path) + "\n")


def cmd_login(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] [SERVER]",
                 "Authenticate to a registry.\nDefaults to Docker Hub if no server is "
                 "specified.", max_args=1)
    fs.add("password", "p", help="Password or Personal Access Token (PAT)")
    fs.add("password-stdin", kind="bool",
           help="Take the Password or Personal Access Token (PAT) from stdin")
    fs.add("username", "u", help="Username")
    opts = fs.parse(argv)
    username, password = opts.username, opts.password
    if password:
        cli.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        if opts.password_stdin:
            raise ClientError("conflicting options: cannot specify both --password and "
                              "--password-stdin")
    if opts.password_stdin:
        if not username:
            raise ClientError("the --password-stdin option requires --username to be set")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    domain, server = login_server(opts.args[0] if opts.args else "")
    config = DockerConfig()
    stored = Credentials()
    if not username and not password:
        try:
            stored = config.get(domain)
        except RegistryError:
            stored = Credentials()
        if stored:
            shown = f" [Username: {stored.username}]" if stored.username else ""
            cli.err(f"Authenticating with existing credentials...{shown}\n")
            try:
                answer = _authenticate(cli, stored, server)
            except DaemonError as err:
                cli.err("Stored credentials invalid or expired\n" if err.status == 401
                        else f"Login did not succeed, error: {err}\n")
            else:
                cli.out((answer.get("Status") or "Login Succeeded") + "\n")
                return 0
    if not username or not password:
        username, password = _prompt_credentials(cli, username, password, stored.username)
    answer = _authenticate(cli, Credentials(username=username, password=password), server)
    if answer.get("IdentityToken"):
        credentials = Credentials(username=username, identity_token=answer["IdentityToken"])
    else:
        credentials = Credentials(username=username, password=password)
    _store(cli, config, domain, credentials)
    cli.out((answer.get("Status") or "Login Succeeded") + "\n")
    return 0


def cmd_logout(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [SERVER]",
                 "Log out from a registry.\nIf no server is specified, the default is "
                 "defined by the daemon.", max_args=1)
    opts = fs.parse(argv)
    domain, server = login_server(opts.args[0] if opts.args else "")
    try:
        found = DockerConfig().erase(domain)
    except RegistryError as err:
        cli.out(f"Removing login credentials for {server}\n")
        cli.err(f"WARNING: could not erase credentials:\n{server}: {err}\n")
        return 0
    cli.out(f"{'Removing login credentials for' if found else 'Not logged in to'} {server}\n")
    return 0


def cmd_push(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NAME[:TAG]", "Upload an image to a registry",
                 exact_args=1)
    fs.add("all-tags", "a", "bool", help="Push all tags of an image to the repository")
    fs.add("disable-content-trust", kind="bool", default=True,
           help="Skip image signing (default true)")
    fs.add("quiet", "q", "bool", help="Suppress verbose output")
    opts = fs.parse(argv)
    domain, path, tag, digest = split_reference(opts.args[0])
    if opts.all_tags and (tag is not None or digest is not None):
        raise ClientError("tag can't be used with --all-tags/-a")
    if digest is not None:
        raise ClientError("cannot push a digest reference")
    if tag is None and not opts.all_tags:
        tag = "latest"
        if not opts.quiet:
            cli.out("Using default tag: latest\n")
    query = None if opts.all_tags else {"tag": tag}
    resp = cli.client.request("POST", image_path(familiar_repository(domain, path), "/push"),
                              query=query, headers={"X-Registry-Auth": registry_auth(domain)})
    if opts.quiet:
        drain_json_stream(resp)
        cli.out(f"{domain}/{path}" + (f":{tag}" if tag else "") + "\n")
        return 0
    print_json_stream(cli, resp)
    return 0
