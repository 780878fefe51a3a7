"""Container commands: create, run, start, attach, stop, kill, pause, unpause,
restart, rm, wait, ps, and issue 7's rename, port, top, update, diff, export,
commit, stats, cp, container prune.

Each follows the docker CLI's request sequence (README "Per-command traces").
The attached ones (run, start -a, attach) share :func:`_attached_session`:
create -> attach (101) -> wait (headers first) -> start -> resize -> copy loop
-> the wait's StatusCode as the exit status.
"""

from __future__ import annotations

import os

from pybox.cli.pybox.common import (
    confirm,
    container_path,
    familiar_name,
    for_each,
    is_no_such_image,
    parse_filters,
    pull_image,
    split_reference,
    write_stream,
)
from pybox.cli.pybox.container_opts import add_create_flags, build_create_body, parse_restart
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import (
    DEFAULT_DETACH_KEYS,
    PROXIED,
    RawTerminal,
    SignalCatcher,
    detach_key_bytes,
    is_terminal,
    pump,
    signal_name,
    terminal_size,
)
from pybox.cli.pybox.units import human_size, mem_swap_bytes, nano_cpus
from pybox.errors import ClientError, DaemonError, ExitStatus, FlagError
from pybox.formats.sizes import ram_in_bytes

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pybox.cli.pybox import Cli
    from pybox.cli.pybox.client import APIClient, Response
    from pybox.cli.pybox.flags import Options


# -- exit codes ------------------------------------------------------------------------
def start_error_status(message: str) -> int:
    """docker's runStartContainerErr: the start error's text picks the exit code
    (127 not found, 126 cannot be invoked, else 125)."""
    text = message
    if text.startswith("Error response from daemon: "):
        text = text[len("Error response from daemon: "):]
    if ("executable file not found" in text or "no such file or directory" in text
            or "system cannot find the file specified" in text):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def run_error(command: str, err: object, status: int = 125) -> ClientError:
    """``pybox: <error>\\n\\nRun 'pybox run --help' ...`` with exit 125 (run/create)."""
    return ClientError(f"pybox: {err}\n\nRun '{command} --help' for more information",
                       exit_status=status)


def wait_status(cli: Cli, resp: Response) -> int:
    """The body of a pending ``wait``: its StatusCode (an Error in it -> 125)."""
    result = None
    try:
        for message in resp.iter_json():
            result = message
            break
    except OSError:
        result = None
    resp.close()
    if not result:
        raise ClientError("error waiting for container: unexpected EOF", exit_status=125)
    error = result.get("Error")
    if error and error.get("Message"):
        raise ClientError(f"error waiting for container: {error['Message']}", exit_status=125)
    return int(result.get("StatusCode", 0))


# -- create / run ------------------------------------------------------------------------
def _create_flagset(command: str, run: bool) -> FlagSet:
    usage = f"{command} [OPTIONS] IMAGE [COMMAND] [ARG...]"
    fs = FlagSet(command, usage, "Create and run a new container from an image" if run
                 else "Create a new container", interspersed=False, min_args=1)
    add_create_flags(fs)
    if run:
        fs.add("detach", "d", "bool", help="Run container in background and print container ID")
        fs.add("sig-proxy", kind="bool", default=True, help="Proxy received signals to the "
                                                            "process")
        fs.add("detach-keys", help="Override the key sequence for detaching a container")
    return fs


def _create(cli: Cli, command: str, opts: Options, console_size: tuple[int, int] | None = None,
            detach: bool = False, run: bool = True) -> tuple[str, dict[str, Any]]:
    """create (with a pull on 'No such image' as docker does); -> (id, body).
    Bad flag values are ``pybox: ...`` + help hint, 125, for both commands; a
    daemon error is that too for run, but plain with exit 1 for create (what
    docker 28 does)."""
    client = cli.client
    try:
        query, body = build_create_body(opts, client.version, console_size=console_size,
                                        detach=detach)
    except FlagError as err:
        raise run_error(command, err) from None
    if opts.pull not in ("missing", "always", "never"):
        raise run_error(command, f'invalid pull option: \'{opts.pull}\': must be one of '
                                 '"always", "missing" or "never"')
    if opts.cidfile and os.path.exists(opts.cidfile):
        raise run_error(command, f"container ID file found, make sure the other container "
                                 f"isn't running or delete {opts.cidfile}")
    image = body["Image"]
    try:
        if opts.pull == "always":
            pull_image(cli, image, opts.platform, opts.quiet, to_stderr=True)
        try:
            resp = client.request("POST", "/containers/create", query=query, json=body)
        except DaemonError as err:
            if not is_no_such_image(err) or opts.pull == "never":
                raise
            cli.err(f"Unable to find image '{familiar_name(image)}' locally\n")
            pull_image(cli, image, opts.platform, opts.quiet, to_stderr=True)
            resp = client.request("POST", "/containers/create", query=query, json=body)
        created = resp.json() or {}
    except ExitStatus:
        raise
    except ClientError as err:
        if not run:
            raise ClientError(str(err)) from None
        raise run_error(command, err) from None
    for warning in created.get("Warnings") or []:
        cli.err(f"WARNING: {warning}\n")
    container_id = created.get("Id", "")
    if opts.cidfile:
        try:
            with open(opts.cidfile, "w") as f:
                f.write(container_id)
        except OSError as err:
            raise run_error(command, f"failed to create the container ID file: {err}") \
                from None
    return container_id, body


def cmd_create(cli: Cli, argv: list[str], command: str) -> int:
    opts = _create_flagset(command, run=False).parse(argv)
    container_id, _ = _create(cli, command, opts, run=False)
    cli.out(container_id + "\n")
    return 0


def cmd_run(cli: Cli, argv: list[str], command: str) -> int:
    opts = _create_flagset(command, run=True).parse(argv)
    keys = None
    if opts.tty and not opts.detach:
        try:
            keys = detach_key_bytes(opts.detach_keys or DEFAULT_DETACH_KEYS)
        except ValueError as err:
            raise run_error(command, err) from None
    if opts.tty and opts.interactive and not opts.detach and not is_terminal(0):
        raise ClientError("the input device is not a TTY")
    console = terminal_size(1) if opts.tty and not opts.detach and is_terminal(1) else None
    container_id, body = _create(cli, command, opts, console_size=console,
                                 detach=opts.detach)
    if opts.detach:
        client = cli.client
        waiter = client.request("POST", container_path(container_id, "/wait"),
                                query={"condition": "removed" if opts.rm else "next-exit"})
        try:
            client.request("POST", container_path(container_id, "/start")).read()
        except ClientError as err:
            waiter.close()
            raise run_error(command, err, start_error_status(str(err))) from None
        waiter.close()
        cli.out(container_id + "\n")
        return 0
    status = _attached_session(
        cli, container_id, tty=body["Tty"], stdin=body["AttachStdin"],
        stdout=body["AttachStdout"], stderr=body["AttachStderr"],
        condition="removed" if opts.rm else "next-exit", sig_proxy=opts.sig_proxy,
        detach_keys=keys, detach_keys_query=opts.detach_keys or None,
        start_error=lambda err: run_error(command, err, start_error_status(str(err))),
        wait_on_start_failure=opts.rm, detach_result=0)
    return _exit(status)


def _exit(status: int | None) -> int:
    if status:
        raise ExitStatus(status)
    return 0


def _attached_session(cli: Cli, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                      stderr: bool, condition: str | None, sig_proxy: bool,
                      detach_keys: bytes | None, detach_keys_query: str | None = None,
                      start_error: Callable[[ClientError], Exception] | None = None,
                      wait_on_start_failure: bool = False, detach_result: int | None = 0,
                      start: bool = True, waiter: Response | None = None,
                      resize_plus_one: bool = False) -> int | None:
    """The attached part of run / start -a / attach.  Returns the exit status
    (the wait's StatusCode, or ``detach_result`` after the detach keys)."""
    client = cli.client
    cid_path = container_path(container_id)
    stream = None
    if stdin or stdout or stderr:
        query = {"stream": 1, "stdin": 1 if stdin else None, "stdout": 1 if stdout else None,
                 "stderr": 1 if stderr else None, "detachKeys": detach_keys_query}
        stream = client.hijack(cid_path + "/attach", query=query)
        if not stdin:
            stream.close_write()
    if waiter is None:
        waiter = client.request("POST", cid_path + "/wait",
                                query={"condition": condition} if condition else None)
    raw = None
    signals = None
    stdin_tty = is_terminal(0)
    stdout_tty = is_terminal(1)
    try:
        if tty and stdin and stdin_tty:
            raw = RawTerminal(0)
        names = PROXIED if sig_proxy else (("WINCH",) if tty and stdout_tty else ())
        if names:
            signals = SignalCatcher(names)

        def resize(plus_one: bool=False) -> None:
            size = terminal_size(1)
            if not size:
                return
            h, w = size
            sizes = [(h + 1, w + 1), (h, w)] if plus_one else [(h, w)]
            for hh, ww in sizes:
                try:
                    client.request("POST", cid_path + "/resize",
                                   query={"h": hh, "w": ww}).read()
                except ClientError:
                    pass

        def on_signals(numbers: list[int]) -> None:
            for num in numbers:
                name = signal_name(num)
                if name == "WINCH" and tty and stdout_tty:
                    resize()
                if sig_proxy:
                    try:
                        client.request("POST", cid_path + "/kill",
                                       query={"signal": name}).read()
                    except ClientError:
                        pass

        if start:
            try:
                client.request("POST", cid_path + "/start").read()
            except ClientError as err:
                if raw is not None:
                    raw.restore()
                if stream is not None:
                    stream.close()
                if wait_on_start_failure:
                    try:
                        wait_status(cli, waiter)
                    except ClientError:
                        pass
                else:
                    waiter.close()
                raise (start_error(err) if start_error else err) from None
        if tty and stdout_tty:
            resize(resize_plus_one)
        result = "eof"
        if stream is not None:
            cli.flush()
            result = pump(stream, tty=tty, stdin_fd=0 if stdin else None,
                          detach_keys=detach_keys if tty else None, signals=signals,
                          on_signals=on_signals)
            stream.close()
        if raw is not None:
            raw.restore()
        if result == "detached":
            waiter.close()
            return detach_result
        return wait_status(cli, waiter)
    finally:
        if raw is not None:
            raw.restore()
        if signals is not None:
            signals.close()


# -- start / attach ------------------------------------------------------------------------
def cmd_start(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER [CONTAINER...]",
                 "Start one or more stopped containers", min_args=1)
    fs.add("attach", "a", "bool", help="Attach STDOUT/STDERR and forward signals")
    fs.add("interactive", "i", "bool", help="Attach container's STDIN")
    fs.add("detach-keys", help="Override the key sequence for detaching a container")
    opts = fs.parse(argv)
    client = cli.client
    if opts.attach or opts.interactive:
        if len(opts.args) > 1:
            raise ClientError("you cannot start and attach multiple containers at once")
        info = client.get_json(container_path(opts.args[0], "/json"))
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = bool(opts.interactive and config.get("OpenStdin"))
        try:
            keys = detach_key_bytes(opts.detach_keys or DEFAULT_DETACH_KEYS)
        except ValueError as err:
            raise ClientError(str(err)) from None
        status = _attached_session(
            cli, info["Id"], tty=tty, stdin=stdin, stdout=True, stderr=True,
            condition="next-exit", sig_proxy=not tty, detach_keys=keys,
            detach_keys_query=opts.detach_keys or None, detach_result=0)
        return _exit(status)

    def start(name: str) -> None:
        client.request("POST", container_path(name, "/start")).read()
    return for_each(cli, opts.args, start, fail_summary="failed to start containers")


def cmd_attach(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER",
                 "Attach local standard input, output, and error streams to a running "
                 "container", exact_args=1)
    fs.add("detach-keys", help="Override the key sequence for detaching a container")
    fs.add("no-stdin", kind="bool", help="Do not attach STDIN")
    fs.add("sig-proxy", kind="bool", default=True, help="Proxy all received signals to the "
                                                        "process")
    opts = fs.parse(argv)
    name = opts.args[0]
    client = cli.client
    waiter = client.request("POST", container_path(name, "/wait"))
    try:
        info = client.get_json(container_path(name, "/json"))
    except ClientError:
        waiter.close()
        raise
    state = info.get("State") or {}
    config = info.get("Config") or {}
    problem = None
    if not state.get("Running"):
        problem = "You cannot attach to a stopped container, start it first"
    elif state.get("Paused"):
        problem = "You cannot attach to a paused container, unpause it first"
    elif state.get("Restarting"):
        problem = "You cannot attach to a restarting container, wait until it is running"
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not opts.no_stdin
    if problem is None and tty and stdin and not is_terminal(0):
        problem = "the input device is not a TTY"
    if problem:
        waiter.close()
        raise ClientError(problem)
    try:
        keys = detach_key_bytes(opts.detach_keys or DEFAULT_DETACH_KEYS)
    except ValueError as err:
        waiter.close()
        raise ClientError(str(err)) from None
    status = _attached_session(
        cli, info["Id"], tty=tty, stdin=stdin, stdout=True, stderr=True, condition=None,
        sig_proxy=opts.sig_proxy and not tty, detach_keys=keys,
        detach_keys_query=opts.detach_keys or None, start=False, waiter=waiter,
        detach_result=None, resize_plus_one=True)
    if status is None:
        raise ClientError("read escape sequence")
    return _exit(status)


# -- stop / kill / pause / unpause / restart / rm / wait --------------------------
def _simple(cli: Cli, argv: list[str], command: str, summary: str,
            action: Callable[[APIClient, str, Options], object],
            setup: Callable[[FlagSet], None] | None = None) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER [CONTAINER...]", summary,
                 min_args=1)
    if setup:
        setup(fs)
    opts = fs.parse(argv)

    def one(name: str) -> str | None:
        shown = action(cli.client, name, opts)
        return shown if isinstance(shown, str) else None
    return for_each(cli, opts.args, one)


def cmd_stop(cli: Cli, argv: list[str], command: str) -> int:
    def setup(fs: FlagSet) -> None:
        fs.add("time", "t", "int", help="Seconds to wait before killing the container")
        fs.add("signal", "s", help="Signal to send to the container")

    def stop(client: APIClient, name: str, opts: Options) -> None:
        query = {"t": opts.time if opts.given("time") else None,
                 "signal": opts.signal or None}
        client.request("POST", container_path(name, "/stop"), query=query).read()
    return _simple(cli, argv, command, "Stop one or more running containers", stop, setup)


def cmd_restart(cli: Cli, argv: list[str], command: str) -> int:
    def setup(fs: FlagSet) -> None:
        fs.add("time", "t", "int", help="Seconds to wait before killing the container")
        fs.add("signal", "s", help="Signal to send to the container")

    def restart(client: APIClient, name: str, opts: Options) -> None:
        query = {"t": opts.time if opts.given("time") else None,
                 "signal": opts.signal or None}
        client.request("POST", container_path(name, "/restart"), query=query).read()
    return _simple(cli, argv, command, "Restart one or more containers", restart, setup)


def cmd_kill(cli: Cli, argv: list[str], command: str) -> int:
    def setup(fs: FlagSet) -> None:
        fs.add("signal", "s", help="Signal to send to the container")

    def kill(client: APIClient, name: str, opts: Options) -> None:
        client.request("POST", container_path(name, "/kill"),
                       query={"signal": opts.signal or None}).read()
    return _simple(cli, argv, command, "Kill one or more running containers", kill, setup)


def cmd_pause(cli: Cli, argv: list[str], command: str) -> int:
    return _simple(cli, argv, command, "Pause all processes within one or more containers",
                   lambda client, name, opts: client.request(
                       "POST", container_path(name, "/pause")).read())


def cmd_unpause(cli: Cli, argv: list[str], command: str) -> int:
    return _simple(cli, argv, command, "Unpause all processes within one or more containers",
                   lambda client, name, opts: client.request(
                       "POST", container_path(name, "/unpause")).read())


def cmd_rm(cli: Cli, argv: list[str], command: str) -> int:
    def setup(fs: FlagSet) -> None:
        fs.add("force", "f", "bool", help="Force the removal of a running container (uses "
                                          "SIGKILL)")
        fs.add("volumes", "v", "bool", help="Remove anonymous volumes associated with the "
                                            "container")
        fs.add("link", "l", "bool", help="Remove the specified link")

    def rm(client: APIClient, name: str, opts: Options) -> None:
        if not name.strip("/"):
            raise ClientError("Container name cannot be empty")
        query = {"force": 1 if opts.force else None, "v": 1 if opts.volumes else None,
                 "link": 1 if opts.link else None}
        client.request("DELETE", container_path(name.strip("/")), query=query).read()
    return _simple(cli, argv, command, "Remove one or more containers", rm, setup)


def cmd_wait(cli: Cli, argv: list[str], command: str) -> int:
    def wait(client: APIClient, name: str, opts: Options) -> str:
        resp = client.request("POST", container_path(name, "/wait"))
        return str(wait_status(cli, resp))
    return _simple(cli, argv, command, "Block until one or more containers stop, then print "
                                       "their exit codes", wait)


# -- ps ----------------------------------------------------------------------------------
def cmd_ps(cli: Cli, argv: list[str], command: str) -> int:
    from pybox.cli.pybox import formatting  # noqa: PLC0415 -- the table and template code (~1 ms): not on run's path
    fs = FlagSet(command, f"{command} [OPTIONS]", "List containers", max_args=0)
    fs.add("all", "a", "bool", help="Show all containers (default shows just running)")
    fs.add("quiet", "q", "bool", help="Only display container IDs")
    fs.add("size", "s", "bool", help="Display total file sizes")
    fs.add("last", "n", "int", default=-1, help="Show n last created containers (includes "
                                                "all states)")
    fs.add("latest", "l", "bool", help="Show the latest created container (includes all "
                                       "states)")
    fs.add("filter", "f", "list", help="Filter output based on conditions provided")
    fs.add("format", help="Format output using a custom template")
    fs.add("no-trunc", kind="bool", help="Don't truncate output")
    opts = fs.parse(argv)
    fmt = opts.format
    if opts.quiet and not fmt:
        fmt = "{{.ID}}"
    limit = 1 if opts.latest else opts.last
    size = opts.size or ".Size" in fmt
    query = {"all": 1 if opts.all else None, "limit": limit if limit > 0 else None,
             "size": 1 if size else None, "filters": parse_filters(opts.filter)}
    containers = cli.client.get_json("/containers/json", query=query) or []
    default = formatting.PS_TABLE + ("\t{{.Size}}" if opts.size else "")
    rows = [formatting.ContainerRow(c, trunc=not opts.no_trunc) for c in containers]
    cli.out(formatting.render_rows(fmt, rows, default, formatting.ContainerRow.HEADERS))
    return 0


# -- issue 7: rename, port, top, update, diff, export, commit, stats, cp, prune --------
def cmd_rename(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} CONTAINER NEW_NAME", "Rename a container", exact_args=2)
    opts = fs.parse(argv)
    old, new = opts.args
    if not new.strip():
        raise ClientError("Error: Neither old nor new names may be empty")
    cli.client.request("POST", container_path(old, "/rename"), query={"name": new}).read()
    return 0


def cmd_port(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} CONTAINER [PRIVATE_PORT[/PROTO]]",
                 "List port mappings or a specific mapping for the container", min_args=1,
                 max_args=2)
    opts = fs.parse(argv)
    info = cli.client.get_json(container_path(opts.args[0], "/json"))
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(opts.args) == 2:
        port, _, proto = opts.args[1].partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise ClientError(f"Error: No public port '{key}' published for {opts.args[0]}")
        for b in bindings:
            cli.out(f"{_host_port(b)}\n")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            cli.out(f"{key} -> {_host_port(b)}\n")
    return 0


def _host_port(binding: dict[str, str]) -> str:
    ip = binding.get("HostIp", "")
    if ":" in ip:
        ip = f"[{ip}]"
    return f"{ip}:{binding.get('HostPort', '')}"


def cmd_top(cli: Cli, argv: list[str], command: str) -> int:
    from pybox.cli.pybox.formatting import tabwrite  # noqa: PLC0415 -- the table and template code (~1 ms): not on run's path
    fs = FlagSet(command, f"{command} CONTAINER [ps OPTIONS]",
                 "Display the running processes of a container", min_args=1,
                 interspersed=False)
    opts = fs.parse(argv)
    query = {"ps_args": " ".join(opts.args[1:])} if len(opts.args) > 1 else None
    data = cli.client.get_json(container_path(opts.args[0], "/top"), query=query)
    lines = ["\t".join(data.get("Titles") or [])]
    lines += ["\t".join(p) for p in data.get("Processes") or []]
    cli.out("\n".join(tabwrite(lines, minwidth=20, padding=3)) + "\n")
    return 0


def cmd_update(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER [CONTAINER...]",
                 "Update configuration of one or more containers", min_args=1)
    fs.add("memory", "m", convert=ram_in_bytes, default=0, help="Memory limit")
    fs.add("memory-swap", convert=mem_swap_bytes, default=0, help="Swap limit equal to "
                                                                   "memory plus swap")
    fs.add("memory-reservation", convert=ram_in_bytes, default=0, help="Memory soft limit")
    fs.add("kernel-memory", convert=ram_in_bytes, default=0, hidden=True)
    fs.add("cpu-shares", "c", "int", help="CPU shares (relative weight)")
    fs.add("cpus", convert=nano_cpus, default=0, help="Number of CPUs")
    fs.add("cpu-period", kind="int", help="Limit CPU CFS period")
    fs.add("cpu-quota", kind="int", help="Limit CPU CFS quota")
    fs.add("cpu-rt-period", kind="int", help="Limit the CPU real-time period")
    fs.add("cpu-rt-runtime", kind="int", help="Limit the CPU real-time runtime")
    fs.add("cpuset-cpus", help="CPUs in which to allow execution")
    fs.add("cpuset-mems", help="MEMs in which to allow execution")
    fs.add("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)")
    fs.add("blkio-weight", kind="int", help="Block IO (relative weight)")
    fs.add("restart", help="Restart policy to apply when a container exits")
    opts = fs.parse(argv)
    body = {"CpuShares": opts.cpu_shares, "Memory": opts.memory, "NanoCpus": opts.cpus,
            "CgroupParent": "", "BlkioWeight": opts.blkio_weight, "BlkioWeightDevice": None,
            "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
            "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
            "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
            "CpuRealtimePeriod": opts.cpu_rt_period, "CpuRealtimeRuntime": opts.cpu_rt_runtime,
            "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems, "Devices": None,
            "DeviceCgroupRules": None, "DeviceRequests": None,
            "MemoryReservation": opts.memory_reservation, "MemorySwap": opts.memory_swap,
            "MemorySwappiness": None, "OomKillDisable": None,
            "PidsLimit": opts.pids_limit if opts.given("pids-limit") else None,
            "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "RestartPolicy": parse_restart(opts.restart) if opts.restart
            else {"Name": "", "MaximumRetryCount": 0}}
    if not opts.changed - {"help"}:
        raise ClientError("you must provide one or more flags when using this command",
                          exit_status=1)

    def update(name: str) -> None:
        resp = cli.client.request("POST", container_path(name, "/update"), json=body).json()
        for warning in (resp or {}).get("Warnings") or []:
            cli.err(f"{warning}\n")
    return for_each(cli, opts.args, update)


def cmd_diff(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} CONTAINER",
                 "Inspect changes to files or directories on a container's filesystem",
                 exact_args=1)
    opts = fs.parse(argv)
    changes = cli.client.get_json(container_path(opts.args[0], "/changes")) or []
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in changes:
        cli.out(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}\n")
    return 0


def cmd_export(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER",
                 "Export a container's filesystem as a tar archive", exact_args=1)
    fs.add("output", "o", help="Write to a file, instead of STDOUT")
    opts = fs.parse(argv)
    if not opts.output and is_terminal(1):
        raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or "
                          "redirect")
    resp = cli.client.request("GET", container_path(opts.args[0], "/export"))
    write_stream(cli, resp, opts.output, "container")
    return 0


def cmd_commit(cli: Cli, argv: list[str], command: str) -> int:
    from pybox.cli.pybox.formatting import split_repo_tag  # noqa: PLC0415 -- the table and template code (~1 ms): not on run's path
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                 "Create a new image from a container's changes", min_args=1, max_args=2)
    fs.add("author", "a", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    fs.add("change", "c", "list", help="Apply Dockerfile instruction to the created image")
    fs.add("message", "m", help="Commit message")
    fs.add("pause", "p", "bool", default=True, help="Pause container during commit")
    opts = fs.parse(argv)
    repo = tag = None
    if len(opts.args) == 2:
        split_reference(opts.args[1])
        repo, tag = split_repo_tag(opts.args[1])
        tag = None if tag == "<none>" else tag
    query = {"container": opts.args[0], "repo": repo, "tag": tag,
             "comment": opts.message or None, "author": opts.author or None,
             "changes": opts.change or None, "pause": 1 if opts.pause else 0}
    result = cli.client.request("POST", "/commit", query=query, json={}).json() or {}
    cli.out(f"{result.get('Id', '')}\n")
    return 0


def cmd_container_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove all stopped containers",
                 max_args=0)
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("filter", kind="list", help='Provide filter values (e.g. "until=<timestamp>")')
    opts = fs.parse(argv)
    if not opts.force and not confirm(cli, "WARNING! This will remove all stopped "
                                            "containers.\nAre you sure you want to continue?"):
        return 0
    report = cli.client.request("POST", "/containers/prune",
                                query={"filters": parse_filters(opts.filter)}).json() or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        cli.out("Deleted Containers:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
