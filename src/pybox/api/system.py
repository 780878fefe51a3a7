"""/_ping, /version, /info, /events, /system/df."""

import os
import platform
import time
from typing import Any

from pybox import __version__
from pybox.api.server import API_VERSION, MIN_API_VERSION, Request, Response, Router
from pybox.engine.engine import Engine
from pybox.engine.timefmt import parse_timestamp
from pybox.errors import BadRequest
from pybox.formats import fastjson


def register(router: Router, engine: Engine) -> None:
    r = router

    def ping(req: Request, resp: Response) -> None:
        headers = [("Cache-Control", "no-cache, no-store, must-revalidate"),
                   ("Pragma", "no-cache"), ("Builder-Version", "1"), ("Swarm", "inactive")]
        if req.method == "HEAD":
            resp.head(200, "text/plain; charset=utf-8", headers)
            return
        resp.send(200, b"OK", "text/plain; charset=utf-8", headers)

    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)

    @r.route("GET", "/version")
    def version(req: Request, resp: Response) -> None:
        resp.json(version_info())

    @r.route("GET", "/info")
    def info(req: Request, resp: Response) -> None:
        resp.json(system_info(engine))

    @r.route("GET", "/events")
    def events(req: Request, resp: Response) -> None:
        filters = req.filters()
        # checked before the 200 goes out: a bad value is a 400, not a stream
        # cut short (parse_timestamp refuses inf, nan and 1e400)
        since = parse_timestamp(req.arg("since"))
        until = parse_timestamp(req.arg("until"))
        if until and until < since:
            raise BadRequest(f"`since` time ({req.arg('since')}) cannot be after `until` "
                             f"time ({req.arg('until')})")
        watch = engine.events.watch(since, until, filters, req.client_gone)
        try:
            # inside the try: a stream refused (503: too many) must unsubscribe too
            write, end = resp.stream(200, "application/json")
            for e in watch:
                write(fastjson.dumps(e).encode() + b"\n")
            if watch.finished:
                end()
        finally:
            watch.close()


def version_info() -> dict[str, Any]:
    u = os.uname()
    return {
        "Platform": {"Name": "pybox Engine"},
        "Components": [
            {"Name": "Engine", "Version": __version__,
             "Details": {"ApiVersion": API_VERSION, "Arch": _arch(), "BuildTime": "",
                         "Experimental": "false", "GitCommit": "", "GoVersion":
                         "python" + platform.python_version(), "KernelVersion": u.release,
                         "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}},
            {"Name": "pybox-runtime", "Version": __version__,
             "Details": {"GitCommit": ""}},
        ],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": u.release,
        "BuildTime": "",
    }


def _arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def system_info(engine: Engine) -> dict[str, Any]:
    counts = engine.counts()
    u = os.uname()
    v2 = engine.cgroup_v2()
    return {
        "ID": "pybox", "Containers": counts.containers, "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused, "ContainersStopped": counts.stopped,
        "Images": counts.images, "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", ""]],
        "Plugins": {"Volume": ["local"], "Network": ["null", "host"],
                    "Log": ["json-file", "local", "syslog"]},  # ("none" unlisted, as by dockerd)
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False,
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": engine.config.debug,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": not v2,
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "LoggingDriver": engine.config.log_driver, "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if v2 else "1", "NEventsListener": counts.event_listeners,
        "KernelVersion": u.release, "OperatingSystem": _os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": u.machine, "IndexServerAddress":
            "https://index.docker.io/v1/", "RegistryConfig": {"IndexConfigs": {}},
        "NCPU": os.cpu_count(), "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": engine.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": u.nodename, "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": __version__, "Runtimes": {"pybox": {"path": engine.runtime}},
        "DefaultRuntime": "pybox", "Swarm": {"NodeID": "", "NodeAddr": "",
                                             "LocalNodeState": "inactive",
                                             "ControlAvailable": False, "Error": "",
                                             "RemoteManagers": None},
        "LiveRestoreEnabled": engine.config.live_restore, "Isolation": "", "InitBinary": "tini",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"]
        + (["name=userns"] if engine.remap else [])
        + (["name=cgroupns"] if v2 else []),
        "Warnings": [],
        **({"DefaultAddressPools": [{"Base": p.base, "Size": p.size}
                                    for p in engine.config.default_address_pools]}
           if engine.config.default_address_pools else {}),
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
