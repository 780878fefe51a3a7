"""linux.resources as the cgroup drivers read it: the up-front check and two
small readers.

Why a check before anything is written: an impossible value found half-way
through apply() would leave some limits written and some not.  The rules are
pybox.oci.resources' (the one rule set, which the runtime also checks
config.json with); here they raise CgroupError, the drivers' error.  What only
the kernel can judge (a device that does not exist, a limit below current
usage, a controller that is not delegated) is caught at write time and the
drivers roll back what they created.
"""

from __future__ import annotations

from pybox.errors import CgroupError, ConfigError
from pybox.oci.resources import check_resources

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

P = "linux.resources"


def validate(resources: object) -> None:
    """Raise CgroupError (errno EINVAL) for the first invalid field; the rules
    are pybox.oci.resources', the one set the runtime checks config.json with."""
    try:
        check_resources(resources, P)
    except ConfigError as e:
        raise CgroupError(str(e), errno=22) from None


def rdma_lines(rdma: dict[str, dict[str, int]] | None) -> list[str]:
    """linux.resources.rdma -> rdma.max lines (same syntax on v1 and v2):
    "mlx5_1 hca_handle=3 hca_object=max"; an omitted limit stays "max"."""
    lines = []
    for device, limits in (rdma or {}).items():
        handles = limits.get("hcaHandles")
        objects = limits.get("hcaObjects")
        lines.append(f"{device} hca_handle={'max' if handles is None else handles} "
                     f"hca_object={'max' if objects is None else objects}")
    return lines


def get(resources: dict[str, Any] | None, section: str) -> dict[str, Any]:
    """``resources[section]`` as a dict (missing or null -> {})."""
    if not resources:
        return {}
    value = resources.get(section)
    return value if isinstance(value, dict) else {}
