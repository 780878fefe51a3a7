"""cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here.

cgroup v2 has no devices.allow/deny; the kernel instead runs eBPF programs
attached to the cgroup (attach type BPF_CGROUP_DEVICE) on every open/mknod of a
device node, and denies access when a program returns 0.  runc and crun build
such a program from the rule list; so does this module, without a compiler or
libbpf: the instructions are packed by hand (struct bpf_insn, 8 bytes each) and
loaded and attached with the bpf() syscall.  The hybrid driver uses it too when
the devices controller is not mounted as v1.

The program reads struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32
minor; } where access_type = (access << 16) | type.  It is generated from the
*effective* rule set (devices.DeviceState: a default plus exceptions), so every
exception has the same verdict and order among them does not matter:

    r2 = type; r3 = access; r4 = major; r5 = minor
    for each exception:   if it matches -> return not default
    return default

Matching mirrors the v1 kernel: an allow exception (whitelist) must cover every
requested access bit; a deny exception (blacklist) matches if it shares any bit
with the request.  (runc checks the subset for both, which lets a read+write open
through a write-only deny rule; pybox does not.)

Replacing a program (update): when exactly one program is attached, the new one
takes its place in one bpf(BPF_PROG_ATTACH) call with BPF_F_REPLACE (Linux 5.6),
as runc does: no moment with both or neither.  Otherwise (several programs, or a
kernel without BPF_F_REPLACE) the new program is attached with
BPF_F_ALLOW_MULTI before the old ones are detached; while both are attached,
access needs both to agree, so a container never briefly gains access it should
not have, and keeps every device both allow.
"""

from __future__ import annotations

import os
import struct

from pybox.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import ctypes
    from types import ModuleType
    from typing import Any

    from pybox.cgroups.devices import DeviceState
    from pybox.linux.syscalls import Syscalls

    Insn = tuple[int, int, int, int, int]  # opcode, dst, src, off, imm
    Attr = ctypes.Array[ctypes.c_ubyte]

# bpf(2) commands, program/attach types and flags (linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4

# struct bpf_cgroup_dev_ctx encodings
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_ALL_ACCESS = 7

# opcodes: class | op | source (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K = 0x54      # BPF_ALU | BPF_AND | BPF_K
_ALU32_RSH_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_ALU32_MOV_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_ALU64_MOV_K = 0xB7      # BPF_ALU64 | BPF_MOV | BPF_K
_JMP_JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K
_JMP_JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
_JMP_EXIT = 0x95         # BPF_JMP | BPF_EXIT

_ATTR_SIZE = 128         # enough for every command used; the tail stays zero
_LICENSE = b"Apache\0"


def _insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    return (opcode, dst, src, off, imm)


def _access_mask(access: str) -> int:
    mask = 0
    for ch in access:
        mask |= _ACCESS_BITS[ch]
    return mask


def program(state: DeviceState) -> list[Insn]:
    """The instruction list (tuples opcode, dst, src, off, imm) for a DeviceState.

    Jumps to "next" are resolved once each exception's block length is known."""
    insns = [
        _insn(_LDX_MEM_W, 2, 1, 0),          # r2 = ctx->access_type
        _insn(_ALU32_AND_K, 2, imm=0xFFFF),  # r2 &= 0xffff        -> device type
        _insn(_LDX_MEM_W, 3, 1, 0),          # r3 = ctx->access_type
        _insn(_ALU32_RSH_K, 3, imm=16),      # r3 >>= 16           -> access bits
        _insn(_LDX_MEM_W, 4, 1, 4),          # r4 = ctx->major
        _insn(_LDX_MEM_W, 5, 1, 8),          # r5 = ctx->minor
    ]
    default = 1 if state.default_allow else 0
    for (kind, major, minor), access in state.exceptions.items():
        block: list[tuple[Insn, bool]] = []  # (insn, jumps_to_next)
        if kind in ("b", "c"):
            dev = BPF_DEVCG_DEV_BLOCK if kind == "b" else BPF_DEVCG_DEV_CHAR
            block.append((_insn(_JMP_JNE_K, 2, imm=dev), True))
        mask = _access_mask(access)
        if mask != _ALL_ACCESS:
            block.append((_insn(_ALU32_MOV_X, 1, 3), False))          # r1 = access
            if state.default_allow:
                # deny exception: matches if the request shares a bit with it
                block.append((_insn(_ALU32_AND_K, 1, imm=mask), False))
                block.append((_insn(_JMP_JEQ_K, 1, imm=0), True))
            else:
                # allow exception: matches if the request is a subset of it
                block.append((_insn(_ALU32_AND_K, 1, imm=_ALL_ACCESS & ~mask), False))
                block.append((_insn(_JMP_JNE_K, 1, imm=0), True))
        if major != -1:
            block.append((_insn(_JMP_JNE_K, 4, imm=major), True))
        if minor != -1:
            block.append((_insn(_JMP_JNE_K, 5, imm=minor), True))
        block.append((_insn(_ALU64_MOV_K, 0, imm=1 - default), False))
        block.append((_insn(_JMP_EXIT), False))
        end = len(block)
        for i, (ins, to_next) in enumerate(block):
            if to_next:
                ins = (ins[0], ins[1], ins[2], end - (i + 1), ins[4])
            insns.append(ins)
    insns.append(_insn(_ALU64_MOV_K, 0, imm=default))
    insns.append(_insn(_JMP_EXIT))
    return insns


def encode(insns: list[Insn]) -> bytes:
    """struct bpf_insn[]: u8 code; u8 dst:4, src:4; s16 off; s32 imm (little endian
    on x86_64/aarch64; bit-field order follows the host's endianness)."""
    out = bytearray()
    for opcode, dst, src, off, imm in insns:
        out += struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)
    return bytes(out)


def run(insns: list[Insn], kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the program in Python (the subset emitted above).  Used by unit
    tests to check the generated code against DeviceState.allows without a
    kernel."""
    dev = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}[kind]
    ctx = [(_access_mask(access) << 16) | dev, major, minor]
    reg: list[Any] = [0] * 11  # r1 holds the context (a list), the others ints
    reg[1] = ctx
    pc = 0
    while True:
        opcode, dst, src, off, imm = insns[pc]
        pc += 1
        if opcode == _LDX_MEM_W:
            reg[dst] = reg[src][off // 4] & 0xFFFFFFFF
        elif opcode == _ALU32_AND_K:
            reg[dst] = reg[dst] & imm & 0xFFFFFFFF
        elif opcode == _ALU32_RSH_K:
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif opcode == _ALU32_MOV_X:
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif opcode == _ALU64_MOV_K:
            reg[dst] = imm
        elif opcode == _JMP_JNE_K:
            if reg[dst] != imm:
                pc += off
        elif opcode == _JMP_JEQ_K:
            if reg[dst] == imm:
                pc += off
        elif opcode == _JMP_EXIT:
            return reg[0]
        else:
            raise ValueError(f"opcode {opcode:#x} not emitted by this module")


# -- the kernel side --------------------------------------------------------

def _syscalls() -> Syscalls:
    from pybox.linux import syscalls  # noqa: PLC0415 -- ctypes: only for a device program

    return syscalls.real()


def _bpf(sc: Syscalls, cmd: int, attr: Attr) -> int:
    method = getattr(sc, "bpf", None)
    if method is not None:
        return method(cmd, attr, _ATTR_SIZE)
    import ctypes  # noqa: PLC0415 -- an older Syscalls without the bpf method

    return sc.raw_syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr),
                          ctypes.c_uint(_ATTR_SIZE))


def _attr(ctypes: ModuleType) -> Attr:
    return (ctypes.c_ubyte * _ATTR_SIZE)()


def load(state: DeviceState, sc: Syscalls | None = None) -> int:
    """Load the program for ``state``; returns its fd (caller closes)."""
    import ctypes  # noqa: PLC0415 -- costs milliseconds; only device programs need it

    sc = sc or _syscalls()
    code = encode(program(state))
    insns = ctypes.create_string_buffer(code, len(code))
    license_buf = ctypes.create_string_buffer(_LICENSE, len(_LICENSE))
    log = ctypes.create_string_buffer(65536)
    attr = _attr(ctypes)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_buf),
                     1, len(log), ctypes.addressof(log))
    attr[48:48 + 12] = list(b"pybox_device")
    try:
        return _bpf(sc, BPF_PROG_LOAD, attr)
    except OSError as e:
        if e.errno == 1:
            # Before 5.11 bpf memory was charged against RLIMIT_MEMLOCK.
            import resource  # noqa: PLC0415 -- only on old kernels' EPERM

            try:
                resource.setrlimit(resource.RLIMIT_MEMLOCK,
                                   (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                return _bpf(sc, BPF_PROG_LOAD, attr)
            except (OSError, ValueError):
                pass
        verifier = log.value.decode(errors="replace").strip()
        raise CgroupError(
            "linux.resources.devices: cannot load the eBPF device program: "
            f"{os.strerror(e.errno or 0)} (errno {e.errno})"
            + (f"; verifier says: {verifier[-500:]}" if verifier else ""), errno=e.errno) from None


def query(dirfd: int, sc: Syscalls | None = None) -> list[int]:
    """Ids of the device programs attached directly to the cgroup open at dirfd."""
    import ctypes  # noqa: PLC0415 -- costs milliseconds; only device programs need it

    sc = sc or _syscalls()
    ids = (ctypes.c_uint32 * 64)()
    attr = _attr(ctypes)
    struct.pack_into("<IIIIQI", attr, 0, dirfd, BPF_CGROUP_DEVICE, 0, 0,
                     ctypes.addressof(ids), len(ids))
    _bpf(sc, BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", attr, 24)[0]
    return [ids[i] for i in range(min(count, len(ids)))]


def _prog_fd(prog_id: int, sc: Syscalls) -> int:
    import ctypes  # noqa: PLC0415 -- costs milliseconds; only device programs need it

    attr = _attr(ctypes)
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(sc, BPF_PROG_GET_FD_BY_ID, attr)


def _attach_cmd(cmd: int, dirfd: int, prog_fd: int, flags: int, sc: Syscalls,
                replace_fd: int = 0) -> int:
    """BPF_PROG_ATTACH/DETACH: union bpf_attr's {target_fd, attach_bpf_fd,
    attach_type, attach_flags, replace_bpf_fd}."""
    import ctypes  # noqa: PLC0415 -- costs milliseconds; only device programs need it

    attr = _attr(ctypes)
    struct.pack_into("<IIIII", attr, 0, dirfd, prog_fd, BPF_CGROUP_DEVICE, flags, replace_fd)
    return _bpf(sc, cmd, attr)


def _replace(dirfd: int, prog_fd: int, old_id: int, sc: Syscalls) -> bool:
    """Swap the one attached program ``old_id`` for ``prog_fd`` atomically
    (BPF_F_REPLACE).  False when that cannot be done -- a kernel before 5.6
    (EINVAL), the old program gone meanwhile -- and the caller falls back to
    attach-then-detach."""
    try:
        old_fd = _prog_fd(old_id, sc)
    except OSError:
        return False
    try:
        _attach_cmd(BPF_PROG_ATTACH, dirfd, prog_fd, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, sc,
                    replace_fd=old_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(old_fd)


def install(cgroup_dir: str, state: DeviceState, sc: Syscalls | None = None) -> None:
    """Attach the program for ``state`` to ``cgroup_dir`` in place of the device
    programs attached there before (ours from an earlier apply/update): replaced
    atomically when there is one, else attached first and the old ones detached
    after (see the module docstring)."""
    sc = sc or _syscalls()
    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"linux.resources.devices: cannot open {cgroup_dir}: "
                          f"{os.strerror(e.errno or 0)} (errno {e.errno})", errno=e.errno) from None
    try:
        try:
            old = query(dirfd, sc)
        except OSError:
            old = []
        prog_fd = load(state, sc)
        try:
            if len(old) == 1 and _replace(dirfd, prog_fd, old[0], sc):
                return
            try:
                _attach_cmd(BPF_PROG_ATTACH, dirfd, prog_fd, BPF_F_ALLOW_MULTI, sc)
            except OSError as e:
                raise CgroupError(
                    f"linux.resources.devices: cannot attach the eBPF device program to "
                    f"{cgroup_dir}: {os.strerror(e.errno or 0)} (errno {e.errno})",
                    errno=e.errno) from None
        finally:
            os.close(prog_fd)
        for prog_id in old:
            _detach_id(dirfd, prog_id, sc)
    finally:
        os.close(dirfd)


def _detach_id(dirfd: int, prog_id: int, sc: Syscalls) -> None:
    try:
        fd = _prog_fd(prog_id, sc)
    except OSError:
        return
    try:
        _attach_cmd(BPF_PROG_DETACH, dirfd, fd, 0, sc)
    except OSError:
        pass
    finally:
        os.close(fd)


def attached(cgroup_dir: str, sc: Syscalls | None = None) -> int:
    """Number of device programs attached directly to cgroup_dir (for tests)."""
    sc = sc or _syscalls()
    dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return len(query(dirfd, sc))
    finally:
        os.close(dirfd)
