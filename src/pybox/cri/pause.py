"""pybox's own pause: the process that holds a pod's namespaces, with no image to pull.

A pod sandbox needs a process that lives as long as the pod, does nothing,
and, as PID 1 of a pod that shares its PID namespace, reaps the orphans that
are re-parented to it.  Kubernetes ships that as the pause image
(registry.k8s.io/pause: a static C program); pybox writes the same program
itself, a static ELF of a few hundred bytes for x86-64 or arm64 (aarch64),
and imports it once as a one-file local image (``localhost/pybox-pause:<digest
of the program>``), so a node needs no registry and no download before its
first pod.  A configured sandbox image (--pod-infra-container-image) is used
instead when given.

What the program does (the machine code below, written out by hand):

    rt_sigaction(SIGCHLD, SIG_IGN)      children are reaped by the kernel
    rt_sigaction(SIGTERM, exit)         a stop ends it at once, status 0
    rt_sigaction(SIGINT,  exit)
    for (;;) pause();                   (arm64 has no pause(): ppoll(NULL, 0, NULL, NULL))

Ignoring SIGCHLD (rather than a wait loop) is POSIX's way of saying "no
zombies": the kernel frees an exited child at once.  The handler for SIGTERM
and SIGINT calls exit_group(0) itself and never returns, so the restorer the
x86-64 kernel requires (SA_RESTORER) is never used (arm64's kernel needs none:
its vDSO returns from handlers).  Why not a shell loop in busybox: it would
need an image, and a shell keeps ~1 MiB resident where this keeps one page.
Other architectures: no pybox pause; pyboxd asks for
--pod-infra-container-image there.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import threading
from dataclasses import dataclass

from pybox.engine.engine import Engine
from pybox.errors import NotFound, PyboxError

BASE = 0x400000
_EHDR = 64
_PHDR = 56
CODE_OFFSET = _EHDR + _PHDR
SA_RESTORER = 0x04000000  # (x86-64's kernel requires one with every handler)


@dataclass(frozen=True)
class PauseCode:
    """One architecture's machine code: ``code`` then the two kernel
    sigactions (SIG_IGN; the handler), the handler at ``handler`` in the code."""

    elf_machine: int
    code: bytes
    handler: int
    sa_flags: int
    align: int  # PT_LOAD's alignment: the largest page size the architecture has


# _start: three rt_sigaction(sig, &act, NULL, 8) calls, then pause() forever;
# handler: exit_group(0).  (Assembled with GNU as, checked with objdump.)
X86_64 = PauseCode(0x3E, bytes.fromhex(
    "b80d000000" "bf11000000" "488d3557000000" "31d2" "41ba08000000" "0f05"  # SIGCHLD -> ign
    "b80d000000" "bf0f000000" "488d355c000000" "31d2" "41ba08000000" "0f05"  # SIGTERM -> term
    "b80d000000" "bf02000000" "488d3541000000" "31d2" "41ba08000000" "0f05"  # SIGINT  -> term
    "b822000000" "0f05" "ebf7"                                              # pause(); again
    "b8e7000000" "31ff" "0f05"                                              # exit_group(0)
    "0f1f440000"), handler=0x5A, sa_flags=SA_RESTORER, align=0x1000)        # padding to 8

# The same in A64 (little-endian words; aarch64-linux-gnu-as, checked with objdump and run
# under qemu-aarch64-static): mov x0, SIG; adr x1, act; mov x2, #0; mov x3, #8;
# mov x8, #134 (rt_sigaction); svc #0 -- three times; then ppoll(NULL, 0, NULL, NULL, 8)
# (x8 = 73) and b back; handler: mov x0, #0; mov x8, #94 (exit_group); svc #0.
AARCH64 = PauseCode(0xB7, bytes.fromhex(
    "200280d2" "a1030010" "020080d2" "030180d2" "c81080d2" "010000d4"  # SIGCHLD -> ign
    "e00180d2" "e1030010" "020080d2" "030180d2" "c81080d2" "010000d4"  # SIGTERM -> term
    "400080d2" "21030010" "020080d2" "030180d2" "c81080d2" "010000d4"  # SIGINT  -> term
    "000080d2" "010080d2" "020080d2" "030080d2" "040180d2" "280980d2"  # ppoll(NULL, 0, ...)
    "010000d4" "f9ffff17"                                              # svc; b again
    "000080d2" "c80b80d2" "010000d4"                                   # exit_group(0)
    "1f2003d5"), handler=0x68, sa_flags=0, align=0x10000)             # nop: padding to 8

ARCHITECTURES = {"x86_64": X86_64, "aarch64": AARCH64}


def program(machine: str | None = None) -> bytes:
    """The pause program for ``machine`` (os.uname()'s name; this one's by
    default): a static ELF executable.  KeyError for an architecture pybox
    has none for."""
    arch = ARCHITECTURES[machine or os.uname().machine]
    handler = BASE + CODE_OFFSET + arch.handler
    ign = struct.pack("<4Q", 1, 0, 0, 0)  # SIG_IGN
    term = struct.pack("<4Q", handler, arch.sa_flags, handler if arch.sa_flags else 0, 0)
    body = arch.code + ign + term
    assert len(arch.code) % 8 == 0  # the sigactions 8-aligned, where the code's adr points
    size = CODE_OFFSET + len(body)
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                       2, arch.elf_machine, 1, BASE + CODE_OFFSET, _EHDR, 0, 0, _EHDR, _PHDR,
                       1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, arch.align)  # PT_LOAD r-x
    return ehdr + phdr + body


def supported() -> bool:
    """Whether pybox has a pause program for this machine."""
    return os.uname().machine in ARCHITECTURES


def image_ref() -> str:
    digest = hashlib.sha256(program()).hexdigest()[:12]
    return f"localhost/pybox-pause:{digest}"


def rootfs_tar() -> bytes:
    """The image's one layer: /pause, and the directories a runtime mounts on."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for d in ("dev", "proc", "sys", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        data = program()
        info = tarfile.TarInfo("pause")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


_lock = threading.Lock()


def ensure_image(engine: Engine) -> str:
    """The pause image's reference, imported into the engine's store on first
    use (again if someone removed it)."""
    ref = image_ref()
    with _lock:
        try:
            engine.images.lookup(ref)
            return ref
        except NotFound:
            pass
        if not supported():
            raise PyboxError(f"pybox has no pause program for {os.uname().machine}: "
                             "start pyboxd with --pod-infra-container-image")
        engine.images.import_(io.BytesIO(rootfs_tar()), reference=ref,
                              changes=['ENTRYPOINT ["/pause"]'],
                              message="pybox pause (pod sandbox)")
        return ref
