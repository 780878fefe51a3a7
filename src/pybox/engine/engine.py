"""The engine: containers and their state machine, as docker reports them.

    created -> running <-> paused
    running -> exited            (the program ended, or was stopped/killed)
    exited  -> running           (start again)
    restarting, removing, dead   (restart policies, rm, a failed cleanup)

Each container's record (store.py) is the truth on disk; the live parts are a
monitor process per running container (pybox.monitor), reached through its
socket, and one watcher thread per running container that learns of the exit.
pyboxd serves requests on threads: nothing here forks (forking a threaded
process is unsafe); monitors come from the zygote, execs from the runtime's CLI.
"""

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable

from pybox.crashpoints import crashpoint
from pybox.engine import spec as specmod
from pybox.engine.distribution import Distribution
from pybox.engine.events import EventBus
from pybox.engine.recovery import remove_container_cgroups
from pybox.engine.store import Container, ContainerStore, new_id, validate_name
from pybox.errors import BadRequest, Conflict, InvalidState, NotFound, NotModified, PyboxError, StartError
from pybox.formats import fastjson
from pybox.formats.sizes import ram_in_bytes
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import unixsock
from pybox.monitor.jsonlog import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE
from pybox.oci.state import write_atomic

ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_STOP_TIMEOUT = 10
SIGNALS = None


def parse_size(text):
    """docker's log-opt sizes: 10m, 1g, 500k, 1024, 10mb (go-units RAMInBytes)."""
    try:
        return ram_in_bytes(str(text))
    except ValueError:
        raise BadRequest(f"invalid log size {text!r}") from None


def signal_number(name):
    from pybox.errors import UsageError
    from pybox.runtime.signals import parse_signal

    try:
        return parse_signal(str(name))
    except UsageError:
        raise BadRequest(f"Invalid signal: {name}") from None  # dockerd's words


def exit_code_for_start_error(message) -> int:
    """dockerd's rule for the ExitCode of a container whose start failed."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 128


def discard_unsupported(hc: dict) -> list[str]:
    """dockerd's verifyPlatformContainerResources: a block io weight the kernel
    cannot take is dropped with a warning and the container runs (an error from
    the runtime at start would be a worse surprise)."""
    if not (hc.get("BlkioWeight") or hc.get("BlkioWeightDevice")):
        return []
    from pybox import cgroups

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


class Engine:
    def __init__(self, data_root: str="/var/lib/pybox", run_root: str="/run/pybox", images=None,
                 runtime: str="pybox-runtime", userns_remap=None) -> None:
        self.data_root = data_root
        self.run_root = run_root
        self.runtime_root = os.path.join(run_root, "runtime")
        self.runtime = shutil.which(runtime) or runtime
        os.makedirs(self.runtime_root, mode=0o711, exist_ok=True)
        os.makedirs(os.path.join(run_root, "containers"), mode=0o711, exist_ok=True)
        self.store = ContainerStore(os.path.join(data_root, "containers"))
        self.images = images
        self.events = EventBus()
        self.distribution = Distribution(images, self.events)  # pull, push, login
        from pybox.engine.networking import EngineNetworking

        self.network = EngineNetworking(self)  # networking hooks: engine/networking.py
        from pybox.engine.procview import EngineProcView

        self.procview = EngineProcView(self)  # the /proc view: engine/procview.py
        self.execs = {}
        self.execs_lock = threading.Lock()
        self.zygote = None
        self.stopping = False
        self.started_at = time.time()
        from pybox.engine.volumes import VolumeStore

        self.volumes = VolumeStore(data_root, self._volume_users)
        # pyboxd --userns-remap (pybox.engine.remap.UsernsRemap or None)
        self.remap = userns_remap
        if userns_remap is not None:
            self.volumes.root_owner = userns_remap.root
        self._cgroup_v2 = None
        # set once recover() has rebuilt everything, the network included:
        # restarts it schedules wait for it (see _await_recovery)
        self.recovered = threading.Event()

    # -- daemon life ----------------------------------------------------------
    def start_zygote(self) -> None:
        """Fork the monitor zygote.  Must run before any thread starts."""
        from pybox.monitor import zygote

        path = os.path.join(self.run_root, "zygote.sock")
        self.zygote_pid = zygote.start(path)
        self.zygote = zygote.ZygoteClient(path)
        self.zygote_stopping = False

    def supervise_zygote(self) -> None:
        """Keep a zygote running: a thread waits for the zygote to end and starts
        a new one (a fresh python -IS, so starting it from a thread is safe).
        Without it a zygote killed by an operator or the OOM killer left pyboxd
        unable to start any container until it was restarted.  The thread lives
        as long as pyboxd: the zygote's PDEATHSIG follows the thread that
        started it."""
        import threading

        threading.Thread(target=self._keep_zygote, name="zygote-keeper", daemon=True).start()

    def _keep_zygote(self) -> None:
        import sys
        import time

        from pybox.monitor import zygote

        delay = 0.05
        while True:
            try:
                os.waitpid(self.zygote_pid, 0)
            except ChildProcessError:
                pass
            if self.zygote_stopping:
                return
            sys.stderr.write(f"pyboxd: the monitor zygote (pid {self.zygote_pid}) ended; "
                             "starting a new one\n")
            time.sleep(delay)  # a zygote that dies at once is not restarted in a tight loop
            try:
                self.zygote_pid = zygote.start(self.zygote.path)
                delay = 0.05
            except Exception as e:  # noqa: BLE001 - tried again, more slowly
                sys.stderr.write(f"pyboxd: cannot start the monitor zygote: {e}\n")
                delay = min(delay * 2, 5.0)

    def stop_zygote(self) -> None:
        """pyboxd's exit: end the zygote (running monitors live on) for good."""
        import signal

        self.zygote_stopping = True
        try:
            os.kill(self.zygote_pid, signal.SIGTERM)
            os.waitpid(self.zygote_pid, 0)
        except OSError:
            pass  # the keeper reaped it first

    def recover(self) -> None:
        """Rebuild the engine's view after a (re)start and finish or undo
        whatever a crash interrupted: pybox.engine.recovery (its docstring
        gives the order)."""
        from pybox.engine.recovery import recover

        recover(self)

    def _await_recovery(self) -> None:
        """A restart that recover() started must not run before the network's
        own recovery is through: that tears down what it does not know yet (a
        start racing it failed with "(19, 'No such device')").  Bounded: an
        engine whose recover() is never called does not hang its restarts."""
        self.recovered.wait(timeout=60)

    def _mounts_of(self, ref):
        """Another container's Mounts (--volumes-from); 400 if unknown (a 404
        from create would make the docker CLI try to pull the image)."""
        try:
            other = self.get(ref)
        except NotFound:
            raise BadRequest(f"No such container: {ref}") from None
        return [dict(m) for m in other.record.get("Mounts") or ()]

    def _volume_users(self):
        users = {}
        for c in self.store.all():
            for m in c.record.get("Mounts") or ():
                if m.get("Type") == "volume" and isinstance(m.get("Name"), str):
                    users.setdefault(m["Name"], []).append(c.id)
        return users

    def _restart_on_boot(self, c) -> None:
        self._await_recovery()
        try:
            self.start(c.id)
        except PyboxError:
            pass

    def cgroup_v2(self):
        if self._cgroup_v2 is None:
            from pybox import cgroups

            self._cgroup_v2 = cgroups.detect_layout().mode == "v2"
        return self._cgroup_v2

    # -- paths ----------------------------------------------------------------
    def run_dir(self, c):
        return os.path.join(self.run_root, "containers", c.id)

    def get(self, ref):
        return self.store.get(ref)

    def _attributes(self, c, **extra):
        attrs = {"image": c.record["Config"].get("Image", ""), "name": c.name}
        labels = c.record["Config"].get("Labels")
        if isinstance(labels, dict):  # an odd stored record may hold anything
            attrs.update(labels)
        attrs.update(extra)
        return attrs

    # -- create ---------------------------------------------------------------
    def create(self, body, name=None):
        """POST /containers/create, ``body`` typed by pybox.api.schema.  Returns
        (id, warnings)."""
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON body")
        hc = dict(body.get("HostConfig") or {})
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        # dockerd's order: every check of the request (spec.validate_create), then
        # the image -- a bad request is a 400, not a pull of its image
        checked = specmod.validate_create(config, hc, remapped=self.remap is not None)
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise BadRequest("Config.Image: the image name is required")
        image = self.images.lookup(image_ref)  # NotFound "No such image: X" -> CLI pulls
        warnings = checked + discard_unsupported(hc)
        if (hc.get("Memory") or 0) > 0 and not hc.get("MemorySwap"):
            # dockerd's adaptContainerSettings: the implicit swap limit (twice the
            # memory) is recorded, so inspect shows it and a later `update -m`
            # past it is refused as docker refuses it
            hc["MemorySwap"] = hc["Memory"] * 2
        try:
            self.network.check_create(body, hc)
        except NotFound as e:
            # 400, not 404: a 404 from create makes the docker CLI pull the image
            raise BadRequest(str(e)) from None
        config = specmod.merge_image_config(config, image.get("Config") or {})
        config["Image"] = image_ref
        cid = new_id()
        if not config.get("Hostname"):
            config["Hostname"] = (socket.gethostname() if hc.get("NetworkMode") == "host"
                                  else cid[:12])
        try:
            args = specmod.command_line(config)
        except specmod.SpecError as e:
            raise BadRequest(str(e)) from None
        name = validate_name(name) if name else self._generated_name()
        self.store.reserve(name)
        directory = os.path.join(self.store.root, cid)
        mounts = []
        new_volumes = []
        try:
            from pybox.engine.recovery import CREATE_VOLUMES, RecordingVolumes
            from pybox.engine.volumes import parse_mounts

            # the directory first: a crash from here on leaves it without a
            # record, which recovery rolls back (with the volumes it lists)
            os.makedirs(directory, mode=0o710)
            crashpoint("engine.create.dir")
            mounts = parse_mounts(config, hc, RecordingVolumes(self.volumes, directory),
                                  mounts_of=self._mounts_of, created=new_volumes)
            crashpoint("engine.create.mounts")
            idmap = self._idmap_for(hc)
            if idmap is not None:  # its /etc files are bound from inside its userns
                for d in (self.store.root, directory):
                    os.chmod(d, os.stat(d).st_mode & 0o777 | 0o001)
            self.images.create_rootfs(cid, image["Id"], idmap=idmap)
            crashpoint("engine.create.rootfs")
            record = self._new_record(cid, name, config, hc, image, args, directory, body)
            self.network.on_create(record, body)
            record["Mounts"] = mounts
            c = Container(record, directory)
            self._write_etc_files(c)
            crashpoint("engine.create.etc")
            c.save()
            crashpoint("engine.create.saved")
            try:
                os.unlink(os.path.join(directory, CREATE_VOLUMES))  # the record names them
            except FileNotFoundError:
                pass
            self.store.add(c)
        except BaseException:
            self.store.release_name(name)
            try:
                self.images.remove_rootfs(cid)
            except Exception:  # noqa: BLE001 - rollback is best effort
                pass
            shutil.rmtree(directory, ignore_errors=True)
            self._remove_anonymous_volumes(mounts)
            raise
        for name in new_volumes:  # as dockerd: a volume made by -v/--mount/VOLUME too
            self.events.emit("volume", "create", name, {"driver": "local"})
        self.events.emit("container", "create", cid, self._attributes(c))
        return cid, warnings

    def _idmap_for(self, hc):
        """The user namespace maps of a new container: the daemon's
        --userns-remap unless the container asks for --userns=host."""
        mode = hc.get("UsernsMode") or ""
        if mode not in ("", "host"):
            raise BadRequest(f"invalid USER mode: {mode!r} (only 'host' is supported)")
        if self.remap is None or mode == "host":
            return None
        if hc.get("Privileged"):
            raise BadRequest("privileged mode is incompatible with user namespaces.  You must "
                             "run the container in the host namespace when running privileged "
                             "mode")
        return self.remap.idmap

    def _generated_name(self):
        import secrets

        adjectives = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet",
                      "sharp", "tender", "vivid", "wise")
        nouns = ("turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth",
                 "liskov", "hamilton", "shannon", "dijkstra", "wirth")
        while True:
            name = f"{secrets.choice(adjectives)}_{secrets.choice(nouns)}_{secrets.randbelow(1000)}"
            if name not in self.store.by_name:
                return name

    def _check_host_config(self, hc) -> None:
        """An update's HostConfig (merged over the container's): dockerd's
        resource checks.  A create runs all of spec.validate_create."""
        specmod.validate_resources(hc, update=True)

    def _new_record(self, cid, name, config, hc, image, args, directory, body):
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
            "Image": image["Id"],
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
            "GraphDriver": {"Name": "overlay2", "Data": self.images.rootfs_info(cid)},
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {
                "Bridge": "", "SandboxID": "", "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
                "SandboxKey": "", "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                "Networks": {} if network == "host" and False else {net_name: {
                    "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
                    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                    "MacAddress": "", "DriverOpts": None}},
            },
        }

    def _write_etc_files(self, c) -> None:
        rec = c.record
        hostname = rec["Config"]["Hostname"]
        mode = rec["HostConfig"].get("NetworkMode")
        if mode == "host":
            hostname = socket.gethostname()
        write_atomic(rec["HostnamePath"], hostname + "\n", mode=0o644)
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix",
                 "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
        for extra in rec["HostConfig"].get("ExtraHosts") or ():
            host, _, ip = extra.partition(":")
            hosts.append(f"{ip}\t{host}")
        write_atomic(rec["HostsPath"], "\n".join(hosts) + "\n", mode=0o644)
        try:
            with open("/etc/resolv.conf") as f:
                resolv = f.read()
        except OSError:
            resolv = ""
        write_atomic(rec["ResolvConfPath"], resolv, mode=0o644)

    # -- start ----------------------------------------------------------------
    def start(self, ref):
        c = self.get(ref)
        with c.lock:
            st = c.state
            if st.get("Paused"):
                raise Conflict("cannot start a paused container, try unpause instead")
            if st.get("Running"):
                raise NotModified("container already started")
            if c.removed or st.get("Status") == "removing":
                raise Conflict(f"container {c.id} is marked for removal and cannot be "
                               "started")
            self._start_locked(c)

    def _start_locked(self, c):
        rec = c.record
        rundir = self.run_dir(c)
        self._cleanup_runtime(c)
        crashpoint("engine.start.cleaned")
        os.makedirs(rundir, mode=0o710, exist_ok=True)
        for stale in ("exit.json", "monitor.sock", "monitor.pid"):
            try:
                os.unlink(os.path.join(rundir, stale))
            except FileNotFoundError:
                pass
        rootfs = None
        try:
            rootfs = self.images.mount_rootfs(c.id)
            crashpoint("engine.start.mounted")
            from pybox.engine.volumes import oci_mounts

            volume_mounts = oci_mounts(rec.get("Mounts") or [], self.volumes, rootfs)
            netns = self.network.prepare(c)
            crashpoint("engine.start.network")
            idmap = self.images.rootfs_idmap(c.id)
            shm = self._prepare_shm(c, idmap)
            config = specmod.build(rec, rootfs, cgroup_v2=self.cgroup_v2(), netns=netns,
                                   extra_mounts=self.procview.mounts(c) + volume_mounts
                                   + self._etc_mounts(c, idmap),
                                   namespace_of=self._namespace_of,
                                   init_path=shutil.which("tini-static"), idmap=idmap,
                                   shm_source=shm)
            self.procview.intercept_sysinfo(c, config, rundir)
            write_atomic(os.path.join(rundir, "config.json"), fastjson.dumps(config))
            crashpoint("engine.start.bundle")
            log = rec["HostConfig"].get("LogConfig") or {}
            opts = log.get("Config") or {}
            request = {
                "id": c.id, "bundle": rundir, "runtime_root": self.runtime_root,
                "dir": rundir, "log_path": rec.get("LogPath") or None,
                "log_max_size": parse_size(opts["max-size"]) if opts.get("max-size")
                else DEFAULT_MAX_SIZE,
                "log_max_files": int(opts.get("max-file") or DEFAULT_MAX_FILES),
                "tty": bool(rec["Config"].get("Tty")),
                "open_stdin": bool(rec["Config"].get("OpenStdin")),
                "stdin_once": bool(rec["Config"].get("StdinOnce")),
                "console_size": rec["HostConfig"].get("ConsoleSize") or None,
                "defer_start": True,
                "procview_socket": self.procview.monitor_socket(c),
            }
            report = self.zygote.spawn(request)
            crashpoint("engine.start.spawned")
            if not report.get("ok"):
                raise StartError(report.get("error") or "the monitor failed")
            # attach sessions that were waiting for this start join before the
            # program runs, so they see all of its output
            self._connect_attachers(c)
            reply = self._monitor_call(c, {"op": "start"}, timeout=60.0)
            crashpoint("engine.start.started")
            if reply != "ok":
                msg = reply.get("error") if isinstance(reply, dict) else "start failed"
                raise StartError(msg or "start failed")
        except specmod.SpecError as e:
            self._start_failed(c, rootfs, str(e))
            raise StartError(f"failed to create task for container: {e}") from None
        except StartError as e:
            self._start_failed(c, rootfs, str(e))
            raise StartError("failed to create shim task: OCI runtime create failed: "
                             f"{e}: unknown") from None
        except BaseException as e:
            self._start_failed(c, rootfs, str(e))
            raise
        st = rec["State"]
        st.update({"Status": "running", "Running": True, "Paused": False,
                   "Restarting": False, "OOMKilled": False, "Dead": False,
                   "Pid": report["pid"], "ExitCode": 0, "Error": "",
                   "StartedAt": rfc3339_nano_fixed(), "FinishedAt": ZERO_TIME})
        rec["ManualStop"] = False
        rec["ExitOnNext"] = False
        c.start_failed = False
        c.save()
        crashpoint("engine.start.saved")
        c.changed.notify_all()
        self.events.emit("container", "start", c.id, self._attributes(c))
        self._watch(c)
        self._start_health(c)

    def _start_health(self, c) -> None:
        from pybox.engine.health import HealthMonitor, healthcheck_of

        check = healthcheck_of(c.record["Config"])
        if check is not None:
            c.health = HealthMonitor(self, c, check)
            c.health.start()

    def _namespace_of(self, ref, kind) -> str:
        """/proc/PID/ns/KIND of a running container (--ipc/--pid/--network
        container:ID)."""
        from pybox.linux.constants import NAMESPACE_PROC_NAMES

        try:
            other = self.get(ref)
        except NotFound:
            raise specmod.SpecError(f"No such container: {ref}", errno=2) from None
        pid = other.state.get("Pid")
        if not other.state.get("Running") or not pid:
            raise specmod.SpecError(f"cannot join the {kind} namespace of a non running "
                                    f"container: {ref}", errno=22)
        return f"/proc/{pid}/ns/{NAMESPACE_PROC_NAMES[kind]}"

    # -- /dev/shm shared with other containers (--ipc) -----------------------------
    def _shm_path(self, c):
        return os.path.join(c.dir, "shm")

    def _prepare_shm(self, c, idmap=None):
        """The host directory to bind as the container's /dev/shm, or None for a
        tmpfs of its own.  As docker: an IPC namespace is more than SysV IPC --
        POSIX shared memory lives in /dev/shm -- so a --ipc shareable container
        gets its /dev/shm from a tmpfs on the host (DATA/containers/ID/shm, gone
        at its exit), which --ipc container:ID binds too; --ipc host binds the
        host's /dev/shm.  (Joining the IPC namespace alone left the joiner with an
        empty /dev/shm of its own.)"""
        mode = c.record["HostConfig"].get("IpcMode") or ""
        if mode == "host":
            return "/dev/shm"
        if mode.startswith("container:"):
            try:
                donor = self.get(mode[len("container:"):])
            except NotFound:
                return None  # the namespace lookup reports it
            if donor.state.get("Running") and \
                    (donor.record["HostConfig"].get("IpcMode") or "") != "shareable":
                raise specmod.SpecError(
                    f"non-shareable IPC (hint: use IpcMode:shareable for the donor "
                    f"container {donor.name})", errno=22)
            path = self._shm_path(donor)
            return path if os.path.ismount(path) else None
        if mode != "shareable":
            return None
        from pybox.linux import syscalls

        path = self._shm_path(c)
        self._release_shm(c)
        os.makedirs(path, mode=0o700, exist_ok=True)
        size = c.record["HostConfig"].get("ShmSize") or specmod.DEFAULT_SHM_SIZE
        opts = f"mode=1777,size={size}"
        if idmap:
            opts += f",uid={idmap['uid'][0][1]},gid={idmap['gid'][0][1]}"
        syscalls.real().mount("shm", path, "tmpfs", 0x2 | 0x4 | 0x8, opts)  # nosuid,nodev,noexec
        return path

    def _release_shm(self, c) -> None:
        path = self._shm_path(c)
        if os.path.ismount(path):
            from pybox.linux import syscalls

            try:
                syscalls.real().umount2(path, 2)  # MNT_DETACH: joiners keep theirs
            except OSError:
                pass
        try:
            os.rmdir(path)
        except OSError:
            pass

    def _etc_mounts(self, c, idmap=None):
        rec = c.record
        out = []
        for dest, path in (("/etc/resolv.conf", rec["ResolvConfPath"]),
                           ("/etc/hostname", rec["HostnamePath"]),
                           ("/etc/hosts", rec["HostsPath"])):
            if idmap:  # as docker: the remapped root may edit its own copies
                os.chown(path, idmap["uid"][0][1], idmap["gid"][0][1])
            out.append({"destination": dest, "type": "bind", "source": path,
                        "options": ["rbind", "rprivate"]})
        return out

    def _start_failed(self, c, rootfs, message) -> None:
        self._cleanup_runtime(c)
        remove_container_cgroups(c.id)  # a runtime killed mid-create left them unrecorded
        crashpoint("engine.start_failed.cleaned")
        self.network.release(c)
        self._release_shm(c)
        if rootfs is not None:
            try:
                self.images.unmount_rootfs(c.id)
            except Exception:  # noqa: BLE001
                pass
        st = c.record["State"]
        st.update({"Status": "created" if st.get("StartedAt") == ZERO_TIME else "exited",
                   "Running": False, "Pid": 0, "Error": message,
                   "ExitCode": exit_code_for_start_error(message),
                   "FinishedAt": rfc3339_nano_fixed()})
        c.start_failed = True  # the start's reply said why; a wait does not repeat it
        c.save()
        crashpoint("engine.start_failed.saved")
        for a in list(c.attachers):
            a.container_gone()
        c.exit_seq += 1
        c.changed.notify_all()
        if c.record["HostConfig"].get("AutoRemove"):
            threading.Thread(target=self._auto_remove, args=(c,), daemon=True).start()

    def _cleanup_runtime(self, c) -> None:
        """Remove the runtime's container (stopped, or left by a crash)."""
        from pybox.runtime.container import Container as RuntimeContainer

        try:
            rc = RuntimeContainer.load(self.runtime_root, c.id)
        except PyboxError:
            return
        try:
            rc.delete(force=True)
        except PyboxError:
            pass

    # -- the monitor ------------------------------------------------------------
    def _monitor_socket(self, c, timeout=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if timeout is not None:
            s.settimeout(timeout)
        try:
            unixsock.call(s.connect, os.path.join(self.run_dir(c), "monitor.sock"))
        except OSError:
            s.close()
            return None
        return s

    def _monitor_call(self, c, request, timeout: float=10.0):
        """One request/one line answer; None if the monitor is gone."""
        s = self._monitor_socket(c, timeout)
        if s is None:
            return None
        try:
            s.sendall(fastjson.dumps(request).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
        except OSError:
            return None
        finally:
            s.close()
        line = buf.split(b"\n", 1)[0]
        if line == b"ok":
            return "ok"
        try:
            return fastjson.loads(line)
        except ValueError:
            return line.decode(errors="replace")

    def _watch(self, c) -> None:
        """A thread that waits for the container's exit through its monitor."""
        def watch() -> None:
            info = None
            s = self._monitor_socket(c)
            if s is not None:
                try:
                    s.sendall(b'{"op":"wait"}\n')
                    buf = b""
                    while b"\n" not in buf:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\n" in buf:
                        info = fastjson.loads(buf.split(b"\n", 1)[0])
                except (OSError, ValueError):
                    info = None
                finally:
                    s.close()
            if info is None:
                # the monitor went away without telling: its exit file, if any
                for _ in range(20):
                    info = self._read_exit_file(c)
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
            self._on_exit(c, info)

        threading.Thread(target=watch, name=f"watch-{c.id[:12]}", daemon=True).start()

    def _read_exit_file(self, c):
        try:
            return fastjson.load_file(os.path.join(self.run_dir(c), "exit.json"))
        except (OSError, ValueError):
            return None

    def _on_exit(self, c, info) -> None:
        with c.lock:
            st = c.record["State"]
            if not st.get("Running"):
                return
            code = info.get("exit_code", 255)
            oom = bool(info.get("oom_killed"))
            st.update({"Status": "exited", "Running": False, "Paused": False, "Pid": 0,
                       "ExitCode": code, "OOMKilled": oom, "Error": info.get("error") or "",
                       "FinishedAt": info.get("finished_at") or rfc3339_nano_fixed()})
            self._cleanup_runtime(c)
            crashpoint("engine.exit.runtime")
            self.network.release(c)
            self._release_shm(c)
            crashpoint("engine.exit.network")
            try:
                self.images.unmount_rootfs(c.id)
            except Exception:  # noqa: BLE001 - kept mounted: removal retries
                pass
            c.save()
            crashpoint("engine.exit.saved")
            if oom:
                self.events.emit("container", "oom", c.id, self._attributes(c))
            self.events.emit("container", "die", c.id,
                             self._attributes(c, exitCode=str(code)))
            health = getattr(c, "health", None)
            if health is not None:
                health.cancel()
                c.health = None
                if st.get("Health"):
                    st["Health"]["Status"] = "unhealthy" if code else st["Health"]["Status"]
            restart = self._should_restart(c, code)
            if restart:
                st["Restarting"] = True
                st["Status"] = "restarting"
            c.save()
            crashpoint("engine.exit.policy")
            c.exit_seq += 1
            c.changed.notify_all()
            auto_remove = c.record["HostConfig"].get("AutoRemove") and not restart
        if restart:
            self._schedule_restart(c)
        elif auto_remove:
            self._auto_remove(c)

    def release_cgroup_parent(self) -> None:
        """pyboxd stopping: the containers' shared parent cgroup goes from each
        hierarchy when nothing is left in it (running containers, or another
        pyboxd's, keep it: rmdir of a cgroup with children fails); the runtime
        removes only the parents it made itself, so the last of several
        concurrent containers to leave never did."""
        from pybox.cgroups import detect_layout
        from pybox.engine.spec import CGROUP_PARENT

        layout = detect_layout()
        for h in layout.v1_hierarchies() + ([layout.unified] if layout.unified else []):
            try:
                os.rmdir(h.directory(CGROUP_PARENT))
            except OSError:
                pass

    # -- restart policies --------------------------------------------------------
    def _should_restart(self, c, code):
        policy = c.record["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or c.removed or c.record.get("ExitOnNext") or self.stopping:
            return False
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return code != 0 and (limit == 0 or c.record.get("RestartCount", 0) < limit)
        return name in ("always", "unless-stopped")

    def _schedule_restart(self, c) -> None:
        """docker's back-off: 100 ms doubling to 1 minute, back to 100 ms once a
        run lasted 10 seconds."""
        from pybox.formats.times import parse_rfc3339

        st = c.record["State"]
        ran = parse_rfc3339(st.get("FinishedAt")) - parse_rfc3339(st.get("StartedAt"))
        delay = getattr(c, "restart_delay", 0.0)
        delay = 0.1 if ran >= 10 or not delay else min(delay * 2, 60.0)
        c.restart_delay = delay

        def restart() -> None:
            time.sleep(delay)
            self._await_recovery()
            with c.lock:
                if c.removed or not c.state.get("Restarting") or c.record.get("ExitOnNext"):
                    return
                c.record["RestartCount"] = c.record.get("RestartCount", 0) + 1
                crashpoint("engine.restart_policy.counted")
                try:
                    self._start_locked(c)
                except PyboxError:
                    st["Restarting"] = False
                    st["Status"] = "exited"
                    c.save()
                    if self._should_restart(c, st.get("ExitCode", 1) or 1):
                        st["Restarting"] = True
                        st["Status"] = "restarting"
                        c.save()
                        threading.Thread(target=self._schedule_restart, args=(c,),
                                         daemon=True).start()
                    return
            self.events.emit("container", "restart", c.id, self._attributes(c))

        threading.Thread(target=restart, name=f"restart-{c.id[:12]}", daemon=True).start()

    def _auto_remove(self, c) -> None:
        try:
            self.remove(c.id, force=True, volumes=True)
        except NotFound:
            pass
        except PyboxError:
            pass

    # -- stop / kill / restart / pause -----------------------------------------
    def _runtime(self, c):
        from pybox.runtime.container import Container as RuntimeContainer

        try:
            return RuntimeContainer.load(self.runtime_root, c.id)
        except PyboxError:
            raise Conflict(f"Container {c.id} is not running") from None

    def kill(self, ref, signal=None):
        c = self.get(ref)
        sig = signal_number(signal) if signal else 9
        with c.lock:
            if c.state.get("Restarting") and not c.state.get("Running"):
                # dockerd: nothing to signal, but the loop ends here (ExitOnNext)
                c.record["ManualStop"] = c.record["ExitOnNext"] = True
                c.state["Restarting"] = False
                c.state["Status"] = "exited"
                c.save()
                c.changed.notify_all()
                self.events.emit("container", "kill", c.id,
                                 self._attributes(c, signal=str(sig)))
                return
            if not c.state.get("Running"):
                raise Conflict(f"Container {c.id} is not running")
            # docker's rules (moby killWithSignal): any kill counts as a manual
            # stop for unless-stopped when the daemon comes back; the policy
            # is off until the next start when the signal is fatal -- SIGKILL,
            # the container's stop signal, or any signal if it has none set.
            # (Only KILL and TERM used to be: `docker kill -s INT` of a
            # restart=always container brought it back.)
            stop_signal = c.record["Config"].get("StopSignal")
            c.record["ManualStop"] = True
            if sig == 9 or not stop_signal or sig == signal_number(stop_signal):
                c.record["ExitOnNext"] = True
            c.save()
            crashpoint("engine.kill.saved")
            self._signal(c, sig)
            crashpoint("engine.kill.signalled")
        self.events.emit("container", "kill", c.id, self._attributes(c, signal=str(sig)))

    def _signal(self, c, sig):
        try:
            rc = self._runtime(c)
            rc.kill(sig)
            if sig == 9 and c.state.get("Paused"):
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
        except PyboxError as e:
            if c.state.get("Running"):
                raise Conflict(f"Cannot kill container {c.id}: {e}") from None

    def stop(self, ref, timeout=None):
        c = self.get(ref)
        with c.lock:
            if c.state.get("Restarting") and not c.state.get("Running"):
                c.record["ManualStop"] = True
                c.record["ExitOnNext"] = True
                c.state["Restarting"] = False
                c.state["Status"] = "exited"
                c.save()
                return
            if not c.state.get("Running"):
                raise NotModified("container already stopped")
            self._stop_locked(c, timeout)
        self.events.emit("container", "stop", c.id, self._attributes(c))

    def _stop_locked(self, c, timeout) -> None:
        c.record["ManualStop"] = True
        c.record["ExitOnNext"] = True
        config = c.record["Config"]
        if timeout is None:
            timeout = config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
        sig = signal_number(config.get("StopSignal") or "TERM")
        seq = c.exit_seq
        if timeout != 0:
            self.events.emit("container", "kill", c.id, self._attributes(c, signal=str(sig)))
            self._signal(c, sig)
            crashpoint("engine.stop.signalled")
            if c.state.get("Paused"):
                try:
                    self._runtime(c).resume()
                except PyboxError:
                    pass
            deadline = time.monotonic() + (timeout if timeout > 0 else 1e9)
            while c.exit_seq == seq and time.monotonic() < deadline:
                c.changed.wait(max(0.0, deadline - time.monotonic()))
        if c.exit_seq == seq:
            self.events.emit("container", "kill", c.id, self._attributes(c, signal="9"))
            self._signal(c, 9)
            crashpoint("engine.stop.killed")
            deadline = time.monotonic() + 30
            while c.exit_seq == seq and time.monotonic() < deadline:
                c.changed.wait(max(0.0, deadline - time.monotonic()))

    def restart(self, ref, timeout=None) -> None:
        c = self.get(ref)
        with c.lock:
            if c.state.get("Running"):
                self._stop_locked(c, timeout)
                crashpoint("engine.restart.stopped")
            self._start_locked(c)
            crashpoint("engine.restart.started")
        self.events.emit("container", "restart", c.id, self._attributes(c))

    def pause(self, ref):
        c = self.get(ref)
        with c.lock:
            st = c.state
            if not st.get("Running"):
                raise Conflict(f"Container {c.id} is not running")
            if st.get("Paused"):
                raise Conflict(f"Container {c.id} is already paused")
            if not self._freeze(c):
                raise Conflict(f"Container {c.id} is not running")
        self.events.emit("container", "pause", c.id, self._attributes(c))

    def _freeze(self, c) -> bool:
        """The runtime's pause of a container recorded as running, ``c.lock``
        held.  -> False if its program has in fact just exited (its watcher,
        waiting for the lock, has not recorded it yet): the runtime's "cannot
        pause container: it is stopped" means not running, not a failure."""
        rc = self._runtime(c)
        try:
            rc.pause()
        except InvalidState:
            if rc.status() != "stopped":
                raise
            return False
        crashpoint("engine.pause.frozen")
        c.state["Paused"] = True
        c.state["Status"] = "paused"
        c.save()
        return True

    def pause_for_commit(self, c) -> bool:
        """docker commit's pause (on by default): freeze the container while
        its changes are read, if it runs -> whether it was frozen (then
        ``unpause_after_commit``).  Decided under its lock: checking the
        record first and pausing after failed about one commit in eight of a
        container that had just exited ("cannot pause container: it is
        stopped", a 500); such a container is committed as it is, as dockerd
        commits a stopped one."""
        with c.lock:
            st = c.state
            if not st.get("Running") or st.get("Paused") or c.removed:
                return False
            try:
                if not self._freeze(c):
                    return False
            except Conflict:  # no runtime state left: not running either
                return False
        self.events.emit("container", "pause", c.id, self._attributes(c))
        return True

    def unpause_after_commit(self, c) -> None:
        """Thaw what ``pause_for_commit`` froze, unless that happened meanwhile
        (a kill thaws what it kills; a docker unpause; a removal) or there is
        nothing left to thaw: a program already on its way out when frozen
        ends anyway (the runtime: "cannot resume container: it is stopped")."""
        try:
            self.unpause(c.id)
        except (Conflict, NotFound, InvalidState):
            pass

    def unpause(self, ref):
        c = self.get(ref)
        with c.lock:
            st = c.state
            if not st.get("Paused"):
                raise Conflict(f"Container {c.id} is not paused")
            self._runtime(c).resume()
            st["Paused"] = False
            crashpoint("engine.unpause.thawed")
            st["Status"] = "running"
            c.save()
        self.events.emit("container", "unpause", c.id, self._attributes(c))

    # -- remove -----------------------------------------------------------------
    def remove(self, ref, force: bool=False, volumes: bool=False):
        c = self.get(ref)
        with c.lock:
            if c.removed:
                raise NotFound(f"No such container: {ref}")
            st = c.state
            if st.get("Restarting") and not st.get("Running"):
                # docker counts a restarting container as running (SetRestarting)
                if not force:
                    raise Conflict(f"You cannot remove a restarting container {c.id}. Stop "
                                   "the container before attempting removal or force "
                                   "remove")
                c.record["ExitOnNext"] = True  # the pending restart gives up
                st["Restarting"] = False
            if st.get("Running"):
                if not force:
                    state = "paused" if st.get("Paused") else "running"
                    raise Conflict(f"You cannot remove a {state} container {c.id}. Stop the "
                                   "container before attempting removal or force remove")
                self._signal(c, 9)
                seq = c.exit_seq
                crashpoint("engine.rm.killed")
                deadline = time.monotonic() + 30
                while c.exit_seq == seq and c.state.get("Running") and \
                        time.monotonic() < deadline:
                    c.changed.wait(0.5)
            st["Status"] = "removing"
            c.record["RemoveVolumes"] = bool(volumes)
            c.save()
            crashpoint("engine.rm.marked")
            self._remove_now(c)

    def _remove_anonymous_volumes(self, mounts) -> None:
        for m in mounts:
            if m.get("Type") == "volume" and self.volumes.is_anonymous(m["Name"]):
                try:
                    self.volumes.remove(m["Name"], force=True)
                except PyboxError:
                    pass  # in use by another container (--volumes-from): kept

    def _remove_now(self, c):
        self._cleanup_runtime(c)
        crashpoint("engine.rm.runtime")
        self.network.forget(c)
        self._release_shm(c)
        crashpoint("engine.rm.network")
        try:
            self.images.remove_rootfs(c.id)
        except Exception as e:  # noqa: BLE001
            c.record["State"]["Status"] = "dead"
            c.record["State"]["Dead"] = True
            c.save()
            raise Conflict(f"unable to remove filesystem for {c.id}: {e}") from None
        crashpoint("engine.rm.rootfs")
        shutil.rmtree(self.run_dir(c), ignore_errors=True)
        self.store.remove(c)  # first: its volumes are no longer in use
        if c.record.get("RemoveVolumes"):  # rm -v: saved with "removing", for recovery
            self._remove_anonymous_volumes(c.record.get("Mounts") or [])
            crashpoint("engine.rm.volumes")
        shutil.rmtree(c.dir, ignore_errors=True)
        crashpoint("engine.rm.dir")
        c.removed = True
        with self.execs_lock:
            for eid in [e for e, x in self.execs.items() if x.container is c]:
                del self.execs[eid]
        c.changed.notify_all()
        self.events.emit("container", "destroy", c.id, self._attributes(c))

    # -- wait -------------------------------------------------------------------
    def wait(self, ref, condition: str="not-running", cancelled=None):
        """Block until the condition holds; -> (StatusCode, error or None).
        ``cancelled`` is polled (the client may go away)."""
        c = self.get(ref)
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
                    done: Callable[[int, str | None], None]) -> Callable[[], None]:
        """wait() without a thread: ``done(code, error)`` is called once, when
        the condition holds -- at once if it does already, else from the
        thread that changes the container's state, holding its lock (so it
        must not block) -- unless the returned ``cancel()`` came first.  The
        API parks `docker wait`s so: thousands of clients waiting on their
        containers cost no thread each."""
        c = self.get(ref)
        condition = self._wait_condition(condition)
        with c.lock:
            seq = c.exit_seq

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

    @staticmethod
    def _wait_condition(condition: str | None) -> str:
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadRequest(f"invalid condition: {condition!r}")
        return condition

    @staticmethod
    def _waited(c, condition: str, seq: int) -> tuple[int, str | None] | None:
        """With c.lock held: (StatusCode, error) if ``condition`` holds for a
        wait begun at exit ``seq``, else None."""
        if not c.removed:
            # a restarting container counts as running (dockerd keeps Running
            # set between two runs): a wait begun then returns at its next exit
            if condition == "not-running" and (c.state.get("Running") or (
                    c.state.get("Restarting") and c.exit_seq == seq)):
                return None
            if condition == "next-exit" and c.exit_seq == seq:
                return None
            if condition == "removed":
                return None
        st = c.state
        # docker: {"Error": null} after a failed start (the CLI would log the
        # start error twice, as "Error waiting for container: ...")
        error = None if getattr(c, "start_failed", False) else st.get("Error") or None
        return st.get("ExitCode", 0), error

    # -- inspect / list -----------------------------------------------------------
    def inspect(self, ref, size: bool=False):
        c = self.get(ref)
        with c.lock:
            out = fastjson.loads(fastjson.dumps(c.record))
        if out["State"].get("Restarting"):
            out["State"]["Running"] = True  # as dockerd reports a restarting container
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.images.rootfs_size(c.id)
        return out

    def list(self, all_: bool=False, limit=-1, size: bool=False, filters=None):
        if limit is not None and limit > 0:
            all_ = True  # docker: ps -n N / -l list the newest, whatever their state
        items = []
        # newest first: Created is RFC 3339 with 9 fraction digits, sortable as text
        for c in sorted(self.store.all(), key=lambda c: str(c.record.get("Created")),
                        reverse=True):
            rec = c.record
            st = rec["State"]
            # docker ps lists restarting containers too (dockerd keeps them
            # "running" between two runs): a crash loop is what one looks for
            if not all_ and not self._listed_running(st) and not filters:
                continue
            if filters and not self._filter_match(c, filters, all_):
                continue
            items.append(self._summary(c, size))
        if limit is not None and limit > 0:
            items = items[:limit]
        return items

    def _filter_match(self, c, filters, all_) -> bool:
        rec = c.record
        st = rec["State"]
        if not all_ and not self._listed_running(st) and "status" not in filters and \
                "exited" not in filters:
            return False
        for key, values in filters.items():
            values = list(values)
            if key == "name" and not any(v.lstrip("/") in c.name for v in values):
                return False
            if key == "id" and not any(c.id.startswith(v) for v in values):
                return False
            if key == "status" and self._status(st) not in values:
                return False
            if key == "exited" and (st.get("Running") or
                                    str(st.get("ExitCode")) not in values):
                return False
            if key == "label":
                labels = rec["Config"].get("Labels")
                labels = labels if isinstance(labels, dict) else {}
                for v in values:
                    k, _, val = v.partition("=")
                    if k not in labels or (val and labels[k] != val):
                        return False
            if key == "ancestor" and rec["Config"].get("Image") not in values and \
                    rec.get("Image") not in values:
                return False
        return True

    @staticmethod
    def _listed_running(st):
        return bool(st.get("Running") or st.get("Restarting"))

    @staticmethod
    def _status(st):
        if st.get("Status") == "removing":
            return "removing"
        if st.get("Paused"):
            return "paused"
        if st.get("Restarting"):
            return "restarting"
        if st.get("Running"):
            return "running"
        if st.get("Dead"):
            return "dead"
        return st.get("Status") or "created"

    def _summary(self, c, size):
        import calendar
        import shlex

        rec = c.record
        st = rec["State"]
        created = rec["Created"]
        try:
            created_unix = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
        except (ValueError, TypeError):
            created_unix = 0
        try:  # a record however odd is listed (store.repair; the API renders the types)
            status = human_status(st)
        except (ValueError, TypeError, AttributeError, OverflowError):
            status = ""
        out = {
            "Id": c.id,
            "Names": ["/" + c.name],
            "Image": rec["Config"].get("Image", ""),
            "ImageID": rec.get("Image", ""),
            "Command": " ".join(shlex.quote(str(a)) for a in [rec.get("Path", "")]
                                + list(rec.get("Args") or ())),
            "Created": created_unix,
            "Ports": self.network.ps_ports(c),
            "Labels": rec["Config"].get("Labels") or {},
            "State": self._status(st),
            "Status": status,
            "HostConfig": {"NetworkMode": rec["HostConfig"].get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": rec["NetworkSettings"].get("Networks") or {}},
            "Mounts": rec.get("Mounts") or [],
        }
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.images.rootfs_size(c.id)
        return out

    # -- rename -------------------------------------------------------------------
    def rename(self, ref, new_name) -> None:
        c = self.get(ref)
        new_name = validate_name(new_name)
        with c.lock:
            old = c.name
            self.store.rename(c, new_name)
            c.record["Name"] = "/" + new_name
            c.save()
        self.events.emit("container", "rename", c.id,
                         self._attributes(c, oldName="/" + old))

    # -- resize ---------------------------------------------------------------------
    def resize(self, ref, h, w):
        c = self.get(ref)
        if not c.state.get("Running"):
            raise Conflict(f"Container {c.id} is not running")
        reply = self._monitor_call(c, {"op": "resize", "h": int(h), "w": int(w)})
        if reply is None:
            raise Conflict(f"Container {c.id} is not running")

    # -- attach ---------------------------------------------------------------------
    def attach(self, ref, client, *, stdin, stdout, stderr, logs: bool=False, detach_keys=None) -> None:
        """Serve an attach session on ``client`` (the hijacked socket, or a callable
        that hijacks and returns it: called once the session is registered) until
        the container exits or the client detaches.  Works on a created or stopped
        container too: the session joins at the next start (docker start -a
        attaches first)."""
        from pybox.engine.attach import AttachSession

        c = self.get(ref)
        deferred = client if callable(client) else None
        session = AttachSession(self, c, None if deferred else client, stdin=stdin,
                                stdout=stdout, stderr=stderr,
                                tty=bool(c.record["Config"].get("Tty")),
                                stdin_once=bool(c.record["Config"].get("StdinOnce")),
                                detach_keys=detach_keys)
        self.events.emit("container", "attach", c.id, self._attributes(c))
        session.run(open_client=deferred,
                    replay=bool(logs and c.record.get("LogPath")))

    def _connect_attachers(self, c) -> None:
        for a in list(c.attachers):
            a.container_started()

    # -- exec -----------------------------------------------------------------------
    def exec_create(self, ref, body):
        from pybox.engine.execs import ExecSession

        c = self.get(ref)
        if not c.state.get("Running"):
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not body.get("Cmd"):
            raise BadRequest("No exec command specified")
        if body.get("User"):  # as dockerd: an unknown user is refused now, not at start
            try:
                root = fastjson.load_file(os.path.join(self.run_dir(c), "config.json"))
                specmod._resolve_user(root["root"]["path"], body["User"])
            except specmod.SpecError as e:
                raise BadRequest(str(e)) from None
            except (OSError, ValueError, KeyError, TypeError):
                pass  # not readable now: the start reports it
        e = ExecSession(self, c, body)
        with self.execs_lock:
            self.execs[e.id] = e
        with c.lock:
            ids = c.record.get("ExecIDs") or []
            ids.append(e.id)
            c.record["ExecIDs"] = ids
        self.events.emit("container", "exec_create: " + " ".join(body["Cmd"]), c.id,
                         self._attributes(c, execID=e.id))
        return e.id

    def get_exec(self, eid):
        with self.execs_lock:
            e = self.execs.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    # -- logs -------------------------------------------------------------------------
    def logs(self, ref, *, stdout: bool=True, stderr: bool=True, follow: bool=False, since: int=0, until: int=0,
             tail: str="all", timestamps: bool=False, cancelled=None):
        """Yield (stream, bytes) log entries; with ``follow``, keep going until the
        container stops (after its last output) or ``cancelled()``."""
        from pybox.engine.logs import read_logs

        c = self.get(ref)
        if not c.record.get("LogPath"):
            raise BadRequest('configured logging driver does not support reading')
        yield from read_logs(self, c, stdout=stdout, stderr=stderr, follow=follow,
                             since=since, until=until, tail=tail, timestamps=timestamps,
                             cancelled=cancelled)


def human_status(st):
    """docker's ps STATUS column: "Up 7 seconds", "Exited (137) 2 minutes ago"."""
    from pybox.formats.durations import human_duration
    from pybox.formats.times import parse_rfc3339

    if st.get("Restarting"):
        finished = parse_rfc3339(st.get("FinishedAt"))
        return (f"Restarting ({st.get('ExitCode', 0)}) "
                f"{human_duration(time.time() - finished)} ago")
    if st.get("Running"):
        started = parse_rfc3339(st.get("StartedAt"))
        text = "Up " + human_duration(time.time() - started)
        if st.get("Paused"):
            text += " (Paused)"
        health = (st.get("Health") or {}).get("Status")
        if health == "starting":
            text += " (health: starting)"
        elif health in ("healthy", "unhealthy"):
            text += f" ({health})"
        return text
    if st.get("Status") == "removing":
        return "Removal In Progress"
    if st.get("Dead"):
        return "Dead"
    if st.get("StartedAt", ZERO_TIME) == ZERO_TIME:
        return "Created"
    finished = parse_rfc3339(st.get("FinishedAt"))
    return f"Exited ({st.get('ExitCode', 0)}) {human_duration(time.time() - finished)} ago"
