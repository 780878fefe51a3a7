"""OCI hooks: run a hook list with the container state on stdin.

When each list runs (runtime-spec "Lifecycle"), and by whom:
  prestart, createRuntime   create, in the runtime's namespaces, after the
                            container's namespaces exist, before pivot_root
  createContainer           create, in the container's namespaces, before pivot_root
  startContainer            start, in the container, just before the user program
  poststart                 start, after the user program was started
  poststop                  delete, after the container is gone
A failing prestart/createRuntime/createContainer/startContainer hook is an error
that aborts (and rolls back) the operation; a failing poststart or poststop hook
only warns (the spec says so; runc 1.1 deviates).  subprocess is imported only
when a hook actually runs: most containers have none.
"""

from __future__ import annotations

from pybox.errors import HookError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any


def run_hooks(hooks: Sequence[dict[str, Any]] | None, state: Mapping[str, Any], phase: str, *,
              warn: Callable[[str], None] | None = None) -> None:
    """Run each hook in order.  ``state`` is the state dict (fed as JSON on stdin).
    With ``warn`` (a callable), failures are reported through it and skipped."""
    if not hooks:
        return
    import subprocess  # noqa: PLC0415 -- costs start-up time; most containers have no hooks

    from pybox.formats import fastjson  # noqa: PLC0415 -- (loaded already: a dict lookup)

    payload = fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        path = hook["path"]
        args = hook.get("args") or [path]
        env: dict[str, str] = {}
        for entry in hook.get("env") or ():
            k, _, v = entry.partition("=")
            env[k] = v
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(args, executable=path, input=payload, env=env,
                                  capture_output=True, timeout=timeout, close_fds=True)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
                err = HookError(f"{phase} hook #{i} ({path}) exited with status "
                                f"{proc.returncode}" + (f": {detail}" if detail else ""))
            else:
                continue
        except subprocess.TimeoutExpired:
            err = HookError(f"{phase} hook #{i} ({path}) timed out after {timeout}s",
                            errno=62)
        except OSError as e:
            err = HookError(f"{phase} hook #{i} ({path}): {e.strerror}", errno=e.errno)
        if warn is None:
            raise err
        warn(str(err))
