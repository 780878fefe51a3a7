"""``pybox volume``: create, ls, inspect, rm, prune (issue 7)."""

from __future__ import annotations

from pybox.cli.pybox.client import path_escape
from pybox.cli.pybox.common import confirm, for_each, parse_filters
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.formatting import render_rows
from pybox.cli.pybox.system import inspect_objects
from pybox.cli.pybox.units import human_size

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.pybox import Cli

LS_TABLE = "table {{.Driver}}\t{{.Name}}"


class VolumeRow:
    HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
               "Scope": "SCOPE", "Labels": "LABELS", "Size": "SIZE"}
    FIELDS = ("Driver", "Labels", "Mountpoint", "Name", "Scope", "Size")

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    def field(self, name: str) -> Any:
        if name == "Labels":
            labels = self.v.get("Labels") or {}
            return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
        if name == "Label":
            return lambda key: (self.v.get("Labels") or {}).get(key, "")
        if name == "Size":
            size = (self.v.get("UsageData") or {}).get("Size", -1)
            return "N/A" if size < 0 else human_size(size)
        return self.v.get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {k: self.field(k) for k in self.FIELDS}


def cmd_create(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] [VOLUME]", "Create a volume", max_args=1)
    fs.add("driver", "d", default="local", help="Specify volume driver name")
    fs.add("label", kind="list", help="Set metadata for a volume")
    fs.add("name", help="Specify volume name")
    fs.add("opt", "o", "list", help="Set driver specific options")
    opts = fs.parse(argv)
    name = opts.args[0] if opts.args else opts.name
    body = {"Driver": opts.driver,
            "DriverOpts": dict(o.partition("=")[::2] for o in opts.opt),
            "Labels": dict(label.partition("=")[::2] for label in opts.label), "Name": name}
    vol = cli.client.request("POST", "/volumes/create", json=body).json() or {}
    cli.out(f"{vol.get('Name', '')}\n")
    return 0


def cmd_ls(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "List volumes", max_args=0)
    fs.add("filter", "f", "list", help="Provide filter values (e.g. \"dangling=true\")")
    fs.add("format", help="Format output using a custom template")
    fs.add("quiet", "q", "bool", help="Only display volume names")
    opts = fs.parse(argv)
    data = cli.client.get_json("/volumes", query={"filters": parse_filters(opts.filter)}) or {}
    rows = [VolumeRow(v) for v in sorted(data.get("Volumes") or [],
                                         key=lambda v: v.get("Name", ""))]
    fmt = "{{.Name}}" if opts.quiet and not opts.format else opts.format
    cli.out(render_rows(fmt, rows, LS_TABLE, VolumeRow.HEADERS))
    return 0


def cmd_inspect(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] VOLUME [VOLUME...]",
                 "Display detailed information on one or more volumes", min_args=1)
    fs.add("format", "f", help="Format output using a custom template")
    opts = fs.parse(argv)
    return inspect_objects(cli, opts.args, opts.format, ("volume",))


def cmd_rm(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] VOLUME [VOLUME...]",
                 "Remove one or more volumes", min_args=1)
    fs.add("force", "f", "bool", help="Force the removal of one or more volumes")
    opts = fs.parse(argv)
    return for_each(cli, opts.args, lambda name: cli.client.request(
        "DELETE", f"/volumes/{path_escape(name)}",
        query={"force": 1 if opts.force else None}).read())


def cmd_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove unused local volumes", max_args=0)
    fs.add("all", "a", "bool", help="Remove all unused volumes, not just anonymous ones")
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("filter", kind="list", help="Provide filter values")
    opts = fs.parse(argv)
    if not opts.force and not confirm(cli, "WARNING! This will remove anonymous local "
                                            "volumes not used by at least one container.\n"
                                            "Are you sure you want to continue?"):
        return 0
    filters = list(opts.filter) + (["all=true"] if opts.all else [])
    report = cli.client.request("POST", "/volumes/prune",
                                query={"filters": parse_filters(filters)}).json() or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        cli.out("Deleted Volumes:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
