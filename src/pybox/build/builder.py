"""The classic builder's entry point: ``build()`` turns a context directory and
its Dockerfile into an image, as dockerd 20.10's builder/dockerfile does.

The API (pybox.api.build) fills ``BuildOptions`` from POST /build's query and
hands a ``BuildOutput`` that turns ``stream``/``aux`` calls into the JSON
message stream; ``cancel`` is set when the client goes away.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pybox.errors import BuildError

if TYPE_CHECKING:
    from pybox.engine.engine import Engine


@dataclass
class BuildOptions:
    """POST /build's query, decoded (the API fills it; defaults are dockerd's)."""

    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"  # path inside context_dir
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    remove: bool = True  # rm
    force_remove: bool = False  # forcerm
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    platform: str = ""
    quiet: bool = False
    squash: bool = False
    registry_auth: dict[str, dict[str, Any]] = field(default_factory=dict)  # X-Registry-Config


class BuildOutput(Protocol):
    """Where the build's progress goes: the API writes each call as one JSON
    message of the stream."""

    def stream(self, text: str) -> None:
        """A {"stream": text} message (text with its newline)."""

    def aux(self, data: dict[str, Any]) -> None:
        """An {"aux": data} message ({"ID": "sha256:..."} at the end)."""


def build(engine: Engine, options: BuildOptions, context_dir: str, out: BuildOutput,
          cancel: threading.Event) -> str:
    """Build the Dockerfile ``options.dockerfile`` of ``context_dir``; -> the
    image id ("sha256:..."), tagged with ``options.tags``.  Raises BuildError
    in docker's words; on ``cancel`` the running step is stopped and the
    intermediate containers removed before it raises."""
    raise BuildError("builds are not implemented yet")
