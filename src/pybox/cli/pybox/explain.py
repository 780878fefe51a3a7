"""``pybox explain CONTAINER [--json]``: the kernel objects behind a container.

Asks pyboxd for GET /containers/{id}/explain (a pybox extension; a dockerd
answers 404) and prints it for a person -- sections, tables, a process tree --
or, with --json, as the daemon sent it.  See docs/cli.md.
"""

from __future__ import annotations

from pybox.cli.pybox.common import container_path
from pybox.cli.pybox.flags import FlagSet
from pybox.errors import ClientError, DaemonError
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pybox.cli.pybox import Cli


def cmd_explain(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER",
                 "Show the namespaces, cgroups, mounts, processes and security settings "
                 "behind a container, as the kernel has them", exact_args=1)
    fs.add("json", kind="bool", help="Print the report as JSON")
    opts = fs.parse(argv)
    try:
        data = cli.client.get_json(container_path(opts.args[0], "/explain"))
    except DaemonError as e:
        if e.status == 404 and "page not found" in (e.message or ""):
            raise ClientError("pybox explain: the daemon has no /containers/{id}/explain "
                              "(it is not pyboxd)") from None
        raise
    if opts.json:

        cli.out(fastjson.dumps(data, indent=2) + "\n")
        return 0
    cli.out(render(data))
    return 0


# -- the text report ------------------------------------------------------------------
def _table(rows: Sequence[Sequence[object]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [str(c).ljust(w) for c, w in zip(r, widths, strict=False)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _wrap_names(names: list[str], width: int = 92, indent: str = "      ") -> list[str]:
    if not names:
        return [indent + "(none)"]
    lines, line = [], indent
    for n in names:
        piece = n + " "
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece
    lines.append(line.rstrip())
    return lines


def render(d: dict[str, Any]) -> str:
    out = []
    head = f"Container {d.get('name')} ({d.get('id', '')[:12]})  {d.get('status')}"
    if d.get("pid"):
        head += f", init is host pid {d['pid']}"
    out += [head, f"  image   {d.get('image')} ({(d.get('image_id') or '')[:19]})"]
    files = d.get("files") or {}
    out += [f"  config  {files.get('config')}  (the OCI bundle's config.json)",
            f"  state   {files.get('runtime_state')}  (pybox-runtime)",
            f"  record  {files.get('record')}  (the engine's)"]
    if d.get("note"):
        out += ["", f"  ({d['note']})"]

    if d.get("namespaces"):
        out += ["", "Namespaces"]
        rows: list[tuple[object, ...]] = [("TYPE", "INODE", "HOST'S", "SHARED WITH", "CONFIG")]
        for ns in d["namespaces"]:
            shared = "the host" if ns["host_shares"] else "-"
            if ns.get("shared_with"):
                shared = ", ".join(ns["shared_with"]) + ("" if shared == "-" else ", " + shared)
            rows.append((ns["type"], ns["inode"], ns.get("host_inode") or "?", shared,
                         ns.get("config", "")))
        out += _table(rows)

    cg = d.get("cgroups")
    if cg and cg.get("directories"):
        out += ["", f"Cgroups ({cg.get('driver')} driver, path {cg.get('path')})"]
        for directory in cg["directories"]:
            made = "made by pybox" if directory["created_by_pybox"] else "not made by pybox"
            out.append(f"  {directory['path']}  [{', '.join(directory['controllers'])}; "
                       f"{made}]")
            rows = []
            for limit in directory["limits"]:
                by = limit.get("set_by")
                origin = (f"{by['flag']} -> {by['oci']}" if by else "default")
                rows.append((limit["file"], limit["display"], origin))
            out += _table(rows, indent="      ")
            if directory.get("usage"):
                out.append("      now: " + ", ".join(f"{k} {v}" for k, v in
                                                    directory["usage"].items()))
        if cg.get("parents_created"):
            out.append("  parents pybox made: " + ", ".join(cg["parents_created"]))

    fs = d.get("rootfs")
    if fs:
        mount = fs.get("mount") or {}
        kind = mount.get("fstype") or "not mounted"
        out += ["", f"Root filesystem ({kind}{', source ' + mount['source'] if mount else ''})"]
        out += _table([("merged", fs.get("merged") or "-"), ("upper", fs.get("upper") or "-"),
                       ("work", fs.get("work") or "-")])
        for lower in fs.get("lower") or ():
            layer = lower.get("layer")
            what = (f"image layer {layer['index'] + 1}/{layer['of']}, diff "
                    f"{(layer.get('diff_id') or '')[:19]}" if layer else "not an image layer")
            out.append(f"  lower {lower['position']}  {lower['path']}")
            out.append(f"           -> {lower['resolved']}  ({what})")

    if d.get("mounts"):
        out += ["", f"Mounts ({len(d['mounts'])}, from the container's mountinfo)"]
        rows = [("MOUNT POINT", "TYPE", "SOURCE", "OPTIONS", "PROPAGATION")]
        for m in d["mounts"]:
            source = m["source"] if m["root"] in ("/", "") else f"{m['source']}[{m['root']}]"
            rows.append((m["mount_point"], m["fstype"], source, m["options"], m["propagation"]))
        out += _table(rows)
    pv = d.get("proc_view")
    if pv is not None and d.get("running"):
        out += ["", "The /proc view: " + (f"on ({len(pv['files'])} files from {pv['server']})"
                                           if pv.get("on") else "off")]

    if d.get("processes"):
        out += ["", "Processes (host pid next to the container's)"]
        out += _process_tree(d["processes"])

    sec = d.get("security")
    if sec:
        out += ["", "Security (of init)"]
        for name in ("effective", "permitted", "bounding", "inheritable", "ambient"):
            caps = (sec.get("capabilities") or {}).get(name)
            if caps is None:
                continue
            out.append(f"  capabilities {name} ({caps['mask']}):")
            out += _wrap_names(caps["names"])
        sc = sec.get("seccomp") or {}
        out.append(f"  seccomp: {sc.get('mode')}, {sc.get('filters')} filter(s)   "
                   f"no_new_privs: {'yes' if sec.get('no_new_privs') else 'no'}")
        for name in ("uid_map", "gid_map"):
            maps = "; ".join(" ".join(str(x) for x in m) for m in sec.get(name) or ())
            out.append(f"  {name}: {maps or '-'}")
        out.append("  user namespace: " + ("yes" if sec.get("user_namespace")
                                           else "no (the identity map)"))
    return "\n".join(out) + "\n"


def _process_tree(procs: list[dict[str, Any]]) -> list[str]:
    by_pid = {p["pid"]: p for p in procs}
    children: dict[int, list[dict[str, Any]]] = {}
    roots = []
    for p in procs:
        if p["ppid"] in by_pid:
            children.setdefault(p["ppid"], []).append(p)
        else:
            roots.append(p)
    rows: list[tuple[object, ...]] = [("HOST PID", "PID", "UID", "STATE", "COMMAND")]

    def walk(p: dict[str, Any], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else prefix + ("└─ " if last else "├─ ")
        command = " ".join(p["command"]) or f"[{p['name']}]"
        if len(command) > 60:
            command = command[:57] + "..."
        rows.append((p["pid"], p["container_pid"], p["uid"], p["state"].split(" ")[0],
                     branch + command))
        kids = sorted(children.get(p["pid"], ()), key=lambda k: k["pid"])
        for i, k in enumerate(kids):
            walk(k, "" if top else prefix + ("   " if last else "│  "), i == len(kids) - 1,
                 False)

    for r in sorted(roots, key=lambda p: p["pid"]):
        walk(r, "", True, True)
    return _table(rows)
