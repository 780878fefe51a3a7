"""Image configs: the ``--change`` instructions of docker import/commit, and the
docker-shaped views (inspect's Config, history) of an OCI image config.

An OCI image config (the blob whose digest is the image Id) holds ``config``
(User, ExposedPorts, Env, Entrypoint, Cmd, Volumes, WorkingDir, Labels,
StopSignal, and docker's extensions Healthcheck, OnBuild, Shell), ``rootfs``
(the diff-ids), ``history``, ``created``, ``author``, ``architecture``, ``os``.
"""

import json
import os
import shlex
from collections.abc import Iterable
from typing import Any

from pybox.errors import ImageError
from pybox.formats.durations import go_duration
from pybox.images import platforms

# moby's validCommitCommands: what `docker import/commit --change` accepts
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL",
                       "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_platform() -> tuple[str, str]:
    """(os, architecture) in Go's names, as image configs and indexes use
    (platforms.host_platform: the one mapping of the kernel's machine names)."""
    host = platforms.host_platform()
    return host.os, host.architecture


def _json_or_shell(value: str, instruction: str) -> list[str]:
    """Dockerfile's two forms: a JSON array (exec form) or a string run by
    /bin/sh -c (shell form)."""
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            return parsed
    if not value:
        raise ImageError(f"{instruction} requires at least one argument")
    return ["/bin/sh", "-c", value]


def _key_values(value: str, instruction: str) -> list[tuple[str, str]]:
    """ENV/LABEL: ``k=v k2="v 2"`` or the legacy ``k v w`` (one pair)."""
    try:
        words = shlex.split(value)
    except ValueError as e:
        raise ImageError(f"{instruction}: {e}") from None
    if not words:
        raise ImageError(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        if instruction == "LABEL" or len(words) < 2:
            raise ImageError(f"{instruction} names can not be blank"
                             if not words[0] else f"{instruction} must have two arguments")
        key, _, rest = value.strip().partition(" ")
        return [(key, rest.strip())]
    pairs = []
    for word in words:
        key, sep, val = word.partition("=")
        if not sep or not key:
            raise ImageError(f"{instruction} names can not be blank" if not key else
                             f"Syntax error - can't find = in {word!r}. Must be of the "
                             "form: name=value")
        pairs.append((key, val))
    return pairs


def _duration_ns(text: str, option: str) -> int:
    """A HEALTHCHECK flag's duration, read as docker reads it (Go's ParseDuration)."""
    try:
        return go_duration(text)
    except ValueError:
        raise ImageError(f"HEALTHCHECK: invalid duration {text!r} for {option}") from None


def _healthcheck(value: str) -> dict[str, Any]:
    words = value.split()
    if words and words[0].upper() == "NONE":
        return {"Test": ["NONE"]}
    check: dict[str, Any] = {}
    keys = {"--interval": "Interval", "--timeout": "Timeout",
            "--start-period": "StartPeriod", "--start-interval": "StartInterval"}
    rest = value.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, val = flag.partition("=")
        if name == "--retries":
            check["Retries"] = int(val)
        elif name in keys:
            check[keys[name]] = _duration_ns(val, name)
        else:
            raise ImageError(f"HEALTHCHECK: unknown flag {name}")
        rest = rest.strip()
    kind, _, command = rest.partition(" ")
    if kind.upper() != "CMD":
        raise ImageError("HEALTHCHECK: expected NONE or CMD")
    args = _json_or_shell(command, "HEALTHCHECK")
    if args[:2] == ["/bin/sh", "-c"] and not command.strip().startswith("["):
        check["Test"] = ["CMD-SHELL", command.strip()]
    else:
        check["Test"] = ["CMD"] + args
    return check


def parse_change(text: str) -> tuple[str, str]:
    """One ``--change`` line -> (INSTRUCTION, argument text); refused with
    docker's message when the instruction is not one commit/import allow."""
    text = text.strip()
    word, _, value = text.partition(" ")
    if not word and not value:
        raise ImageError("empty change")
    instruction = word.upper()
    if instruction not in CHANGE_INSTRUCTIONS:
        raise ImageError(f"{word.lower()} is not a valid change command")
    return instruction, value.strip()


def apply_changes(config: dict[str, Any], changes: Iterable[str] | None) -> dict[str, Any]:
    """Apply ``--change`` lines to an OCI ``config`` dict (edited in place and
    returned)."""
    for text in changes or ():
        instruction, value = parse_change(text)
        if instruction in ("CMD", "ENTRYPOINT"):
            config["Cmd" if instruction == "CMD" else "Entrypoint"] = _json_or_shell(
                value, instruction)
        elif instruction == "ENV":
            env = list(config.get("Env") or [])
            for key, val in _key_values(value, "ENV"):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={val}"]
            config["Env"] = env
        elif instruction == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_key_values(value, "LABEL"))
            config["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in value.split():
                number, _, proto = port.partition("/")
                if not number.replace("-", "").isdigit():
                    raise ImageError(f"Invalid containerPort: {number}")
                ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
            config["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            volumes = dict(config.get("Volumes") or {})
            paths = (_json_or_shell(value, "VOLUME") if value.startswith("[")
                     else value.split())
            for path in paths:
                if not path:
                    raise ImageError("VOLUME specified can not be an empty string")
                volumes[path] = {}
            config["Volumes"] = volumes
        elif instruction == "WORKDIR":
            if not value:
                raise ImageError("WORKDIR requires exactly one argument")
            config["WorkingDir"] = os.path.join(config.get("WorkingDir") or "/", value)
        elif instruction == "USER":
            if not value:
                raise ImageError("USER requires exactly one argument")
            config["User"] = value
        elif instruction == "STOPSIGNAL":
            if not value:
                raise ImageError("STOPSIGNAL requires exactly one argument")
            config["StopSignal"] = value
        elif instruction == "HEALTHCHECK":
            config["Healthcheck"] = _healthcheck(value)
        elif instruction == "ONBUILD":
            config["OnBuild"] = list(config.get("OnBuild") or []) + [value]
    return config


def docker_container_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """inspect's ``Config`` (and ``ContainerConfig``) from an OCI config's
    ``config``: every key docker always prints, the optional ones when set."""
    config = config or {}
    out: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": config.get("User", ""),
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
    }
    if config.get("ExposedPorts"):
        out["ExposedPorts"] = config["ExposedPorts"]
    out.update({"Tty": False, "OpenStdin": False, "StdinOnce": False,
                "Env": config.get("Env"), "Cmd": config.get("Cmd")})
    if config.get("Healthcheck"):
        out["Healthcheck"] = config["Healthcheck"]
    if config.get("ArgsEscaped"):
        out["ArgsEscaped"] = True
    out.update({"Image": "", "Volumes": config.get("Volumes"),
                "WorkingDir": config.get("WorkingDir", ""),
                "Entrypoint": config.get("Entrypoint"), "OnBuild": config.get("OnBuild"),
                "Labels": config.get("Labels")})
    if config.get("StopSignal"):
        out["StopSignal"] = config["StopSignal"]
    if config.get("Shell"):
        out["Shell"] = config["Shell"]
    return out


def new_config(diff_ids: Iterable[str], *, config: dict[str, Any] | None = None,
               history: Iterable[dict[str, Any]] | None = None, created: str,
               author: str = "", comment: str | None = None) -> dict[str, Any]:
    """A fresh OCI image config for this host's platform."""
    os_name, arch = host_platform()
    image: dict[str, Any] = {"architecture": arch, "os": os_name, "created": created,
             "config": config or {}, "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
             "history": list(history or [])}
    if author:
        image["author"] = author
    if comment:
        image["comment"] = comment
    return image
