"""pybox's own pause: the process that holds a pod's namespaces, with no image to pull.

A pod sandbox needs a process that lives as long as the pod, does nothing,
and, as PID 1 of a pod that shares its PID namespace, reaps the orphans that
are re-parented to it.  Kubernetes ships that as the pause image
(registry.k8s.io/pause: a static C program); pybox writes the same program
itself, a 288-byte static x86-64 ELF, and imports it once as a one-file local
image (``localhost/pybox-pause:<digest of the program>``), so a node needs
no registry and no download before its first pod.  A configured sandbox
image (--pod-infra-container-image) is used instead when given.

What the program does (the machine code below, written out by hand):

    rt_sigaction(SIGCHLD, SIG_IGN)      children are reaped by the kernel
    rt_sigaction(SIGTERM, exit)         a stop ends it at once, status 0
    rt_sigaction(SIGINT,  exit)
    for (;;) pause();

Ignoring SIGCHLD (rather than a wait loop) is POSIX's way of saying "no
zombies": the kernel frees an exited child at once.  The handler for SIGTERM
and SIGINT calls exit_group(0) itself and never returns, so the restorer the
x86-64 kernel requires (SA_RESTORER) is never used.  Why not a shell loop in
busybox: it would need an image, and a shell keeps ~1 MiB resident where
this keeps one page.  Other architectures: no pybox pause (yet); pyboxd asks
for --pod-infra-container-image there.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import threading

from pybox.engine.engine import Engine
from pybox.errors import NotFound, PyboxError

BASE = 0x400000
_EHDR = 64
_PHDR = 56
CODE_OFFSET = _EHDR + _PHDR
HANDLER = 0x5A  # the handler's offset in the code below
SA_RESTORER = 0x04000000

# _start: three rt_sigaction(sig, &act, NULL, 8) calls, then pause() forever;
# handler: exit_group(0).  (Assembled with GNU as, checked with objdump.)
_CODE = bytes.fromhex(
    "b80d000000" "bf11000000" "488d3557000000" "31d2" "41ba08000000" "0f05"  # SIGCHLD -> ign
    "b80d000000" "bf0f000000" "488d355c000000" "31d2" "41ba08000000" "0f05"  # SIGTERM -> term
    "b80d000000" "bf02000000" "488d3541000000" "31d2" "41ba08000000" "0f05"  # SIGINT  -> term
    "b822000000" "0f05" "ebf7"                                              # pause(); again
    "b8e7000000" "31ff" "0f05"                                              # exit_group(0)
    "0f1f440000")                                                           # padding to 8


def program() -> bytes:
    """The pause program: a static x86-64 ELF executable."""
    handler = BASE + CODE_OFFSET + HANDLER
    ign = struct.pack("<4Q", 1, 0, 0, 0)  # SIG_IGN
    term = struct.pack("<4Q", handler, SA_RESTORER, handler, 0)
    body = _CODE + ign + term
    assert len(_CODE) == 0x68
    size = CODE_OFFSET + len(body)
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                       2, 0x3E, 1, BASE + CODE_OFFSET, _EHDR, 0, 0, _EHDR, _PHDR, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # PT_LOAD r-x
    return ehdr + phdr + body


def supported() -> bool:
    """Whether pybox has a pause program for this machine."""
    return os.uname().machine == "x86_64"


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
