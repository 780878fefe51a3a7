"""inspect, info, version, events, system df, system prune."""

from __future__ import annotations

import os
import sys

from pybox import __version__
from pybox.cli.pybox import templates
from pybox.cli.pybox.client import CLIENT_API_VERSION, path_escape
from pybox.cli.pybox.common import confirm, parse_filters
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.formatting import indent_raw_json, tabwrite
from pybox.cli.pybox.templates import Template
from pybox.cli.pybox.units import human_size
from pybox.errors import ClientError, DaemonError, ExitStatus
from pybox.formats import fastjson
from pybox.formats.sizes import bytes_size
from pybox.formats.times import get_timestamp, rfc3339_nano_fixed

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pybox.cli.pybox import Cli

# what `inspect` tries, in docker's order, for an object of unknown type
_KINDS = {
    "container": ("/containers/{}/json", "No such container"),
    "image": ("/images/{}/json", "No such image"),
    "network": ("/networks/{}", "No such network"),
    "volume": ("/volumes/{}", "No such volume"),
}


def inspect_objects(cli: Cli, names: list[str], fmt: str | None, kinds: Sequence[str]) -> int:
    """docker's inspect: each name looked up as each kind in turn; the raw JSON
    re-indented (or a template per object); missing ones -> ``Error: No such
    object: X`` on stderr, ``[]`` still printed, exit 1."""
    template = Template(fmt.replace("\\t", "\t").replace("\\n", "\n")) \
        if fmt and fmt != "json" else None
    raws = []
    rendered = []
    errors = []
    for name in names:
        raw = None
        for kind in kinds:
            path = _KINDS[kind][0].format(path_escape(name))
            try:
                raw = cli.client.request("GET", path).text()
                break
            except DaemonError as err:
                if err.status != 404:
                    raise
        if raw is None:
            what = "object" if len(kinds) > 1 else kinds[0]
            errors.append(f"Error: No such {what}: {name}")
            continue
        if template is not None:
            try:
                rendered.append(template.execute(fastjson.loads(raw)))
            except ClientError as err:
                cli.out("".join(r + "\n" for r in rendered))
                raise ClientError(f"template parsing error: {err}") from None
        else:
            raws.append(raw.strip())
    if template is not None:
        cli.out("".join(r + "\n" for r in rendered))
    else:
        cli.out(indent_raw_json("[" + ",".join(raws) + "]") + "\n" if raws else "[]\n")
    if errors:
        cli.flush()
        raise ExitStatus(1, "\n".join(errors))
    return 0


def cmd_inspect(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NAME|ID [NAME|ID...]",
                 "Return low-level information on pybox objects", min_args=1)
    fs.add("format", "f", help="Format output using a custom template")
    fs.add("size", "s", "bool", help="Display total file sizes if the type is container")
    fs.add("type", help="Only inspect objects of the given type")
    opts = fs.parse(argv)
    if opts.type and opts.type not in _KINDS:
        raise ClientError(f'"{opts.type}" is not a valid value for --type')
    kinds = (opts.type,) if opts.type else ("container", "image", "network", "volume")
    return inspect_objects(cli, opts.args, opts.format, kinds)


def cmd_container_inspect(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER [CONTAINER...]",
                 "Display detailed information on one or more containers", min_args=1)
    fs.add("format", "f", help="Format output using a custom template")
    fs.add("size", "s", "bool", help="Display total file sizes")
    opts = fs.parse(argv)
    return inspect_objects(cli, opts.args, opts.format, ("container",))


def _client_info(cli: Cli) -> dict[str, Any]:
    return {"Platform": {"Name": "pybox"}, "Version": __version__,
            "ApiVersion": CLIENT_API_VERSION, "DefaultAPIVersion": CLIENT_API_VERSION,
            "GitCommit": "",
            "GoVersion": "python{}.{}.{}".format(*sys.version_info[:3]),
            "Os": sys.platform, "Arch": _arch(), "BuildTime": "", "Context": "default"}


def _arch() -> str:
    machine = os.uname().machine       # not platform: it imports re and more (~8 ms)
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _version_text(client_info: dict[str, Any], server: dict[str, Any] | None) -> str:
    c = client_info
    api = c["ApiVersion"]
    if api != c["DefaultAPIVersion"]:
        api += f" (downgraded from {c['DefaultAPIVersion']})"
    lines = ["Client:", f" Version:           {c['Version']}",
             f" API version:       {api}", f" Python version:    {c['GoVersion']}",
             f" OS/Arch:           {c['Os']}/{c['Arch']}", f" Context:           {c['Context']}"]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name") or ""
        lines += ["", f"Server:{' ' + name if name else ''}"]
        components = server.get("Components") or [
            {"Name": "Engine", "Version": server.get("Version", ""), "Details": server}]
        for comp in components:
            details = comp.get("Details") or {}
            lines.append(f" {comp.get('Name', '')}:")
            if comp.get("Name") == "Engine":
                d = details.get
                lines += [f"  Version:          {comp.get('Version', '')}",
                          f"  API version:      {d('ApiVersion', '')} (minimum version "
                          f"{d('MinAPIVersion', '')})",
                          f"  Go version:       {d('GoVersion', '')}",
                          f"  Git commit:       {d('GitCommit', '')}",
                          f"  Built:            {d('BuildTime', '')}",
                          f"  OS/Arch:          {d('Os', '')}/{d('Arch', '')}",
                          f"  Experimental:     {d('Experimental', 'false')}"]
            else:
                lines.append(f"  Version:          {comp.get('Version', '')}")
                for key in sorted(details):
                    lines.append(f"  {(key + ':').ljust(18)}{details[key]}")
    return "\n".join(lines) + "\n"


def cmd_version(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Show the pybox version information",
                 max_args=0)
    fs.add("format", "f", help="Format output using a custom template")
    opts = fs.parse(argv)
    client_info = _client_info(cli)
    server = None
    error = None
    try:
        client_info["ApiVersion"] = cli.client.version
        server = cli.client.get_json("/version")
    except ClientError as err:
        error = err
    if opts.format:
        fmt = "{{json .}}" if opts.format == "json" else opts.format
        out = templates.render(fmt.replace("\\n", "\n").replace("\\t", "\t"),
                               {"Client": client_info, "Server": server})
        cli.out(out + "\n")
    else:
        cli.out(_version_text(client_info, server))
    if error is not None:
        cli.flush()
        raise error
    return 0


def cmd_info(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Display system-wide information",
                 max_args=0)
    fs.add("format", "f", help="Format output using a custom template")
    opts = fs.parse(argv)
    info = cli.client.get_json("/info") or {}
    if opts.format:
        fmt = "{{json .}}" if opts.format == "json" else opts.format
        cli.out(templates.render(fmt.replace("\\n", "\n").replace("\\t", "\t"), info) + "\n")
        return 0
    g = info.get
    lines = ["Client:", f" Version:    {__version__}", " Context:    default",
             f" Debug Mode: {'true' if cli.debug else 'false'}", "", "Server:",
             f" Containers: {g('Containers', 0)}", f"  Running: {g('ContainersRunning', 0)}",
             f"  Paused: {g('ContainersPaused', 0)}", f"  Stopped: {g('ContainersStopped', 0)}",
             f" Images: {g('Images', 0)}", f" Server Version: {g('ServerVersion', '')}",
             f" Storage Driver: {g('Driver', '')}"]
    for pair in g("DriverStatus") or []:
        if len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [f" Logging Driver: {g('LoggingDriver', '')}",
              f" Cgroup Driver: {g('CgroupDriver', '')}",
              f" Cgroup Version: {g('CgroupVersion', '')}"]
    plugins = g("Plugins") or {}
    lines.append(" Plugins:")
    for key in ("Volume", "Network", "Log"):
        if plugins.get(key):
            lines.append(f"  {key}: {' '.join(plugins[key])}")
    runtimes = g("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    lines += [f" Default Runtime: {g('DefaultRuntime', '')}",
              f" Init Binary: {g('InitBinary', '')}",
              f" Kernel Version: {g('KernelVersion', '')}",
              f" Operating System: {g('OperatingSystem', '')}",
              f" OSType: {g('OSType', '')}", f" Architecture: {g('Architecture', '')}",
              f" CPUs: {g('NCPU', 0)}", f" Total Memory: {bytes_size(g('MemTotal', 0))}",
              f" Name: {g('Name', '')}", f" ID: {g('ID', '')}",
              f" Docker Root Dir: {g('DockerRootDir', '')}",
              f" Debug Mode: {'true' if g('Debug') else 'false'}",
              f" Experimental: {'true' if g('ExperimentalBuild') else 'false'}",
              f" Live Restore Enabled: {'true' if g('LiveRestoreEnabled') else 'false'}", ""]
    cli.out("\n".join(lines) + "\n")
    for warning in g("Warnings") or []:
        cli.err(f"{warning}\n")
    return 0


def cmd_events(cli: Cli, argv: list[str], command: str) -> int:

    fs = FlagSet(command, f"{command} [OPTIONS]", "Get real time events from the server",
                 max_args=0)
    fs.add("filter", "f", "list", help="Filter output based on conditions provided")
    fs.add("format", help="Format output using a custom template")
    fs.add("since", help="Show all events created since timestamp")
    fs.add("until", help="Stream events until this timestamp")
    opts = fs.parse(argv)
    try:
        since = get_timestamp(opts.since) if opts.since else None
        until = get_timestamp(opts.until) if opts.until else None
    except ValueError as err:
        raise ClientError(str(err)) from None
    query = {"filters": parse_filters(opts.filter), "since": since, "until": until}
    resp = cli.client.request("GET", "/events", query=query)
    fmt = opts.format
    template = Template("{{json .}}" if fmt == "json" else fmt) if fmt else None
    try:
        for event in resp.iter_json():
            if template is not None:
                cli.out(template.execute(event) + "\n")
            else:
                nano = event.get("timeNano") or event.get("time", 0) * 10**9
                stamp = rfc3339_nano_fixed(nano, local=True)
                actor = event.get("Actor") or {}
                attrs = actor.get("Attributes") or {}
                shown = ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
                line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} " \
                       f"{actor.get('ID', '')}"
                if shown:
                    line += f" ({shown})"
                cli.out(line + "\n")
            cli.flush()
    except KeyboardInterrupt:
        resp.close()
    return 0


def cmd_df(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Show pybox disk usage", max_args=0)
    fs.add("verbose", "v", "bool", help="Show detailed information on space usage")
    fs.add("format", help="Format output using a custom template")
    fs.parse(argv)
    df = cli.client.get_json("/system/df") or {}
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    active_images = sum(1 for i in images if (i.get("Containers") or 0) > 0)
    image_size = df.get("LayersSize") or 0
    reclaim_images = sum(i.get("Size", 0) - max(i.get("SharedSize", 0), 0)
                         for i in images if (i.get("Containers") or 0) == 0)
    active_containers = sum(1 for c in containers if c.get("State") == "running")
    container_size = sum(c.get("SizeRw") or 0 for c in containers)
    reclaim_containers = sum(c.get("SizeRw") or 0 for c in containers
                             if c.get("State") != "running")
    active_volumes = sum(1 for v in volumes if ((v.get("UsageData") or {}).get("RefCount")
                                                or 0) > 0)
    volume_size = sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in volumes)
    reclaim_volumes = sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in volumes
                          if not (v.get("UsageData") or {}).get("RefCount"))
    cache_size = sum(c.get("Size", 0) for c in cache)

    def pct(part: int, whole: int) -> str:
        return f" ({int(part * 100 / whole)}%)" if whole else ""
    lines = ["TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE",
             f"Images\t{len(images)}\t{active_images}\t{human_size(image_size)}\t"
             f"{human_size(reclaim_images)}{pct(reclaim_images, image_size)}",
             f"Containers\t{len(containers)}\t{active_containers}\t"
             f"{human_size(container_size)}\t{human_size(reclaim_containers)}"
             f"{pct(reclaim_containers, container_size)}",
             f"Local Volumes\t{len(volumes)}\t{active_volumes}\t{human_size(volume_size)}\t"
             f"{human_size(reclaim_volumes)}{pct(reclaim_volumes, volume_size)}",
             f"Build Cache\t{len(cache)}\t0\t{human_size(cache_size)}\t{human_size(cache_size)}"]
    cli.out("\n".join(tabwrite(lines)) + "\n")
    return 0


def cmd_system_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove unused data", max_args=0)
    fs.add("all", "a", "bool", help="Remove all unused images not just dangling ones")
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("volumes", kind="bool", help="Prune anonymous volumes")
    fs.add("filter", kind="list", help="Provide filter values")
    opts = fs.parse(argv)
    if not opts.force and not confirm(cli, "WARNING! This will remove all stopped "
                                            "containers, unused networks, dangling images "
                                            "and build cache.\nAre you sure you want to "
                                            "continue?"):
        return 0
    filters = parse_filters(opts.filter)
    total = 0
    client = cli.client
    report = client.request("POST", "/containers/prune", query={"filters": filters}).json()
    for cid in (report or {}).get("ContainersDeleted") or []:
        cli.out(f"deleted container: {cid}\n")
    total += (report or {}).get("SpaceReclaimed") or 0
    if opts.volumes:
        report = client.request("POST", "/volumes/prune", query={"filters": filters}).json()
        total += (report or {}).get("SpaceReclaimed") or 0
    try:
        client.request("POST", "/networks/prune", query={"filters": filters}).read()
    except DaemonError:
        pass
    image_filters = parse_filters(list(opts.filter) + ([] if opts.all else ["dangling=true"]))
    report = client.request("POST", "/images/prune", query={"filters": image_filters}).json()
    total += (report or {}).get("SpaceReclaimed") or 0
    cli.out(f"Total reclaimed space: {human_size(total)}\n")
    return 0
