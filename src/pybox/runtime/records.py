"""The runtime's own records, as types: the state file of a container, the
state documents it prints and gives to hooks, the parent <-> init messages.

Types only: the runtime's modules import this under ``TYPE_CHECKING`` (never
when they run: ``typing`` costs start-up time on every runtime command), and
build these records as plain dicts, which is what they are on disk and on the
wire.  The OCI config itself is docker's and the spec's JSON (``dict[str,
Any]``), as pybox.oci gives it.
"""

from __future__ import annotations

import _socket
from typing import Any, TypedDict


class ContainerRecord(TypedDict, total=False):
    """ROOT/ID/state.json: what ``create`` recorded and later commands check
    against the kernel (see container.py)."""

    id: str
    bundle: str  # absolute path of the bundle
    rootfs: str  # the resolved root.path
    created: str  # RFC 3339
    creator_pid: int  # while creating: the runtime process doing it...
    creator_start: int | None  # ...and its start time (a recycled pid is not it)
    annotations: dict[str, str]
    started: bool  # `start` told init to exec the program
    host_mounts: bool  # no mount namespace: mounts were made on the host
    cgroup: dict[str, Any]  # the cgroup manager's description (Manager.to_state)
    pid: int  # init's host pid, once known
    pid_start: int | None  # init's start time in clock ticks (proc.start_time)
    paused: bool  # `pause` froze the cgroup


class HookState(TypedDict, total=False):
    """The runtime-spec state hooks get on stdin."""

    ociVersion: str
    id: str
    status: str
    pid: int
    bundle: str
    annotations: dict[str, str]


class StateDocument(HookState, total=False):
    """What ``state`` prints: the runtime-spec state plus runc's extra fields."""

    rootfs: str
    created: str
    owner: str


class Message(TypedDict, total=False):
    """One parent <-> init message (sync.py): ``type`` always, the rest by type."""

    type: str  # pid, userns, hooks, seccomp, ready, error; cgroup, mapped, go
    pid: int  # pid, userns
    fds: list[int]  # file descriptors that came with the message (SCM_RIGHTS)
    message: str  # error: the text the user sees
    errno: int | None  # error
    kind: str  # error: the exception's class name, rebuilt on the parent's side


class CgroupMount(TypedDict):
    """One entry of the container's /sys/fs/cgroup (container._cgroup_mounts):
    a v1 hierarchy by its directory name, or "" for the v2 tree."""

    path: str | None  # the container's cgroup in it (host path)
    options: str  # v1: the hierarchy's mount options (its controllers)
    aliases: list[str]  # v1: links to make for co-mounted controllers (cpu -> cpu,cpuacct)


class CreateOptions(TypedDict, total=False):
    """container.create's keyword arguments, as ``run`` passes them through
    (``after_fork`` is run's own)."""

    pid_file: str | None
    no_pivot: bool
    no_new_keyring: bool
    preserve_fds: int
    systemd_cgroup: bool
    console_socket: str | None  # --console-socket: where the pty master goes
    config: dict[str, Any] | None  # the bundle's config.json, already read
    console_sock: _socket.socket | None  # an already connected console socket
    raw_config: bytes | None  # config.json's bytes, kept as the snapshot
    listen_fds: int  # systemd socket activation: LISTEN_FDS passed through
