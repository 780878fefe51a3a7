"""A persistent network namespace per container, bind-mounted at
RUN_ROOT/netns/<container id>.

The namespace exists before the container: pyboxd creates it, plugs the
container's interfaces into it, and the runtime joins it by path
(``linux.namespaces[{"type": "network", "path": ...}]``).  So networking is
ready when the program starts, survives pyboxd restarts (the bind mount holds
the namespace), and can be changed live (connect/disconnect) through the path.

pyboxd is multi-threaded, so nothing here forks (pyroute2's netns helpers do):
a short-lived thread unshares or setns()es its own network namespace (a
per-thread attribute), opens the netlink socket it was asked for there (a
socket belongs to the namespace it was created in, whatever thread later uses
it) and ends; the calling thread's namespace never changes.

Removal unmounts and unlinks the path; the kernel then destroys the namespace,
and with it the container's ends of the veth pairs (and so the host ends),
asynchronously once the last process in it has gone.  Deleting a veth
synchronously costs ~30 ms of RCU grace period; this costs ~0.1 ms.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pybox.errors import NetnsError
from pybox.linux import constants as C
from pybox.linux.syscalls import Syscalls, real

T = TypeVar("T")

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12


_syscalls: Syscalls | None = None


def _sc() -> Syscalls:
    global _syscalls
    if _syscalls is None:
        _syscalls = real()
    return _syscalls


def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread (whose namespaces it may change) -> result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=run, name="pybox-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _netlink_sockets(protocols: Iterable[int]) -> list[socket.socket]:
    return [socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, p) for p in protocols]


def create(path: str, protocols: Iterable[int] = (NETLINK_ROUTE,)) -> list[socket.socket]:
    """A new network namespace bound at ``path`` -> netlink sockets opened in it
    (one per protocol in ``protocols``).  Nothing is left behind on failure."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)

    def work() -> list[socket.socket]:
        sc = _sc()
        sc.unshare(C.CLONE_NEWNET)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            sc.mount("/proc/thread-self/ns/net", path, "none", C.MS_BIND)
        except BaseException:
            os.unlink(path)
            raise
        return _netlink_sockets(protocols)

    try:
        return _in_thread(work)
    except FileExistsError:
        raise NetnsError(f"network namespace {path} already exists", errno=17) from None
    except OSError as e:
        raise NetnsError(f"cannot create network namespace {path}: {e}",
                         errno=e.errno) from None


def open_sockets(path: str, protocols: Iterable[int] = (NETLINK_ROUTE,)) -> list[socket.socket]:
    """Netlink sockets in the existing namespace at ``path`` (or /proc/PID/ns/net)."""
    try:
        nsfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(f"cannot open network namespace {path}: {e.strerror}",
                         errno=e.errno) from None

    def work() -> list[socket.socket]:
        _sc().setns(nsfd, C.CLONE_NEWNET)
        return _netlink_sockets(protocols)

    try:
        return _in_thread(work)
    except OSError as e:
        raise NetnsError(f"cannot enter network namespace {path}: {e}",
                         errno=e.errno) from None
    finally:
        os.close(nsfd)


def run_in(path: str, fn: Callable[[], T]) -> T:
    """Call ``fn()`` on a thread inside the namespace at ``path`` (tests, DNS
    probes): sockets ``fn`` opens stay in that namespace."""
    nsfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def work() -> T:
        _sc().setns(nsfd, C.CLONE_NEWNET)
        return fn()

    try:
        return _in_thread(work)
    finally:
        os.close(nsfd)


def is_mounted(path: str) -> bool:
    """True if ``path`` is a bind mount of a network namespace: nsfs files all
    live on one device, the one /proc/self/ns/net is on."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def remove(path: str) -> None:
    """Unmount and unlink ``path``; the namespace goes when its last user does.
    Idempotent."""
    try:
        _sc().umount2(path, C.MNT_DETACH)
    except OSError as e:
        if e.errno not in (22, 2):  # EINVAL: not a mount point; ENOENT
            raise NetnsError(f"cannot unmount network namespace {path}: {e}",
                             errno=e.errno) from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def list_dir(directory: str) -> list[str]:
    """Names of the namespaces bound under ``directory`` (the netns dir)."""
    try:
        return sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except FileNotFoundError:
        return []
