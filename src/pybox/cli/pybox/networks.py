"""``pybox network``: create, ls, inspect, rm, connect, disconnect, prune."""

from __future__ import annotations

from pybox.cli.pybox.client import path_escape
from pybox.cli.pybox.common import confirm, for_each, parse_filters
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.formatting import render_rows
from pybox.cli.pybox.system import inspect_objects

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.pybox import Cli

LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


class NetworkRow:
    HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
               "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
               "CreatedAt": "CREATED AT"}
    FIELDS = ("CreatedAt", "Driver", "ID", "IPv6", "Internal", "Labels", "Name", "Scope")

    def __init__(self, n: dict[str, Any], trunc: bool = True) -> None:
        self.n = n
        self.trunc = trunc

    def field(self, name: str) -> Any:
        if name == "ID":
            ident = self.n.get("Id", "")
            return ident[:12] if self.trunc else ident
        if name == "IPv6":
            return "true" if self.n.get("EnableIPv6") else "false"
        if name == "Internal":
            return "true" if self.n.get("Internal") else "false"
        if name == "Labels":
            labels = self.n.get("Labels") or {}
            return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
        if name == "CreatedAt":
            return self.n.get("Created", "")
        return self.n.get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {k: self.field(k) for k in self.FIELDS}


def cmd_create(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NETWORK", "Create a network", exact_args=1)
    fs.add("driver", "d", default="bridge", help="Driver to manage the Network")
    fs.add("internal", kind="bool", help="Restrict external access to the network")
    fs.add("ipv6", kind="bool", help="Enable or disable IPv6 networking")
    fs.add("label", kind="list", help="Set metadata on a network")
    fs.add("opt", "o", "list", help="Set driver specific options")
    fs.add("subnet", kind="list", help="Subnet in CIDR format that represents a network "
                                        "segment")
    fs.add("gateway", kind="list", help="IPv4 or IPv6 Gateway for the master subnet")
    fs.add("ip-range", kind="list", help="Allocate container ip from a sub-range")
    opts = fs.parse(argv)
    configs = []
    for i, subnet in enumerate(opts.subnet):
        entry = {"Subnet": subnet}
        if i < len(opts.ip_range):
            entry["IPRange"] = opts.ip_range[i]
        if i < len(opts.gateway):
            entry["Gateway"] = opts.gateway[i]
        configs.append(entry)
    body = {"Name": opts.args[0], "Driver": opts.driver, "Internal": opts.internal,
            "EnableIPv6": opts.ipv6 if opts.given("ipv6") else None,
            "IPAM": {"Driver": "default", "Options": None, "Config": configs},
            "Options": dict(o.partition("=")[::2] for o in opts.opt),
            "Labels": dict(label.partition("=")[::2] for label in opts.label)}
    result = cli.client.request("POST", "/networks/create", json=body).json() or {}
    cli.out(f"{result.get('Id', '')}\n")
    return 0


def cmd_ls(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "List networks", max_args=0)
    fs.add("filter", "f", "list", help="Provide filter values (e.g. \"driver=bridge\")")
    fs.add("format", help="Format output using a custom template")
    fs.add("no-trunc", kind="bool", help="Do not truncate the output")
    fs.add("quiet", "q", "bool", help="Only display network IDs")
    opts = fs.parse(argv)
    nets = cli.client.get_json("/networks", query={"filters": parse_filters(opts.filter)})
    rows = [NetworkRow(n, not opts.no_trunc) for n in sorted(nets or [],
                                                              key=lambda n: n.get("Name", ""))]
    fmt = "{{.ID}}" if opts.quiet and not opts.format else opts.format
    cli.out(render_rows(fmt, rows, LS_TABLE, NetworkRow.HEADERS))
    return 0


def cmd_inspect(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NETWORK [NETWORK...]",
                 "Display detailed information on one or more networks", min_args=1)
    fs.add("format", "f", help="Format output using a custom template")
    fs.add("verbose", "v", "bool", help="Verbose output for diagnostics")
    opts = fs.parse(argv)
    return inspect_objects(cli, opts.args, opts.format, ("network",))


def cmd_rm(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} NETWORK [NETWORK...]", "Remove one or more networks",
                 min_args=1)
    fs.add("force", "f", "bool", help="Do not error if the network does not exist")
    opts = fs.parse(argv)
    return for_each(cli, opts.args, lambda name: cli.client.request(
        "DELETE", f"/networks/{path_escape(name)}").read())


def _connect(cli: Cli, argv: list[str], command: str, action: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NETWORK CONTAINER",
                 f"{action.title()} a container {'to' if action == 'connect' else 'from'} a "
                 "network", exact_args=2)
    if action == "connect":
        fs.add("alias", kind="list", help="Add network-scoped alias for the container")
        fs.add("ip", help="IPv4 address (e.g., 172.30.100.104)")
        fs.add("ip6", help="IPv6 address (e.g., 2001:db8::33)")
    else:
        fs.add("force", "f", "bool", help="Force the container to disconnect from a network")
    opts = fs.parse(argv)
    network, container = opts.args
    body: dict[str, Any] = {"Container": container}
    if action == "connect":
        ipam = {}
        if opts.ip:
            ipam["IPv4Address"] = opts.ip
        if opts.ip6:
            ipam["IPv6Address"] = opts.ip6
        body["EndpointConfig"] = {"IPAMConfig": ipam or None, "Aliases": opts.alias or None}
    else:
        body["Force"] = opts.force
    cli.client.request("POST", f"/networks/{path_escape(network)}/{action}", json=body).read()
    return 0


def cmd_connect(cli: Cli, argv: list[str], command: str) -> int:
    return _connect(cli, argv, command, "connect")


def cmd_disconnect(cli: Cli, argv: list[str], command: str) -> int:
    return _connect(cli, argv, command, "disconnect")


def cmd_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove all unused networks", max_args=0)
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("filter", kind="list", help="Provide filter values")
    opts = fs.parse(argv)
    if not opts.force and not confirm(cli, "WARNING! This will remove all custom networks "
                                            "not used by at least one container.\nAre you "
                                            "sure you want to continue?"):
        return 0
    report = cli.client.request("POST", "/networks/prune",
                                query={"filters": parse_filters(opts.filter)}).json() or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        cli.out("Deleted Networks:\n" + "".join(f"{d}\n" for d in deleted))
    return 0
