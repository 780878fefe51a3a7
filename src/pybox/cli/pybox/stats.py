"""``pybox stats`` (issue 7): docker's table of CPU, memory, network, block I/O and
pids per container, computed from ``/containers/{id}/stats`` as docker computes
it (memory = usage minus inactive file cache; CPU from the deltas against
``precpu_stats``).  ``--no-stream`` prints one round; otherwise the table is
redrawn about once a second until interrupted."""

from __future__ import annotations

import time

from pybox.cli.pybox.common import container_path
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.formatting import Row, render_rows
from pybox.cli.pybox.units import human_size
from pybox.formats.sizes import bytes_size

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from pybox.cli.pybox import Cli

TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t" \
        "{{.BlockIO}}\t{{.PIDs}}"


class StatsRow(Row):
    HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
               "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
               "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
    FIELDS = ("BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name",
              "NetIO", "PIDs")

    def __init__(self, ident: str, name: str, s: dict[str, Any] | None,
                 trunc: bool = True) -> None:
        self.ident = ident
        self.s = s or {}
        self.name = name
        self.trunc = trunc

    @property
    def ID(self) -> str:
        return self.ident[:12] if self.trunc else self.ident

    @property
    def Container(self) -> str:
        return self.ID

    @property
    def Name(self) -> str:
        return (self.s.get("name") or self.name or "").lstrip("/") or "--"

    @property
    def CPUPerc(self) -> str:
        return f"{cpu_percent(self.s):.2f}%"

    @property
    def MemUsage(self) -> str:
        used, limit = memory_usage(self.s)
        return f"{bytes_size(used)} / {bytes_size(limit)}"

    @property
    def MemPerc(self) -> str:
        used, limit = memory_usage(self.s)
        return f"{(used / limit * 100.0) if limit else 0.0:.2f}%"

    @property
    def NetIO(self) -> str:
        rx = tx = 0
        for net in (self.s.get("networks") or {}).values():
            rx += net.get("rx_bytes", 0)
            tx += net.get("tx_bytes", 0)
        return f"{human_size(rx)} / {human_size(tx)}"

    @property
    def BlockIO(self) -> str:
        read = write = 0
        for entry in (self.s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = (entry.get("op") or "").lower()
            if op == "read":
                read += entry.get("value", 0)
            elif op == "write":
                write += entry.get("value", 0)
        return f"{human_size(read)} / {human_size(write)}"

    @property
    def PIDs(self) -> str:
        return str((self.s.get("pids_stats") or {}).get("current", 0))


def cpu_percent(s: dict[str, Any]) -> float:
    cpu = s.get("cpu_stats") or {}
    pre = s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(s: dict[str, Any]) -> tuple[int, int]:
    mem = s.get("memory_stats") or {}
    usage = mem.get("usage", 0)
    stats = mem.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        usage -= stats["total_inactive_file"]
    elif "inactive_file" in stats and stats["inactive_file"] < usage:
        usage -= stats["inactive_file"]
    return usage, mem.get("limit", 0)


def run(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] [CONTAINER...]",
                 "Display a live stream of container(s) resource usage statistics")
    fs.add("all", "a", "bool", help="Show all containers (default shows just running)")
    fs.add("format", help="Format output using a custom template")
    fs.add("no-stream", kind="bool", help="Disable streaming stats and only pull the first "
                                          "result")
    fs.add("no-trunc", kind="bool", help="Do not truncate output")
    opts = fs.parse(argv)
    client = cli.client
    try:
        while True:
            if opts.args:
                targets = [(name, name) for name in opts.args]
            else:
                listed = client.get_json("/containers/json",
                                         query={"all": 1 if opts.all else None}) or []
                targets = [(c["Id"][:12], (c.get("Names") or [""])[0]) for c in listed]
            rows = []
            for ident, name in targets:
                s = client.get_json(container_path(ident, "/stats"), query={"stream": 0})
                rows.append(StatsRow(s.get("id") or ident, name, s, not opts.no_trunc))
            text = render_rows(opts.format, rows, TABLE, StatsRow.HEADERS)
            if opts.no_stream:
                cli.out(text)
                return 0
            cli.out("\033[2J\033[H" + text)
            cli.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
