"""Run a command inside a throw-away cgroup v2 VM: Debian's kernel under qemu TCG.

Why: the development and CI hosts of pybox are cgroup v1 (hybrid) machines, but
most users run pure cgroup v2, and a v2 driver tested against fake files proves
nothing.  This harness boots Debian's stock kernel (unpacked by setup.sh, never
installed) under ``qemu-system-x86_64 -accel tcg`` (KVM does not work here), with
the host's / mounted read-only over virtio-9p plus a tmpfs overlay, cgroup2 at
/sys/fs/cgroup with every controller enabled, and runs one command there with the
host's own Python, as root.  The command's output and exit status come back
through a second, writable 9p share (a temporary directory on the host), so they
are exact bytes, untouched by the serial console; the kernel's console goes to a
log file that is shown when the VM fails to boot.

Python use::

    from tests.v2vm.vm import run_in_v2_vm          # or import vm from this dir
    rc, output = run_in_v2_vm(["python3", "-m", "pytest", "tests/cgroups", "-q"], timeout=600)

Command line::

    python3 tests/v2vm/vm.py [--timeout S] [--cwd DIR] [-e K=V]... -- CMD [ARG...]

exits with the command's exit status (or 125 when the VM itself failed).
"""

from __future__ import annotations

import argparse
import codecs
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
CACHE_DIR = Path(os.environ.get("PYBOX_V2VM_CACHE", "/var/cache/pybox-v2vm"))
MANIFEST_NAME = "vm.json"
SETUP_SCRIPT = HERE / "setup.sh"
QEMU = "qemu-system-x86_64"

# TCG is slow: Python start-up over 9p dominates.  A boot normally takes 10-30 s;
# the limit is generous so that a loaded CI machine does not cause false failures.
DEFAULT_BOOT_TIMEOUT = 240.0
DEFAULT_MEMORY_MB = 2048
DEFAULT_CPUS = 2
POLL_SECONDS = 0.2
JOB_DIR_PREFIX = "pybox-v2vm-"
OWNER_FILE = "owner.pid"
# SeaBIOS paints the screen with terminal escapes; they only obscure the console log.
TERMINAL_ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|c)")
# Exit status of the command line when the VM, not the command, failed.
VM_FAILURE_STATUS = 125

KERNEL_CMDLINE = " ".join((
    "console=ttyS0",
    "quiet",
    "loglevel=3",
    # A panic reboots, and -no-reboot turns that into qemu exiting at once.
    "panic=-1",
    # Nothing may bind a controller to a v1 hierarchy: this is a pure v2 host.
    "cgroup_no_v1=all",
    # Page-table isolation and friends cost a lot under TCG and protect nothing here.
    "mitigations=off",
    "random.trust_cpu=on",
    "rdinit=/init",
))


class VMError(RuntimeError):
    """The VM itself failed (no boot, a timeout, a crash): not the command's verdict."""


class VMUnavailable(VMError):
    """qemu cannot run on this machine at all; callers may skip, with this reason."""


class VMNotSetUp(VMError):
    """The kernel or initramfs is missing from the cache: run tests/v2vm/setup.sh."""


class VMTimeout(VMError):
    """The VM did not boot, or the command did not finish, in time; qemu was killed."""


@dataclass
class VMResult:
    """What one VM run produced, and what the VM reported about itself."""

    returncode: int
    output: str
    console: str
    facts: dict[str, str] = field(default_factory=dict)
    boot_seconds: float = 0.0
    run_seconds: float = 0.0

    @property
    def controllers(self) -> list[str]:
        """The controllers listed in the VM's /sys/fs/cgroup/cgroup.controllers."""
        return self.facts.get("controllers", "").split()

    @property
    def kernel_release(self) -> str:
        return self.facts.get("release", "")

    @property
    def is_cgroup_v2(self) -> bool:
        """True when /sys/fs/cgroup inside was cgroup2 and offered the memory controller."""
        return self.facts.get("fstype") == "cgroup2" and "memory" in self.controllers


@dataclass(frozen=True)
class Artifacts:
    """The cached kernel image and initramfs that setup.sh produced."""

    kernel: Path
    initramfs: Path
    release: str


def find_qemu() -> str | None:
    """Path of qemu-system-x86_64, or None."""
    return shutil.which(QEMU) or next(
        (p for p in ("/usr/bin/" + QEMU, "/usr/local/bin/" + QEMU) if os.access(p, os.X_OK)), None)


def load_artifacts(cache_dir: Path = CACHE_DIR) -> Artifacts:
    """Read the manifest setup.sh wrote; raise VMNotSetUp when anything is missing."""
    manifest = cache_dir / MANIFEST_NAME
    hint = f"run: sudo {SETUP_SCRIPT}"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as error:
        raise VMNotSetUp(f"no usable {manifest} ({error}); {hint}") from None
    artifacts = Artifacts(Path(data["kernel"]), Path(data["initramfs"]), data["release"])
    for path in (artifacts.kernel, artifacts.initramfs):
        if not path.is_file():
            raise VMNotSetUp(f"{path} is missing; {hint}")
    return artifacts


def unavailable_reason() -> str | None:
    """Why qemu cannot run here at all, or None when it can.

    Only a missing qemu binary or a qemu that cannot start a TCG machine count:
    those are the cases where skipping is honest.  Anything later (no kernel,
    a failed boot) is a real failure.
    """
    qemu = find_qemu()
    if qemu is None:
        return f"{QEMU} is not installed (apt-get install qemu-system-x86, or run {SETUP_SCRIPT})"
    if not Path("/dev/null").exists():
        return "/dev is not usable (no /dev/null)"
    try:
        probe = subprocess.run(
            [qemu, "-accel", "tcg", "-machine", "none", "-nodefaults", "-display", "none",
             "-monitor", "stdio"],
            input="quit\n", capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{qemu} cannot start a TCG machine: {error}"
    if probe.returncode != 0:
        return f"{qemu} cannot start a TCG machine: {probe.stderr.strip()[-500:]}"
    return None


def _die_with_parent() -> None:
    """In the qemu child: get SIGKILL if the harness dies, so no VM outlives it."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def guest_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The command's environment inside: the host's Python and venv first on PATH.

    A small, explicit environment rather than the host's: the guest is another
    machine, and host variables (DISPLAY, SSH_*, XDG_RUNTIME_DIR) mean nothing there.
    """
    prefixes: list[str] = []
    venv = os.environ.get("VIRTUAL_ENV") or (sys.prefix if sys.prefix != sys.base_prefix else None)
    if venv:
        prefixes.append(str(Path(venv) / "bin"))
    prefixes.append(str(Path(sys.executable).parent))
    standard = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    path: list[str] = []
    for entry in prefixes + os.environ.get("PATH", "").split(":") + standard:
        if entry and entry not in path:
            path.append(entry)
    result = {
        "PATH": ":".join(path),
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": "/tmp",
        "PYBOX_V2VM": "1",
    }
    if venv:
        result["VIRTUAL_ENV"] = venv
    result.update(env or {})
    return result


# Directories the VM mounts afresh (tmpfs), hiding what the host has there.
GUEST_TMPFS_DIRS = ("/tmp", "/run", "/dev")


def hidden_host_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Those of ``paths`` that a fresh tmpfs in the guest would hide, outermost only.

    A checkout or venv under /tmp must stay visible inside, or the guest would run
    in an empty directory; init.sh binds these back from the host's read-only view.
    """
    hidden: list[str] = []
    for raw in paths:
        path = os.path.realpath(raw)
        if not os.path.isdir(path):
            continue
        if any(path == top or path.startswith(top + "/") for top in GUEST_TMPFS_DIRS):
            hidden.append(path)
    outermost = [p for p in sorted(set(hidden))
                 if not any(p != q and p.startswith(q + "/") for q in hidden)]
    return outermost


def job_script(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """The POSIX sh script stage2.sh runs: exact environment, directory and argv."""
    assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in env.items())
    command = " ".join(shlex.quote(str(arg)) for arg in argv)
    return (
        "# written by tests/v2vm/vm.py\n"
        f"cd {shlex.quote(cwd)} || exit 126\n"
        f"exec /run/pybox-v2vm/bin/busybox env -i {assignments} {command}\n"
    )


def qemu_command(qemu: str, artifacts: Artifacts, job_dir: Path, console_log: Path, *,
                 memory_mb: int, cpus: int) -> list[str]:
    """The qemu invocation: TCG, serial console to a file, two virtio-9p shares, no network."""
    return [
        qemu,
        "-accel", "tcg,thread=multi",
        "-cpu", "max",
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-nographic", "-monitor", "none", "-serial", f"file:{console_log}",
        "-no-reboot",
        "-nic", "none",
        "-kernel", str(artifacts.kernel),
        "-initrd", str(artifacts.initramfs),
        "-append", KERNEL_CMDLINE,
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=pyboxjob,path={job_dir},security_model=none,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=pyboxjob,mount_tag=pyboxjob",
    ]


def _remove_stale_job_dirs() -> None:
    """Remove job directories left by a harness that was SIGKILLed.

    qemu dies with its harness (PR_SET_PDEATHSIG), but a killed harness cannot
    remove its temporary directory; the next run does, going only by the owner
    file this module writes, and only when that owner process is gone.
    """
    for candidate in Path(tempfile.gettempdir()).glob(JOB_DIR_PREFIX + "*"):
        try:
            owner = int((candidate / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except PermissionError:
            pass


def _read_facts(path: Path) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    return facts


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_vm(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] = REPO_ROOT,
    stream: TextIO | Callable[[str], object] | None = None,
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    cpus: int = DEFAULT_CPUS,
    cache_dir: Path = CACHE_DIR,
    extra_host_paths: Sequence[str | os.PathLike[str]] = (),
) -> VMResult:
    """Boot the VM, run ``argv`` in ``cwd`` as root, and return everything it reported.

    ``timeout`` bounds the whole VM (boot included); ``stream`` (a text file or a
    callable) receives the command's output as it arrives.  Host directories under
    /tmp or /run (which the guest mounts afresh) stay visible when they hold ``cwd``
    or the host's Python, or are listed in ``extra_host_paths``.  Raises VMUnavailable,
    VMNotSetUp, VMTimeout or VMError when the VM, rather than the command, failed.
    qemu is killed and the temporary job directory removed on every path out.
    """
    if not argv:
        raise ValueError("argv is empty")
    qemu = find_qemu()
    if qemu is None:
        raise VMUnavailable(unavailable_reason() or f"{QEMU} not found")
    artifacts = load_artifacts(cache_dir)
    emit = (stream.write if hasattr(stream, "write") else stream) if stream is not None else None

    _remove_stale_job_dirs()
    job_dir = Path(tempfile.mkdtemp(prefix=JOB_DIR_PREFIX))
    try:
        (job_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        console_log = job_dir / "console.log"
        guest_env = guest_environment(env)
        (job_dir / "job.sh").write_text(job_script(argv, guest_env, os.fspath(cwd)))
        needed = [cwd, sys.prefix, sys.base_prefix, Path(os.path.realpath(sys.executable)).parent,
                  *filter(None, [guest_env.get("VIRTUAL_ENV")]), *extra_host_paths]
        (job_dir / "binds").write_text("".join(f"{p}\n" for p in hidden_host_paths(needed)))
        command = qemu_command(qemu, artifacts, job_dir, console_log, memory_mb=memory_mb, cpus=cpus)
        with open(job_dir / "qemu.stderr", "w+b") as qemu_stderr:
            started = time.monotonic()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_stderr,
                                       stderr=qemu_stderr, preexec_fn=_die_with_parent)
            try:
                return _supervise(process, job_dir, console_log, qemu_stderr, started,
                                  timeout=timeout, boot_timeout=min(boot_timeout, timeout), emit=emit)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _supervise(process: subprocess.Popen, job_dir: Path, console_log: Path, qemu_stderr,
               started: float, *, timeout: float, boot_timeout: float,
               emit: Callable[[str], object] | None) -> VMResult:
    """Watch the job share until the command's status appears or a deadline passes."""
    output_path, booted_path, rc_path = job_dir / "output", job_dir / "booted", job_dir / "rc"
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    chunks: list[str] = []
    offset = 0
    booted_at: float | None = None
    finished_at: float | None = None

    def pump(final: bool = False) -> None:
        nonlocal offset
        try:
            with open(output_path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        text = decoder.decode(data, final=final)
        if text:
            chunks.append(text)
            if emit is not None:
                emit(text)
                flush = getattr(getattr(emit, "__self__", None), "flush", None)
                if flush:
                    flush()

    def console() -> str:
        qemu_stderr.flush()
        qemu_stderr.seek(0)
        text = console_log.read_text(errors="replace") if console_log.exists() else ""
        return TERMINAL_ESCAPES.sub("", text) + qemu_stderr.read().decode(errors="replace")

    while True:
        now = time.monotonic()
        pump()
        if booted_at is None and booted_path.exists():
            booted_at = now
        if finished_at is None and rc_path.exists():
            finished_at = now
        exited = process.poll() is not None
        if finished_at is not None and (exited or now - finished_at > 30):
            break
        if exited:
            # Give the 9p writes that raced with power-off a last look.
            if rc_path.exists():
                finished_at = finished_at or now
                break
            pump(final=True)
            raise VMError(f"the VM stopped without reporting the command's status "
                          f"(qemu exit {process.returncode}); output so far:\n{_tail(''.join(chunks))}"
                          f"\nconsole:\n{_tail(console())}")
        if booted_at is None and now - started > boot_timeout:
            process.kill()
            raise VMTimeout(f"the VM did not boot within {boot_timeout:.0f}s; console:\n{_tail(console())}")
        if now - started > timeout:
            process.kill()
            pump()
            raise VMTimeout(f"the VM run exceeded {timeout:.0f}s; output so far:\n{_tail(''.join(chunks))}"
                            f"\nconsole:\n{_tail(console(), 20)}")
        time.sleep(POLL_SECONDS)

    pump(final=True)
    status_text = rc_path.read_text().strip()
    try:
        returncode = int(status_text)
    except ValueError:
        raise VMError(f"unreadable exit status {status_text!r}; console:\n{_tail(console())}") from None
    facts = _read_facts(booted_path) if booted_path.exists() else {}
    booted_at = booted_at or finished_at
    return VMResult(
        returncode=returncode,
        output="".join(chunks),
        console=console(),
        facts=facts,
        boot_seconds=booted_at - started,
        run_seconds=finished_at - booted_at,
    )


def run_in_v2_vm(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] = REPO_ROOT,
    stream: TextIO | Callable[[str], object] | None = None,
) -> tuple[int, str]:
    """Run ``argv`` as root in a fresh cgroup v2 VM; return (exit status, combined output).

    The simple form of run_vm(): raises the same VMError family when the VM failed.
    """
    result = run_vm(argv, timeout=timeout, env=env, cwd=cwd, stream=stream)
    return result.returncode, result.output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a command as root in a throw-away cgroup v2 VM (Debian kernel, qemu TCG).",
        usage="%(prog)s [options] -- CMD [ARG...]",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole VM (default 900)")
    parser.add_argument("--cwd", default=os.getcwd(), help="directory to run in (default: the current one)")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                        help="extra environment variable for the command")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="guest MiB (default 2048)")
    parser.add_argument("--cpus", type=int, default=DEFAULT_CPUS, help="guest cpus (default 2)")
    parser.add_argument("--quiet", action="store_true", help="do not print the VM's timing summary")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    extra_env = dict(item.split("=", 1) for item in args.env)
    last = [""]

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        last[0] = text[-1:]

    def stop(signum: int, _frame: object) -> None:
        # Turn SIGTERM/SIGHUP into an exception so run_vm's cleanup (kill qemu,
        # remove the job directory) runs, as it does for Ctrl-C.
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        result = run_vm(command, timeout=args.timeout, env=extra_env, cwd=args.cwd, stream=echo,
                        memory_mb=args.memory, cpus=args.cpus)
    except VMError as error:
        print(f"pybox-v2vm: {type(error).__name__}: {error}", file=sys.stderr)
        return VM_FAILURE_STATUS
    except KeyboardInterrupt:
        print("pybox-v2vm: interrupted; the VM was stopped", file=sys.stderr)
        return 130
    if last[0] not in ("", "\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if not args.quiet:
        print(f"pybox-v2vm: kernel {result.kernel_release}, {result.facts.get('fstype')}, "
              f"controllers: {' '.join(result.controllers)}; boot {result.boot_seconds:.1f}s, "
              f"run {result.run_seconds:.1f}s, exit {result.returncode}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
