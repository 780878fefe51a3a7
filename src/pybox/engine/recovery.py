"""Recovery: what a (re)started pyboxd does before it serves a request, so that
whatever a crash interrupted -- wherever it struck: create, start, stop, kill,
rm, a restart policy, exec, commit, load, import, pull, network connect or
disconnect -- is finished or undone in this one start, and every container is
in a truthful state.  The truth after a crash is on disk (the records) and in
the kernel (processes, mounts, cgroups, namespaces, links, nftables); the
monitors, which outlive pyboxd, are asked what they hold.  Nothing here may
stop pyboxd from starting: a failure to recover one object is logged and that
object marked (a container: Dead, as dockerd marks one it could not clean up).

The order, and why it is this order:

1. Temporary files.  ``NAME.tmp-PID[.TID]`` files (oci.state.write_atomic's)
   whose writer is gone -- its pid dead, or reused by a process started after
   the file was written -- anywhere pybox keeps state: the data root
   (container records, image records and tags, network records, volumes) and
   the run root (bundles, exit files, monitor pid files, sandboxes, the
   runtime's state dirs).  First, so nothing later mistakes one for data.
2. The image store: what Images.open already collected (ingest leftovers,
   half-unpacked layers, blobs and layers nothing references), plus layers
   whose short link (l/SHORT) a crash did not let be made: a rootfs mount
   names its lower layers through them.
3. Volumes: ``NAME.creating`` (a create that did not finish: removed) and
   ``NAME.removing`` (a removal that did not: finished).
4. Container directories without a valid record: a create that never
   finished.  Rolled back: its rootfs (snapshot), its runtime container if
   any, its run dir, the anonymous volumes it had made (listed in its
   ``create.volumes`` before each was made), the directory.
5. Every record, reconciled with its monitor and the runtime (in parallel,
   each bounded in time):
   a. ``removing``: the removal is finished (the anonymous volumes too when
      it was ``rm -v``).
   b. a monitor answers and its container was started: Running, adopted (its
      exit watched, its health checked), whatever the record said -- a crash
      between the start and the record's save left "Created" while it ran;
      Paused as the runtime's cgroup says.
   c. a monitor answers but never started its container (the start's caller
      died between the runtime's create and start): as dockerd treats a
      task created but never started, the start is rolled back -- the
      monitor is told to abort (its creator deletes the runtime's
      container), the record keeps its state from before the start (Created,
      or Exited with its last code), and a --rm container goes.
   d. no monitor, the record said Running: Exited, with the code and OOM flag
      from exit.json if the monitor wrote one, else 255 with an error; its
      restart policy and --rm apply as for any exit.  Whatever the runtime
      still has (an init whose monitor was killed: nobody holds its stdio)
      is deleted: processes killed, cgroup removed.
   e. not running: the runtime's container (a half-made create, a stopped
      one never deleted) deleted, the rootfs unmounted, /dev/shm released,
      networking released, the run dir removed.
   f. a record whose rootfs is gone: Dead (rm still works).
   A pending restart (Restarting) is resumed in step 8.
6. Objects no record owns: runtime state dirs (deleted with their processes
   and cgroups), run dirs (their monitors' containers killed first),
   snapshot dirs (unmounted, deleted), exec leftovers.
7. Networking (NetworkManager.recover): sandboxes of containers not running
   torn down, the running ones' re-adopted (port reservations, nft port
   elements, networks active again, DNS); IPAM leases no sandbox holds freed;
   namespaces, veths, bridges and nft rules without an owner removed -- only
   links pybox made (its veths, bridges it created: ``bridge_created`` in the
   network record); a user's bridge an idle network used gets back what
   pybox changed on it (``adopted``: its route_localnet, the gateway address)
   and stays.  The records of running containers are then made to say what the sandbox has
   (a connect or disconnect cut between the kernel and the record).
8. Restart policies: ``always`` and ``unless-stopped`` (not stopped by hand)
   containers are started, and so is one whose restart was pending; these
   wait for step 7 (Engine.await_recovery).

How to crash pybox on purpose (tests/crash, docs/architecture.md "Crash
safety"): pybox.crashpoints.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pybox.crashpoints import crashpoint
from pybox.engine import health
from pybox.engine.restart import comes_back_with_daemon
from pybox.engine.store import Container
from pybox.engine.volumes import created_volumes
from pybox.errors import PyboxError
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import proc, syscalls
from pybox.linux.fstree import remove_tree  # iterative: containers write deep trees

if TYPE_CHECKING:
    from pybox.engine.engine import Engine
    from pybox.runtime.container import Container as RuntimeContainer

# a write_atomic temp file: NAME.tmp-PID or NAME.tmp-PID.TID
TEMP_RE = re.compile(r"\.tmp-(\d+)(?:\.\d+)?$")
# directories the temp-file sweep never enters: file trees of images,
# containers and volumes (theirs, not pybox's state)
NOT_STATE = frozenset(("diff", "upper", "merged", "work", "_data", "blobs", "rootfs",
                       "shm", "ingest"))
MONITOR_TIMEOUT = 15.0  # a monitor still in the runtime's create answers late
WORKERS = 8


def log(message: str) -> None:
    """pyboxd's log is its stderr."""
    try:
        sys.stderr.write(f"pyboxd: recovery: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _pid_gone(pid: int, written: float) -> bool:
    """Is the writer of a temp file written at ``written`` (epoch) gone?  A
    live pid started after the write is a reused one."""
    if pid == os.getpid():
        return False
    ticks = proc.start_time(pid)
    if ticks is None:
        return True
    try:
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        started = btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return False
    return started > written + 1  # (btime has a one-second resolution)


def remove_stale_temp(root: str, depth: int = 4) -> list[str]:
    """Remove write_atomic temp files of dead writers under ``root`` (not
    entering file trees that are not pybox's state, nor other filesystems);
    -> the paths removed."""
    removed: list[str] = []

    def walk(path: str, level: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if level < depth and e.name not in NOT_STATE and \
                            not os.path.ismount(e.path):
                        walk(e.path, level + 1)
                    continue
                m = TEMP_RE.search(e.name)
                if m and _pid_gone(int(m.group(1)), e.stat(follow_symlinks=False).st_mtime):
                    os.unlink(e.path)
                    removed.append(e.path)
            except OSError:
                continue

    walk(root, 0)
    return removed


# -- the recovery -------------------------------------------------------------------------
class Recovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.boot_starts: list[Container] = []
        self.lock = threading.Lock()

    # 1 ---------------------------------------------------------------------------------------
    def temp_files(self) -> None:
        e = self.engine
        for root in (e.data_root, e.run_root):
            for path in remove_stale_temp(root):
                log(f"removed {path} (a write cut short by a crash)")

    # 2 ---------------------------------------------------------------------------------------
    def image_store(self) -> None:
        """Layers placed without their short link (a crash between the rename
        and the symlink): the link is made now."""
        images = getattr(self.engine.images, "images", None)
        snaps = getattr(images, "snapshots", None)
        if snaps is None:
            return
        for chain_id in snaps.all_layers():
            try:
                info = snaps.layer_info(chain_id)
                link = os.path.join(snaps.links_dir, info["link"])
                if not os.path.lexists(link):
                    hexid = chain_id.split(":", 1)[1]
                    os.symlink(os.path.join("..", "layers", hexid, "diff"), link)
                    log(f"layer {chain_id[:19]}: its short link made")
            except (PyboxError, OSError, KeyError, ValueError, TypeError) as err:
                log(f"layer {chain_id[:19]}: {err}")

    # 3 ---------------------------------------------------------------------------------------
    def volumes(self) -> None:
        root = self.engine.volumes.root
        try:
            names = os.listdir(root)
        except OSError:
            return
        for name in names:
            if name.endswith((".creating", ".removing")):
                path = os.path.join(root, name)
                self._unmount_below(path)
                remove_tree(path, ignore_errors=True)
                log(f"volume {name.rsplit('.', 1)[0]}: "
                    f"{'half-created, removed' if name.endswith('.creating') else 'removal finished'}")

    @staticmethod
    def _unmount_below(path: str) -> None:
        try:
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f]
        except OSError:
            return
        prefix = path.rstrip("/") + "/"
        for p in sorted((p for p in points if p == path or p.startswith(prefix)),
                        key=len, reverse=True):
            try:
                syscalls.real().umount2(p, 2)
            except OSError:
                pass

    # 4 ---------------------------------------------------------------------------------------
    def half_made(self) -> None:
        e = self.engine
        root = e.store.root
        for cid in sorted(os.listdir(root)):
            if cid in e.store.by_id or not os.path.isdir(os.path.join(root, cid)):
                continue
            try:
                self._roll_back_create(cid, os.path.join(root, cid))
                log(f"container {cid[:12]}: a create cut short, rolled back")
            except Exception as err:  # noqa: BLE001 - never stops the daemon
                log(f"container {cid[:12]}: rolling back its create failed: {err}")

    def _roll_back_create(self, cid: str, directory: str) -> None:
        e = self.engine
        self._delete_runtime(cid)
        e.images.remove_rootfs(cid)
        remove_tree(os.path.join(e.run_root, "containers", cid), ignore_errors=True)
        for name in created_volumes(directory):
            try:
                e.volumes.remove(name, force=True)
            except PyboxError as err:
                log(f"volume {name[:12]} of container {cid[:12]}: {err}")
        self._unmount_below(directory)  # a /dev/shm of its own, if it got that far
        remove_tree(directory, ignore_errors=True)

    # 5 ---------------------------------------------------------------------------------------
    def containers(self) -> None:
        items = list(self.engine.store.all())
        if not items:
            return
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)),
                                thread_name_prefix="pybox-recover") as pool:
            list(pool.map(self._one_safely, items))

    def _one_safely(self, c: Container) -> None:
        try:
            self.one(c)
        except Exception as err:  # noqa: BLE001 - one container never stops the daemon
            log(f"container {c.id[:12]}: {err!r}; marked dead")
            self._mark_dead(c, f"recovery after a crash failed: {err}")

    def _mark_dead(self, c: Container, message: str) -> None:
        if c.removed or not os.path.isdir(c.dir):
            return  # gone after all (a removal that failed at its very end)
        try:
            with c.lock:
                c.state.mark_dead(message)
                c.save()
        except Exception as err:  # noqa: BLE001
            log(f"container {c.id[:12]}: cannot even mark it dead: {err}")

    def one(self, c: Container) -> None:
        e = self.engine
        st = c.state
        if st.status == "removing":
            self._finish_removal(c)
            return
        info = self._monitor_info(c)
        if info is not None and not info.get("started") and not self._abort_start(c):
            info = self._monitor_info(c)  # it started meanwhile
        if info is not None and info.get("started"):
            self._adopt(c, info)
            return
        if c.removed:
            return
        if st.running:
            exit_info = e.runner.monitor(c.id).read_exit_file() or {
                "exit_code": 255, "oom_killed": False, "finished_at": rfc3339_nano_fixed(),
                "error": "the container's monitor was gone when pyboxd restarted"}
            e.lifecycle.on_exit(c, exit_info)  # cleans up; its restart policy, --rm
            if c.removed or c.state.restarting:
                return  # removed, or its policy scheduled the restart (counted)
        else:
            self._settle_stopped(c)
        if not self._has_rootfs(c):
            self._mark_dead(c, "its filesystem is missing (a crash cut its creation or "
                               "removal short)")
            return
        with c.lock:
            if c.state.pending_restart:
                # a restart its policy had scheduled: resumed in step 8, once
                c.state.give_up_restart()
                c.save()
                if not c.exit_on_next:
                    self._boot_start(c)
                return
            if c.state.running or c.state.dead:
                return
            if comes_back_with_daemon(c):
                # docker: these come back when the daemon does
                c.manual_stop = False
                self._boot_start(c)

    def _boot_start(self, c: Container) -> None:
        with self.lock:
            if c not in self.boot_starts:
                self.boot_starts.append(c)

    def _has_rootfs(self, c: Container) -> bool:
        snaps = getattr(getattr(self.engine.images, "images", None), "snapshots", None)
        if snaps is None:
            return True
        try:
            return os.path.exists(os.path.join(snaps.container_dir(c.id), "rootfs.json"))
        except (PyboxError, ValueError):
            return False

    def _monitor_info(self, c: Container) -> dict[str, Any] | None:
        """The monitor's answer to "info", or None when there is no monitor.
        A monitor still inside the runtime's create has bound its socket but
        answers only once the create is through: waited for, bounded."""
        monitor = self.engine.runner.monitor(c.id)
        if not os.path.exists(monitor.socket_path):
            return None
        reply = monitor.info(timeout=MONITOR_TIMEOUT)
        return reply if isinstance(reply, dict) else None

    def _adopt(self, c: Container, info: dict[str, Any]) -> None:
        """The container runs under its monitor: Running, watched."""
        e = self.engine
        with c.lock:
            st = c.state
            rc = e.runner.load(c.id)
            paused = rc is not None and rc.status() == "paused"
            started_at = None
            if not st.running:
                # started, but the crash came before the record said so
                log(f"container {c.id[:12]}: running though its record said "
                    f"{st.status!r}: adopted")
                started_at = self._started_at(c, rc)
                c.manual_stop = False
                c.exit_on_next = False
            st.adopt(info.get("pid") or st.pid or 0, paused, started_at)
            c.save()
        e.lifecycle.watch(c)
        health.start_checks(c, e.runner, e.events)

    @staticmethod
    def _started_at(c: Container, rc: RuntimeContainer | None) -> str:
        """When the program was started: the runtime wrote its state file
        (started: true) then."""
        if rc is not None:
            try:
                return rfc3339_nano_fixed(os.stat(rc.dir.state_path).st_mtime_ns)
            except (OSError, TypeError, AttributeError):
                pass
        return rfc3339_nano_fixed()

    def _abort_start(self, c: Container) -> bool:
        """A monitor holding a container created but never started: the start
        is undone (see the module's docstring, 5c).  False if the container
        turned out to be started after all."""
        e = self.engine
        reply = e.runner.monitor(c.id).abort(timeout=MONITOR_TIMEOUT)
        if reply == "started":
            return False
        if reply == "ok":
            self._wait_monitor(c)
        else:
            self._kill_monitor(c)
        log(f"container {c.id[:12]}: a start cut short (created, never started): undone")
        if c.state.running:
            return True  # (d) records the exit
        self._settle_stopped(c)
        if c.host_config.get("AutoRemove"):
            e.lifecycle.auto_remove(c)  # as a failed start of a --rm container
        return True

    def _wait_monitor(self, c: Container, timeout: float = MONITOR_TIMEOUT) -> None:
        """Until the monitor has exited (its wait answers at its end)."""
        self.engine.runner.monitor(c.id).wait_gone(timeout)

    def _kill_monitor(self, c: Container) -> None:
        pid = self._monitor_pid(self.engine.run_dir(c))
        if pid:
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    @staticmethod
    def _monitor_pid(rundir: str) -> int:
        try:
            with open(os.path.join(rundir, "monitor.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return 0
        try:  # still a monitor of this run dir (pid reuse)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                f.read()
            return pid if os.path.exists(os.path.join(rundir, "monitor.sock")) else 0
        except OSError:
            return 0

    def _settle_stopped(self, c: Container) -> None:
        """A container that does not run: nothing of a run left."""
        e = self.engine
        with c.lock:
            if c.state.running:
                return
            before = fastjson.dumps(c.to_docker())
            self._delete_runtime(c.id, c.host_config)
            e.network.release(c)
            e.namespaces.release_shm(c)
            try:
                e.images.unmount_rootfs(c.id)
            except Exception as err:  # noqa: BLE001
                log(f"container {c.id[:12]}: unmounting its rootfs: {err}")
            remove_tree(e.run_dir(c), ignore_errors=True)
            c.state.settle()
            if fastjson.dumps(c.to_docker()) != before:
                c.save()  # (only then: a durable write per container is not free)

    def _finish_removal(self, c: Container) -> None:
        e = self.engine
        with c.lock:  # remove_now notifies the container's waiters
            e.lifecycle.remove_now(c)
        log(f"container {c.id[:12]}: removal finished")

    def _delete_runtime(self, cid: str, host_config: dict[str, Any] | None = None) -> None:
        """Delete the runtime's container (processes, cgroup, state dir),
        once a creator still inside its create is through.  ``host_config``:
        the record's, for its --cgroup-parent (None: below /pybox)."""
        runner = self.engine.runner
        rc = runner.load(cid)
        if rc is None:
            runner.remove_container_cgroups(cid, host_config)
            return
        deadline = time.monotonic() + MONITOR_TIMEOUT
        while rc.status() == "creating" and time.monotonic() < deadline:
            time.sleep(0.05)  # its creator is alive: let it finish or fail
            rc = runner.load(cid)
            if rc is None:
                return
        if rc.status() == "creating":
            creator = rc.record.get("creator_pid")
            if creator:
                try:
                    os.kill(creator, 9)
                except OSError:
                    pass
        rc.delete(force=True)
        runner.remove_container_cgroups(cid, host_config)

    # 6 ---------------------------------------------------------------------------------------
    def orphans(self) -> None:
        e = self.engine
        owned = set(e.store.by_id)
        for cid in e.runner.container_ids():
            if cid not in owned:
                try:
                    self._delete_runtime(cid)
                    log(f"runtime container {cid[:12]}: no record owns it: deleted")
                except Exception as err:  # noqa: BLE001
                    log(f"runtime container {cid[:12]}: {err}")
        rundirs = os.path.join(e.run_root, "containers")
        # a pod's monitor (Engine.create's monitor_group) serves others too: an
        # orphan's container is deleted above, and its part of the monitor ends
        serving = {self._monitor_pid(os.path.join(rundirs, cid))
                   for cid in _listdir(rundirs) if cid in owned}
        for cid in _listdir(rundirs):
            path = os.path.join(rundirs, cid)
            if cid in owned:
                c = e.store.by_id[cid]
                if c.state.running:
                    self._exec_leftovers(path)
                continue
            pid = self._monitor_pid(path)
            if pid and pid not in serving:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            remove_tree(path, ignore_errors=True)
        snaps = getattr(getattr(e.images, "images", None), "snapshots", None)
        if snaps is not None:
            for cid in _listdir(snaps.containers_dir):
                if cid not in owned:
                    try:
                        e.images.remove_rootfs(cid)
                        remove_tree(os.path.join(snaps.containers_dir, cid),
                                      ignore_errors=True)
                        log(f"rootfs {cid[:12]}: no record owns it: removed")
                    except Exception as err:  # noqa: BLE001
                        log(f"rootfs {cid[:12]}: {err}")

    @staticmethod
    def _exec_leftovers(rundir: str) -> None:
        """exec sessions are pyboxd's memory: their files go with it."""
        for name in _listdir(rundir):
            if name.startswith("exec-"):
                try:
                    os.unlink(os.path.join(rundir, name))
                except OSError:
                    pass

    # 7 ---------------------------------------------------------------------------------------
    def networking(self) -> None:
        for note in self.engine.network.recover():
            log(note)

    # 8 ---------------------------------------------------------------------------------------
    def restarts(self) -> None:
        for c in self.boot_starts:
            if not c.removed:
                threading.Thread(target=self.engine.restart_on_boot, args=(c,),
                                 daemon=True).start()

    # ---------------------------------------------------------------------------------------
    def run(self) -> None:
        for step in (self.temp_files, self.image_store, self.volumes):
            try:
                step()
            except Exception as err:  # noqa: BLE001
                log(f"{step.__name__}: {err!r}")
        self.engine.store.load()
        crashpoint("recovery.loaded")
        for step in (self.half_made, self.containers, self.orphans, self.networking):
            try:
                step()
            except Exception as err:  # noqa: BLE001
                log(f"{step.__name__}: {err!r}")
            crashpoint(f"recovery.{step.__name__}")
        self.engine.recovered.set()
        self.restarts()


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def recover(engine: Engine) -> None:
    """Engine.recover: see the module's docstring."""
    Recovery(engine).run()
