"""A container's life: create, start, its exit, stop, kill, restart, pause,
remove, wait.  Every change of state goes through the record's transitions
(state.py) and is saved before it is told (events, waiters).

The live parts are a monitor process per running container (pybox.monitor),
reached through the runner (runner.py), and one watcher thread per running
container that learns of the exit.  pyboxd serves requests on threads:
nothing here forks (forking a threaded process is unsafe); monitors come from
the zygote, execs from the runtime's CLI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pybox import cgroups
from pybox.crashpoints import crashpoint
from pybox.engine import etcfiles, health, logs
from pybox.engine import spec as specmod
from pybox.engine.daemonconfig import merge_ulimits
from pybox.engine.events import attributes
from pybox.engine.state import ZERO_TIME
from pybox.engine.store import Container, new_id, validate_name
from pybox.engine.volumes import CREATE_VOLUMES, RecordingVolumes, oci_mounts, parse_mounts
from pybox.errors import (
    BadRequest,
    Conflict,
    InvalidState,
    LogDriverError,
    NotFound,
    NotModified,
    PyboxError,
    StartError,
    UsageError,
)
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.images.platforms import Platform
from pybox.images.snapshots import IdMap
from pybox.oci.state import write_atomic
from pybox.runtime.signals import parse_signal

if TYPE_CHECKING:
    from pybox.engine.engine import Engine

DEFAULT_STOP_TIMEOUT = 10
KILL = 9
KILL_WAIT = 10.0  # seconds a SIGKILL waits for the exit (moby daemon.Kill)
# the record's key for Engine.create's monitor_group (pyboxd's CRI: a pod's monitor)
MONITOR_GROUP = "MonitorGroup"


def signal_number(name: str | int) -> int:
    try:
        return parse_signal(str(name))
    except UsageError:
        raise BadRequest(f"Invalid signal: {name}") from None  # dockerd's words


def exit_code_for_start_error(message: str) -> int:
    """dockerd's rule for the ExitCode of a container whose start failed."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 128


# --cgroup-parent: a path component as long as a file name may be (NAME_MAX), and the
# whole parent short enough that a container's deepest cgroup file stays below
# PATH_MAX (4096) with the mount point, a relative parent's base, the id and the
# longest control file name added
CGROUP_NAME_MAX = 255
CGROUP_PARENT_MAX = 2048


def check_cgroup_parent(parent: str) -> None:
    """--cgroup-parent, refused with a 400 before anything is made when the
    container's cgroup would not land where the name says.  dockerd (cgroupfs)
    passes any string to runc, which silently clamps '..' at the hierarchy's
    root and takes 'x.slice' as a plain directory; pyboxd refuses instead:
    '..' (pybox's runtime refuses it in cgroupsPath anyway), control characters
    (a newline forges lines of /proc/PID/cgroup), over-long names (ENAMETOOLONG
    only at start, from the kernel), a bare systemd slice name (dockerd's systemd
    driver wants "xxx.slice"; pyboxd drives cgroupfs, where it would be a literal
    directory, not the slice meant), and a parent inside another container's
    cgroup (its removal would kill this one)."""
    if not parent:
        return
    shown = parent if len(parent) <= 80 else parent[:77] + "..."
    bad = f"invalid cgroup-parent {shown!r}"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in parent):
        raise BadRequest(f"{bad}: control characters are not allowed in a cgroup name")
    parts = [p for p in parent.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadRequest(f"{bad}: '..' is not allowed (the container's cgroup must not "
                         "climb out of the cgroup it is placed below)")
    if any(len(p.encode()) > CGROUP_NAME_MAX for p in parts):
        raise BadRequest(f"{bad}: a path component is longer than {CGROUP_NAME_MAX} bytes")
    if len(parent.encode()) > CGROUP_PARENT_MAX:
        raise BadRequest(f"{bad}: longer than {CGROUP_PARENT_MAX} bytes")
    if "/" not in parent and len(parent) > len(".slice") and parent.endswith(".slice"):
        raise BadRequest(f"{bad}: a systemd slice is only valid with the systemd cgroup "
                         "driver, and this daemon uses cgroupfs (give a cgroup path, "
                         f"such as /{parent.removesuffix('.slice')})")
    own = [p for p in specmod.CGROUP_PARENT.split("/") if p]
    if len(parts) > len(own) and parts[:len(own)] == own:
        raise BadRequest(f"{bad}: it is inside {specmod.CGROUP_PARENT}, where pyboxd keeps "
                         "its containers' own cgroups")


def discard_unsupported(hc: dict[str, Any]) -> list[str]:
    """dockerd's verifyPlatformContainerResources: a block io weight the kernel
    cannot take is dropped with a warning and the container runs (an error from
    the runtime at start would be a worse surprise)."""
    if not (hc.get("BlkioWeight") or hc.get("BlkioWeightDevice")):
        return []
    weight, weight_device = cgroups.blkio_weight_support()
    warnings = []
    if hc.get("BlkioWeight") and not weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        hc["BlkioWeight"] = 0
    if hc.get("BlkioWeightDevice") and not weight_device:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup "
                        "is not mounted. Weight-device discarded.")
        hc["BlkioWeightDevice"] = []
    return warnings


def _generated_name(taken: dict[str, Any]) -> str:
    adjectives = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet",
                  "sharp", "tender", "vivid", "wise")
    nouns = ("turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth",
             "liskov", "hamilton", "shannon", "dijkstra", "wirth")
    while True:
        name = f"{secrets.choice(adjectives)}_{secrets.choice(nouns)}_{secrets.randbelow(1000)}"
        if name not in taken:
            return name


def new_record(cid: str, name: str, config: dict[str, Any], hc: dict[str, Any],
               image_id: str, args: list[str], directory: str,
               graph_data: dict[str, Any]) -> dict[str, Any]:
    """A new container's record in docker's shape (inspect's keys, in its
    order): what Container reads and config.v2.json holds."""
    hc.setdefault("NetworkMode", "default")
    hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    if not hc["LogConfig"].get("Type"):
        hc["LogConfig"]["Type"] = "json-file"
    hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    network = hc["NetworkMode"]
    net_name = "bridge" if network == "default" else network
    return {
        "Id": cid,
        "Created": rfc3339_nano_fixed(),
        "Path": args[0],
        "Args": args[1:],
        "State": {"Status": "created", "Running": False, "Paused": False,
                  "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                  "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME,
                  "FinishedAt": ZERO_TIME},
        "Image": image_id,
        "ResolvConfPath": os.path.join(directory, "resolv.conf"),
        "HostnamePath": os.path.join(directory, "hostname"),
        "HostsPath": os.path.join(directory, "hosts"),
        "LogPath": (os.path.join(directory, f"{cid}-json.log")
                    if hc["LogConfig"]["Type"] == "json-file" else ""),
        "Name": "/" + name,
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": hc,
        "GraphDriver": {"Name": "overlay2", "Data": graph_data},
        "Mounts": [],
        "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {net_name: {
                "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": "", "DriverOpts": None}},
        },
    }


class Lifecycle:
    """The verbs that change a container's state, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    # -- create -------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None,
               platform: Platform | None = None, *, cri_log_path: str | None = None,
               monitor_group: str | None = None) -> tuple[str, list[str]]:
        """POST /containers/create, ``body`` typed by pybox.api.schema.  Returns
        (id, warnings).  ``cri_log_path``, ``monitor_group``: Engine.create's
        (the CRI's only)."""
        e = self.e
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON body")
        hc = dict(body.get("HostConfig") or {})
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        # dockerd's order: every check of the request (spec.validate_create), then
        # the image -- a bad request is a 400, not a pull of its image
        checked = specmod.validate_create(config, hc, remapped=e.remap is not None)
        check_cgroup_parent(hc.get("CgroupParent") or "")
        if cri_log_path is not None:  # (after the checks: "cri" is no Docker API driver)
            hc["LogConfig"] = logs.cri_log_config(cri_log_path)
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise BadRequest("Config.Image: the image name is required")
        image = e.images.lookup(image_ref)  # NotFound "No such image: X" -> CLI pulls
        warnings = checked + discard_unsupported(hc)
        warnings += specmod.check_image(image_ref, image, platform, hc)  # --platform, --storage-opt
        specmod.adapt_host_config(hc)  # the implicit swap limit, recorded
        try:
            e.network.check_create(body, hc)
        except NotFound as err:
            # 400, not 404: a 404 from create makes the docker CLI pull the image
            raise BadRequest(str(err)) from None
        config = specmod.merge_image_config(config, image.get("Config") or {})
        config["Image"] = image_ref
        cid = new_id()
        if not config.get("Hostname"):
            config["Hostname"] = (socket.gethostname() if hc.get("NetworkMode") == "host"
                                  else cid[:12])
        try:
            args = specmod.command_line(config)
        except specmod.SpecError as err:
            raise BadRequest(str(err)) from None
        name = validate_name(name) if name else _generated_name(e.store.by_name)
        e.store.reserve(name)
        directory = os.path.join(e.store.root, cid)
        mounts: list[dict[str, Any]] = []
        new_volumes: list[str] = []
        try:
            # the directory first: a crash from here on leaves it without a
            # record, which recovery rolls back (with the volumes it lists)
            os.makedirs(directory, mode=0o710)
            crashpoint("engine.create.dir")
            mounts = parse_mounts(config, hc, RecordingVolumes(e.volumes, directory),
                                  mounts_of=self._mounts_of, created=new_volumes)
            crashpoint("engine.create.mounts")
            idmap = self._idmap_for(hc)
            if idmap is not None:  # its /etc files are bound from inside its userns
                for d in (e.store.root, directory):
                    os.chmod(d, os.stat(d).st_mode & 0o777 | 0o001)
            e.images.create_rootfs(cid, image["Id"], idmap=idmap)
            crashpoint("engine.create.rootfs")
            record = new_record(cid, name, config, hc, image["Id"], args, directory,
                                e.images.rootfs_info(cid))
            if cri_log_path:
                record["LogPath"] = cri_log_path
            if monitor_group:
                record[MONITOR_GROUP] = monitor_group
            e.network.on_create(record, body)
            record["Mounts"] = mounts
            c = Container(record, directory)
            etcfiles.write_initial(c)
            crashpoint("engine.create.etc")
            c.save()
            crashpoint("engine.create.saved")
            try:
                os.unlink(os.path.join(directory, CREATE_VOLUMES))  # the record names them
            except FileNotFoundError:
                pass
            e.store.add(c)
        except BaseException:
            e.store.release_name(name)
            try:
                e.images.remove_rootfs(cid)
            except Exception:  # noqa: BLE001 - rollback is best effort
                pass
            shutil.rmtree(directory, ignore_errors=True)
            self.remove_anonymous_volumes(mounts)
            raise
        for volume in new_volumes:  # as dockerd: a volume made by -v/--mount/VOLUME too
            e.events.emit("volume", "create", volume, {"driver": "local"})
        e.events.emit("container", "create", cid, attributes(c))
        return cid, warnings

    def _mounts_of(self, ref: str) -> list[dict[str, Any]]:
        """Another container's Mounts (--volumes-from); 400 if unknown (a 404
        from create would make the docker CLI try to pull the image)."""
        try:
            other = self.e.get(ref)
        except NotFound:
            raise BadRequest(f"No such container: {ref}") from None
        return [dict(m) for m in other.mounts or ()]

    def _idmap_for(self, hc: dict[str, Any]) -> IdMap | None:
        """The user namespace maps of a new container: the daemon's
        --userns-remap unless the container asks for --userns=host."""
        mode = hc.get("UsernsMode") or ""
        if mode not in ("", "host"):
            raise BadRequest(f"invalid USER mode: {mode!r} (only 'host' is supported)")
        if self.e.remap is None or mode == "host":
            return None
        if hc.get("Privileged"):
            raise BadRequest("privileged mode is incompatible with user namespaces.  You must "
                             "run the container in the host namespace when running privileged "
                             "mode")
        return self.e.remap.idmap

    # -- start ----------------------------------------------------------------------------
    def start(self, ref: str, *, netns_path: str | None = None) -> None:
        c = self.e.get(ref)
        with c.lock:
            c.state.check_start(c.id, c.removed)
            self.start_locked(c, netns_path)

    def start_locked(self, c: Container, netns_path: str | None = None) -> None:
        """Start ``c`` (its lock held): bundle, monitor, runtime; Running.
        ``netns_path``: Engine.start's (the CRI's pinned pod namespace)."""
        e = self.e
        rundir = e.run_dir(c)
        e.runner.delete(c.id)
        crashpoint("engine.start.cleaned")
        os.makedirs(rundir, mode=0o710, exist_ok=True)
        for stale in ("exit.json", "monitor.sock", "monitor.pid"):
            try:
                os.unlink(os.path.join(rundir, stale))
            except FileNotFoundError:
                pass
        rootfs = None
        try:
            rootfs = e.images.mount_rootfs(c.id)
            crashpoint("engine.start.mounted")
            volume_mounts = oci_mounts(c.mounts or [], e.volumes, rootfs)
            # (prepare gives None for NetworkMode "none": the CRI's pod namespace, if any)
            netns = e.network.prepare(c) or netns_path
            crashpoint("engine.start.network")
            idmap = e.images.rootfs_idmap(c.id)
            shm = e.namespaces.prepare_shm(c, idmap)
            merge_ulimits(c.host_config, e.config.default_ulimits)  # daemon.json's, as dockerd
            config = specmod.build(c.record, rootfs, cgroup_v2=e.cgroup_v2(), netns=netns,
                                   extra_mounts=e.procview.mounts(c) + volume_mounts
                                   + etcfiles.mounts(c, idmap),
                                   namespace_of=e.namespaces.namespace_of,
                                   init_path=shutil.which("tini-static"), idmap=idmap,
                                   shm_source=shm)
            # legacy links' variables (engine/networking.py), under the container's own
            config["process"]["env"] = e.network.with_link_env(c, config["process"]["env"])
            e.procview.intercept_sysinfo(c, config, rundir)
            write_atomic(os.path.join(rundir, "config.json"), fastjson.dumps(config))
            crashpoint("engine.start.bundle")
            request = {
                "id": c.id, "bundle": rundir, "runtime_root": e.runtime_root,
                "dir": rundir, "log": logs.monitor_log(c),  # the log driver (engine/logs.py)
                "tty": bool(c.config.get("Tty")),
                "open_stdin": bool(c.config.get("OpenStdin")),
                "stdin_once": bool(c.config.get("StdinOnce")),
                "console_size": c.host_config.get("ConsoleSize") or None,
                "defer_start": True,
                "procview_socket": e.procview.monitor_socket(c),
            }
            group = c.extra.get(MONITOR_GROUP)
            if isinstance(group, str) and group:  # (a pod's monitor: Engine.create's)
                request["group_socket"] = e.runner.group_socket(group)
            report = e.runner.spawn(request)
            crashpoint("engine.start.spawned")
            if not report.get("ok"):
                if report.get("log_driver"):  # dockerd's 'failed to initialize logging driver'
                    raise LogDriverError(report.get("error") or "the log driver failed")
                raise StartError(report.get("error") or "the monitor failed")
            # attach sessions that were waiting for this start join before the
            # program runs, so they see all of its output
            for a in list(c.attachers):
                a.container_started()
            reply = e.runner.monitor(c.id).start(timeout=60.0)
            crashpoint("engine.start.started")
            if reply != "ok":
                msg = reply.get("error") if isinstance(reply, dict) else "start failed"
                raise StartError(msg or "start failed")
            e.runner.note_cgroup_parents(c.id)  # --cgroup-parent's new cgroups are pyboxd's
        except specmod.SpecError as err:
            self._start_failed(c, rootfs, str(err))
            raise StartError(f"failed to create task for container: {err}") from None
        except StartError as err:
            self._start_failed(c, rootfs, str(err))
            raise StartError("failed to create shim task: OCI runtime create failed: "
                             f"{err}: unknown") from None
        except BaseException as err:
            self._start_failed(c, rootfs, str(err))
            raise
        c.state.start(report["pid"], rfc3339_nano_fixed())
        c.manual_stop = False
        c.exit_on_next = False
        c.start_failed = False
        c.save()
        crashpoint("engine.start.saved")
        c.changed.notify_all()
        e.events.emit("container", "start", c.id, attributes(c))
        self.watch(c)
        health.start_checks(c, e.runner, e.events)

    def _start_failed(self, c: Container, rootfs: str | None, message: str) -> None:
        e = self.e
        e.runner.note_cgroup_parents(c.id)
        e.runner.delete(c.id)
        e.runner.remove_container_cgroups(c.id, c.host_config)  # a runtime killed mid-create
        e.runner.release_cgroup_parents()
        crashpoint("engine.start_failed.cleaned")
        e.network.release(c)
        e.namespaces.release_shm(c)
        if rootfs is not None:
            try:
                e.images.unmount_rootfs(c.id)
            except Exception:  # noqa: BLE001
                pass
        c.state.start_failed(message, exit_code_for_start_error(message), rfc3339_nano_fixed())
        c.start_failed = True  # the start's reply said why; a wait does not repeat it
        c.save()
        crashpoint("engine.start_failed.saved")
        for a in list(c.attachers):
            a.container_gone()
        c.exit_seq += 1
        c.changed.notify_all()
        if c.host_config.get("AutoRemove"):
            threading.Thread(target=self.auto_remove, args=(c,), daemon=True).start()

    # -- the exit ---------------------------------------------------------------------------
    def watch(self, c: Container) -> None:
        """A thread that waits for the container's exit through its monitor."""
        monitor = self.e.runner.monitor(c.id)

        def watch() -> None:
            info = monitor.wait_exit()
            if info is None:
                # the monitor went away without telling: its exit file, if any
                for _ in range(20):
                    info = monitor.read_exit_file()
                    if info:
                        break
                    time.sleep(0.05)
            if info is None:
                # The monitor died (killed?) while the container may still run:
                # nobody holds its stdio or can collect its status, so it is
                # stopped rather than left unsupervised.
                info = {"exit_code": 255, "oom_killed": False,
                        "finished_at": rfc3339_nano_fixed(),
                        "error": "the container's monitor died unexpectedly"}
            self.on_exit(c, info)

        threading.Thread(target=watch, name=f"watch-{c.id[:12]}", daemon=True).start()

    def on_exit(self, c: Container, info: dict[str, Any]) -> None:
        """The program ended (``info``: the monitor's exit JSON): recorded,
        its run's resources released, its restart policy or --rm applied."""
        e = self.e
        with c.lock:
            st = c.state
            if not st.running:
                return
            code = info.get("exit_code", 255)
            oom = bool(info.get("oom_killed"))
            st.exit(code, oom, info.get("error") or "", info.get("finished_at") or rfc3339_nano_fixed())
            e.runner.delete(c.id)
            e.runner.release_cgroup_parents()  # those the runtime made, once empty
            crashpoint("engine.exit.runtime")
            e.network.release(c)
            e.namespaces.release_shm(c)
            crashpoint("engine.exit.network")
            try:
                e.images.unmount_rootfs(c.id)
            except Exception:  # noqa: BLE001 - kept mounted: removal retries
                pass
            c.save()
            crashpoint("engine.exit.saved")
            if oom:
                e.events.emit("container", "oom", c.id, attributes(c))
            e.events.emit("container", "die", c.id, attributes(c, exitCode=str(code)))
            checked = c.health is not None
            health.stop_checks(c, code)
            restart = e.restarts.should_restart(c, code)
            if restart:
                st.schedule_restart()
            if restart or checked:  # (else the record is as saved above)
                c.save()
            crashpoint("engine.exit.policy")
            c.exit_seq += 1
            c.changed.notify_all()
            auto_remove = c.host_config.get("AutoRemove") and not restart
        if restart:
            e.restarts.schedule(c)
        elif auto_remove:
            self.auto_remove(c)

    def auto_remove(self, c: Container) -> None:
        """--rm: the container goes at its exit (or failed start)."""
        try:
            self.remove(c.id, force=True, volumes=True)
        except PyboxError:
            pass

    # -- stop / kill / restart / pause ------------------------------------------------------
    def kill(self, ref: str, signal: str | int | None = None) -> None:
        e = self.e
        c = e.get(ref)
        sig = signal_number(signal) if signal else KILL
        with c.lock:
            if c.state.pending_restart:
                # dockerd: nothing to signal, but the loop ends here (ExitOnNext)
                c.manual_stop = c.exit_on_next = True
                c.state.give_up_restart()
                c.save()
                c.changed.notify_all()
                e.events.emit("container", "kill", c.id, attributes(c, signal=str(sig)))
                return
            c.state.check_running(c.id)
            # docker's rules (moby killWithSignal): any kill counts as a manual
            # stop for unless-stopped when the daemon comes back; the policy
            # is off until the next start when the signal is fatal -- SIGKILL,
            # the container's stop signal, or any signal if it has none set.
            # (Only KILL and TERM used to be: `docker kill -s INT` of a
            # restart=always container brought it back.)
            stop_signal = c.config.get("StopSignal")
            c.manual_stop = True
            if sig == KILL or not stop_signal or sig == signal_number(stop_signal):
                c.exit_on_next = True
            c.save()
            crashpoint("engine.kill.saved")
            seq = c.exit_seq
            self._signal(c, sig)
            crashpoint("engine.kill.signalled")
            e.events.emit("container", "kill", c.id, attributes(c, signal=str(sig)))
            if sig == KILL:
                # dockerd's Kill: a SIGKILL returns once the container is down
                # (10 s at most), so an inspect or a plain rm right after the
                # reply sees it exited -- not "running", not a 409
                deadline = time.monotonic() + KILL_WAIT
                while c.exit_seq == seq and c.state.running and time.monotonic() < deadline:
                    c.changed.wait(max(0.0, deadline - time.monotonic()))

    def _signal(self, c: Container, sig: int) -> None:
        try:
            rc = self.e.runner.container(c.id)
            rc.kill(sig)
            if sig == KILL and c.state.paused:
                try:
                    rc.resume()  # a frozen process cannot act on SIGKILL
                except PyboxError:
                    pass  # not frozen any more (stop resumed it after its signal)
        except InvalidState:
            # the program has just exited and its watcher (waiting for c.lock)
            # has not recorded it yet: nothing left to signal.  dockerd takes a
            # "no such process" from containerd as a done kill too; a 409 here
            # failed `docker kill` of a crash-looping container now and then.
            return
        except PyboxError as err:
            if c.state.running:
                raise Conflict(f"Cannot kill container {c.id}: {err}") from None

    def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.e.get(ref)
        with c.lock:
            if c.state.pending_restart:
                c.manual_stop = True
                c.exit_on_next = True
                c.state.give_up_restart()
                c.save()
                return
            if not c.state.running:
                raise NotModified("container already stopped")
            self.stop_locked(c, timeout)
        self.e.events.emit("container", "stop", c.id, attributes(c))

    def stop_locked(self, c: Container, timeout: int | None) -> None:
        e = self.e
        c.manual_stop = True
        c.exit_on_next = True
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
        sig = signal_number(c.config.get("StopSignal") or "TERM")
        seq = c.exit_seq
        if timeout != 0:
            e.events.emit("container", "kill", c.id, attributes(c, signal=str(sig)))
            self._signal(c, sig)
            crashpoint("engine.stop.signalled")
            if c.state.paused:
                try:
                    e.runner.container(c.id).resume()
                except PyboxError:
                    pass
            deadline = time.monotonic() + (timeout if timeout > 0 else 1e9)
            while c.exit_seq == seq and time.monotonic() < deadline:
                c.changed.wait(max(0.0, deadline - time.monotonic()))
        if c.exit_seq == seq:
            e.events.emit("container", "kill", c.id, attributes(c, signal=str(KILL)))
            self._signal(c, KILL)
            crashpoint("engine.stop.killed")
            deadline = time.monotonic() + 30
            while c.exit_seq == seq and time.monotonic() < deadline:
                c.changed.wait(max(0.0, deadline - time.monotonic()))

    def restart(self, ref: str, timeout: int | None = None) -> None:
        c = self.e.get(ref)
        with c.lock:
            if c.state.running:
                self.stop_locked(c, timeout)
                crashpoint("engine.restart.stopped")
            self.start_locked(c)
            crashpoint("engine.restart.started")
        self.e.events.emit("container", "restart", c.id, attributes(c))

    def pause(self, ref: str) -> None:
        c = self.e.get(ref)
        with c.lock:
            c.state.check_pause(c.id)
            if not self._freeze(c):
                raise Conflict(f"Container {c.id} is not running")
        self.e.events.emit("container", "pause", c.id, attributes(c))

    def _freeze(self, c: Container) -> bool:
        """The runtime's pause of a container recorded as running, ``c.lock``
        held.  -> False if its program has in fact just exited (its watcher,
        waiting for the lock, has not recorded it yet): the runtime's "cannot
        pause container: it is stopped" means not running, not a failure."""
        rc = self.e.runner.container(c.id)
        try:
            rc.pause()
        except InvalidState:
            if rc.status() != "stopped":
                raise
            return False
        crashpoint("engine.pause.frozen")
        c.state.pause()
        c.save()
        return True

    def pause_for_commit(self, c: Container) -> bool:
        """docker commit's pause (on by default): freeze the container while
        its changes are read, if it runs -> whether it was frozen (then
        ``unpause_after_commit``).  Decided under its lock: checking the
        record first and pausing after failed about one commit in eight of a
        container that had just exited ("cannot pause container: it is
        stopped", a 500); such a container is committed as it is, as dockerd
        commits a stopped one."""
        with c.lock:
            st = c.state
            if not st.running or st.paused or c.removed:
                return False
            try:
                if not self._freeze(c):
                    return False
            except Conflict:  # no runtime state left: not running either
                return False
        self.e.events.emit("container", "pause", c.id, attributes(c))
        return True

    def unpause_after_commit(self, c: Container) -> None:
        """Thaw what ``pause_for_commit`` froze, unless that happened meanwhile
        (a kill thaws what it kills; a docker unpause; a removal) or there is
        nothing left to thaw: a program already on its way out when frozen
        ends anyway (the runtime: "cannot resume container: it is stopped")."""
        try:
            self.unpause(c.id)
        except (Conflict, NotFound, InvalidState):
            pass

    def unpause(self, ref: str) -> None:
        c = self.e.get(ref)
        with c.lock:
            c.state.check_unpause(c.id)
            self.e.runner.container(c.id).resume()
            c.state.resume()
            crashpoint("engine.unpause.thawed")
            c.save()
        self.e.events.emit("container", "unpause", c.id, attributes(c))

    # -- remove -------------------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.e.get(ref)
        with c.lock:
            if c.removed:
                raise NotFound(f"No such container: {ref}")
            st = c.state
            st.check_remove(c.id, force)
            if st.pending_restart:
                # docker counts a restarting container as running (SetRestarting)
                c.exit_on_next = True  # the pending restart gives up
                st.give_up_restart()
            if st.running:
                self._signal(c, KILL)
                seq = c.exit_seq
                crashpoint("engine.rm.killed")
                deadline = time.monotonic() + 30
                while c.exit_seq == seq and c.state.running and \
                        time.monotonic() < deadline:
                    c.changed.wait(0.5)
            st.mark_removing()
            c.remove_volumes = bool(volumes)
            c.save()
            crashpoint("engine.rm.marked")
            self.remove_now(c)

    def remove_anonymous_volumes(self, mounts: list[dict[str, Any]]) -> None:
        volumes = self.e.volumes
        for m in mounts:
            if m.get("Type") == "volume" and volumes.is_anonymous(m["Name"]):
                try:
                    volumes.remove(m["Name"], force=True)
                except PyboxError:
                    pass  # in use by another container (--volumes-from): kept

    def remove_now(self, c: Container) -> None:
        """Everything of a container marked removing goes (its lock held)."""
        e = self.e
        e.runner.delete(c.id)
        e.runner.release_cgroup_parents()
        crashpoint("engine.rm.runtime")
        e.network.forget(c)
        e.namespaces.release_shm(c)
        crashpoint("engine.rm.network")
        try:
            e.images.remove_rootfs(c.id)
        except Exception as err:  # noqa: BLE001
            c.state.mark_dead()
            c.save()
            raise Conflict(f"unable to remove filesystem for {c.id}: {err}") from None
        crashpoint("engine.rm.rootfs")
        shutil.rmtree(e.run_dir(c), ignore_errors=True)
        e.store.remove(c)  # first: its volumes are no longer in use
        if c.remove_volumes:  # rm -v: saved with "removing", for recovery
            self.remove_anonymous_volumes(c.mounts or [])
            crashpoint("engine.rm.volumes")
        shutil.rmtree(c.dir, ignore_errors=True)
        crashpoint("engine.rm.dir")
        c.removed = True
        e.forget_execs(c)
        c.changed.notify_all()
        e.events.emit("container", "destroy", c.id, attributes(c))

    # -- wait -------------------------------------------------------------------------------
    def wait(self, ref: str, condition: str = "not-running",
             cancelled: Callable[[], bool] | None = None) -> tuple[int | None, str | None]:
        """Block until the condition holds; -> (StatusCode, error or None).
        ``cancelled`` is polled (the client may go away)."""
        c = self.e.get(ref)
        condition = self._wait_condition(condition)
        with c.lock:
            seq = c.exit_seq
            while True:
                result = self._waited(c, condition, seq)
                if result is not None:
                    return result
                c.changed.wait(0.5)
                if cancelled is not None and cancelled():
                    return None, "cancelled"

    def wait_parked(self, ref: str, condition: str,
                    done: Callable[[int, str | None], None],
                    since: int | None = None) -> Callable[[], None]:
        """wait() without a thread: ``done(code, error)`` is called once, when
        the condition holds -- at once if it does already, else from the
        thread that changes the container's state, holding its lock (so it
        must not block) -- unless the returned ``cancel()`` came first.  The
        API parks `docker wait`s so: thousands of clients waiting on their
        containers cost no thread each.  ``since``: the container's exit
        count when the wait began (``exit_count``), if that was before now."""
        c = self.e.get(ref)
        condition = self._wait_condition(condition)
        with c.lock:
            seq = c.exit_seq if since is None else since

            def check() -> None:  # with c.lock held
                result = self._waited(c, condition, seq)
                if result is None or check not in c.changed.hooks:
                    return
                del c.changed.hooks[check]
                done(*result)

            c.changed.hooks[check] = None
            check()

        def cancel() -> None:
            with c.lock:
                c.changed.hooks.pop(check, None)

        return cancel

    def exit_count(self, ref: str) -> int:
        """How many times the container has exited: where a next-exit wait
        begins.  The API takes it before its 200 tells the docker CLI that the
        wait is in place (the CLI starts the container then): a container
        that exited before the wait was parked was waited for forever."""
        return self.e.get(ref).exit_seq

    @staticmethod
    def _wait_condition(condition: str | None) -> str:
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadRequest(f"invalid condition: {condition!r}")
        return condition

    @staticmethod
    def _waited(c: Container, condition: str, seq: int) -> tuple[int, str | None] | None:
        """With c.lock held: (StatusCode, error) if ``condition`` holds for a
        wait begun at exit ``seq``, else None."""
        st = c.state
        if not c.removed:
            # a restarting container counts as running (dockerd keeps Running
            # set between two runs): a wait begun then returns at its next exit
            if condition == "not-running" and (st.running or (
                    st.restarting and c.exit_seq == seq)):
                return None
            if condition == "next-exit" and c.exit_seq == seq:
                return None
            if condition == "removed":
                return None
        # docker: {"Error": null} after a failed start (the CLI would log the
        # start error twice, as "Error waiting for container: ...")
        error = None if c.start_failed else st.error or None
        return st.exit_code, error

    # -- rename, resize ---------------------------------------------------------------------
    def rename(self, ref: str, new_name: str) -> None:
        e = self.e
        c = e.get(ref)
        new_name = validate_name(new_name)
        with c.lock:
            old = c.name
            e.store.rename(c, new_name)
            c.rename(new_name)
            c.save()
        e.events.emit("container", "rename", c.id, attributes(c, oldName="/" + old))

    def resize(self, ref: str, h: int, w: int) -> None:
        c = self.e.get(ref)
        c.state.check_running(c.id)
        reply = self.e.runner.monitor(c.id).resize(int(h), int(w))
        if reply is None:
            raise Conflict(f"Container {c.id} is not running")
