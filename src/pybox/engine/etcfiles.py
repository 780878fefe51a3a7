"""The container's /etc files: hostname, hosts and resolv.conf.

They live in the container's directory (the record's HostnamePath, HostsPath,
ResolvConfPath) and are bind-mounted over the container's own.  This module
is their one writer: create writes a first version (``write_initial``);
networking (engine/networking.py) rewrites them with what the network gives
(addresses, the embedded DNS) through ``write``: a new file (renamed into
place) before the container runs, the same file rewritten in place while it
runs (a rename would leave the running container on the old file).
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from pybox.engine.store import Container
from pybox.images.snapshots import IdMap
from pybox.oci.state import write_atomic

BASE_HOSTS = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
              "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix",
              "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters")


def write_new(path: str, text: str) -> None:
    """One /etc file, renamed into place (the container does not run)."""
    write_atomic(path, text, mode=0o644)


def write_in_place(path: str, text: str) -> None:
    """One /etc file of a running container, rewritten in place."""
    with open(path, "r+") as f:
        f.write(text)
        f.truncate()


def write(path: str, text: str, live: bool = False) -> None:
    """One /etc file: renamed into place, or (``live``) rewritten in place."""
    (write_in_place if live else write_new)(path, text)


def copy(src: str, dst: str) -> None:
    """Another container's file as this one's (--network container:ID)."""
    shutil.copyfile(src, dst)


def write_initial(c: Container) -> None:
    """A new container's files: its hostname (the host's with --network
    host), localhost and --add-host entries, the host's resolv.conf."""
    hostname = c.config["Hostname"]
    if c.host_config.get("NetworkMode") == "host":
        hostname = socket.gethostname()
    write(c.hostname_path, hostname + "\n")
    hosts = list(BASE_HOSTS)
    for extra in c.host_config.get("ExtraHosts") or ():
        host, _, ip = extra.partition(":")
        hosts.append(f"{ip}\t{host}")
    write(c.hosts_path, "\n".join(hosts) + "\n")
    try:
        with open("/etc/resolv.conf") as f:
            resolv = f.read()
    except OSError:
        resolv = ""
    write(c.resolv_conf_path, resolv)


def mounts(c: Container, idmap: IdMap | None = None) -> list[dict[str, Any]]:
    """The OCI bind mounts of the three files."""
    out = []
    for dest, path in (("/etc/resolv.conf", c.resolv_conf_path),
                       ("/etc/hostname", c.hostname_path),
                       ("/etc/hosts", c.hosts_path)):
        if idmap:  # as docker: the remapped root may edit its own copies
            os.chown(path, idmap["uid"][0][1], idmap["gid"][0][1])
        out.append({"destination": dest, "type": "bind", "source": path,
                    "options": ["rbind", "rprivate"]})
    return out
