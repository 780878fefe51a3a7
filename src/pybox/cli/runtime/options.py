"""pybox-runtime's parsed flags, as types.

Types only: the CLI imports this under ``TYPE_CHECKING`` (never when it runs:
``typing`` costs start-up time on every runtime command); the parser fills
plain dicts by the option tables' destination names (cli/runtime/__init__.py).
"""

from __future__ import annotations

from typing import TypedDict

OptionTable = dict[str, tuple[str, str]]  # flag name -> (destination, kind)


class GlobalOptions(TypedDict, total=False):
    """The global flags, parsed (GLOBAL_OPTIONS)."""

    root: str
    log: str
    log_format: str
    debug: bool
    systemd_cgroup: bool
    rootless: str
    criu: str
    help: bool
    version: bool


class CommandOptions(TypedDict, total=False):
    """A command's flags, parsed (each Command's table; runc's names)."""

    help: bool
    # create, run
    bundle: str
    pid_file: str
    console_socket: str
    pidfd_socket: str
    no_pivot: bool
    no_new_keyring: bool
    preserve_fds: int
    detach: bool
    keep: bool
    # kill, delete
    all: bool
    force: bool
    # exec
    process: str
    tty: bool
    env: list[str]
    cwd: str
    user: str
    additional_gids: list[str]
    cap: list[str]
    no_new_privs: bool
    process_label: str
    apparmor: str
    ignore_paused: bool
    # ps, list, events, spec
    format: str
    quiet: bool
    stats: bool
    interval: str
    rootless: bool
    # update (each resource flag's text, parsed by update.FLAGS)
    resources: str
    blkio_weight: str
    cpu_period: str
    cpu_quota: str
    cpu_share: str
    cpu_rt_period: str
    cpu_rt_runtime: str
    cpuset_cpus: str
    cpuset_mems: str
    cpu_idle: str
    kernel_memory: str
    kernel_memory_tcp: str
    memory: str
    memory_reservation: str
    memory_swap: str
    pids_limit: str
    l3_cache_schema: str
    mem_bw_schema: str
