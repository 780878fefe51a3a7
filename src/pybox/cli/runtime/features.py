"""pybox-runtime features: the runtime-spec features document (features.md)."""

from __future__ import annotations

import os
import sys

from pybox import OCI_VERSION, __version__
from pybox.formats import fastjson
from pybox.linux import caps as capslib
from pybox.oci.spec import NAMESPACE_TYPES
from pybox.runtime.rootfs import EXTENSION_OPTIONS, MOUNT_FLAGS, PROPAGATION_FLAGS

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any


TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.runtime import Context
    from pybox.cli.runtime.options import CommandOptions


def document() -> dict[str, Any]:
    try:
        from pybox.runtime import seccomp  # noqa: PLC0415 -- libseccomp's binding is optional

        seccomp_features = seccomp.features()
    except ImportError:
        seccomp_features = {"enabled": False}
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            apparmor = f.read().strip() == "Y"
    except OSError:
        apparmor = False
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION_FLAGS)
                               | set(EXTENSION_OPTIONS)),
        "linux": {
            "namespaces": sorted(n for n in NAMESPACE_TYPES
                                 if n != "time" or os.path.exists("/proc/self/ns/time")),
            "capabilities": capslib.CAPABILITY_NAMES[:capslib.last_cap() + 1],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": True},
            "seccomp": seccomp_features,
            "apparmor": {"enabled": apparmor},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.runtime.name": "pybox-runtime",
            "org.opencontainers.runtime-spec.features.runtime.version": __version__,
        },
    }


def run(ctx: Context, opts: CommandOptions, args: list[str]) -> int:
    doc = document()
    doc["linux"]["capabilities"] = list(doc["linux"]["capabilities"])
    sys.stdout.write(fastjson.dumps(doc, indent=4) + "\n")
    return 0
