"""docker cp: the container archive endpoints (HEAD/GET/PUT /containers/ID/archive).

Paths are the container's: they are resolved inside its root filesystem the way
the container itself would see them -- symlinks followed but never out of the
root (secure_join), and paths under a volume or bind mount going to that
mount's host directory.  A stopped container's rootfs is mounted for the
duration of the call.  The stat header is docker's: base64 JSON with a Go
os.FileMode ``mode`` and an RFC3339Nano ``mtime``.
"""

import base64
import os
import stat as st
import tarfile

from pybox.errors import BadRequest, NotFound
from pybox.linux.idmap import OVERFLOW_ID, map_id
from pybox.oci import fastjson

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20


def go_file_mode(mode):
    out = mode & 0o777
    if st.S_ISDIR(mode):
        out |= GO_DIR
    elif st.S_ISLNK(mode):
        out |= GO_SYMLINK
    elif st.S_ISBLK(mode):
        out |= GO_DEVICE
    elif st.S_ISCHR(mode):
        out |= GO_DEVICE | GO_CHARDEV
    elif st.S_ISFIFO(mode):
        out |= GO_PIPE
    elif st.S_ISSOCK(mode):
        out |= GO_SOCKET
    if mode & st.S_ISUID:
        out |= GO_SETUID
    if mode & st.S_ISGID:
        out |= GO_SETGID
    if mode & st.S_ISVTX:
        out |= GO_STICKY
    return out


class RootView:
    """A container's filesystem from the host, while the context is open."""

    def __init__(self, engine, c):
        self.engine = engine
        self.c = c
        self.mounted_here = False

    def __enter__(self):
        images = self.engine.images
        if self.c.state.get("Running"):
            self.root = images.images.rootfs_path(self.c.id)
        else:
            self.root = images.mount_rootfs(self.c.id)
            self.mounted_here = True
        return self

    def __exit__(self, *exc):
        if self.mounted_here:
            try:
                self.engine.images.unmount_rootfs(self.c.id)
            except Exception:  # noqa: BLE001
                pass

    def mounts(self):
        """The container's mounts as {Destination, Type, Source, RW}: Mounts, and
        the --tmpfs ones (HostConfig.Tmpfs)."""
        out = list(self.c.record.get("Mounts") or ())
        for dest, opts in (self.c.record["HostConfig"].get("Tmpfs") or {}).items():
            out.append({"Destination": dest, "Type": "tmpfs", "Source": "",
                        "RW": "ro" not in (opts or "").split(",")})
        return out

    def mount_for(self, path):
        """The mount ``path`` (clean, absolute) is under, or None (the rootfs).
        A tmpfs exists only while the container runs: stopped, its path is the
        root filesystem's (as docker's cp sees it)."""
        running = self.c.state.get("Running") and self.c.state.get("Pid")
        best = None
        for m in self.mounts():
            if m["Type"] == "tmpfs" and not running:
                continue
            dest = m["Destination"]
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) > len(best["Destination"]):
                    best = m
        return best

    def check_writable(self, path):
        """docker's refusals for a copy into a read-only place (400)."""
        from pybox.runtime.rootfs import clean_path

        m = self.mount_for(clean_path(path if path.startswith("/") else "/" + path))
        if m is None and self.c.record["HostConfig"].get("ReadonlyRootfs"):
            raise BadRequest("container rootfs is marked read-only")
        if m is not None and not m.get("RW", True):
            raise BadRequest("mounted volume is marked read-only")

    def host_path(self, path, follow_last=True):
        """The host path for the container path ``path`` (mounts honoured; a
        tmpfs, which only the container's mount namespace has, through
        /proc/PID/root -- its Source is empty, and the path under it in the
        rootfs is a different, hidden directory)."""
        from pybox.runtime.rootfs import clean_path, secure_join

        path = clean_path(path if path.startswith("/") else "/" + path)
        best = self.mount_for(path)
        if best is not None and best["Type"] == "tmpfs":
            base = secure_join(f"/proc/{self.c.state['Pid']}/root", best["Destination"])
            rest = path[len(best["Destination"]):]
        elif best is not None:
            base = best["Source"]
            rest = path[len(best["Destination"]):]
        else:
            base, rest = self.root, path
        if follow_last:
            return secure_join(base, rest)
        parent, name = os.path.split(rest)
        return os.path.join(secure_join(base, parent), name) if name else secure_join(base, rest)


def stat_header(path, name):
    s = os.lstat(path)
    from pybox.monitor.jsonlog import rfc3339_nano

    doc = {"name": name, "size": s.st_size, "mode": go_file_mode(s.st_mode),
           "mtime": rfc3339_nano(s.st_mtime_ns),
           "linkTarget": os.readlink(path) if st.S_ISLNK(s.st_mode) else ""}
    return base64.b64encode(fastjson.dumps(doc).encode()).decode()


def resolve_for_read(engine, c, path):
    """(RootView, host path, name) or NotFound with docker's message."""
    view = RootView(engine, c).__enter__()
    try:
        trailing_dot = path.endswith("/.")
        host = view.host_path(path, follow_last=path.endswith("/") or trailing_dot)
        if not os.path.lexists(host):
            raise NotFound(f"Could not find the file {path} in container {c.name}")
        name = os.path.basename(path.rstrip("/")) or "/"
        if path.rstrip("/") == "":
            name = "/"
        return view, host, name
    except BaseException:
        view.__exit__(None, None, None)
        raise


def write_tar(host, name, out, idmap=None):
    """Stream a tar of ``host`` named ``name`` (a directory brings its tree).
    ``idmap`` (a --userns-remap container): owners as the container sees them."""
    def to_container(info):
        uid, gid = map_id(idmap["uid"], info.uid, False), map_id(idmap["gid"], info.gid, False)
        info.uid = OVERFLOW_ID if uid is None else uid
        info.gid = OVERFLOW_ID if gid is None else gid
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        arcname = "." if name == "/" else name
        tar.add(host, arcname=arcname, recursive=True,
                filter=to_container if idmap else None)


def resolve_within(root, rel, max_links=40):
    """``root``/``rel`` with the symlinks under root followed, or None when that
    leaves root (an absolute link, '..' above it, a loop).  root itself is taken
    as it is: it may be /proc/PID/root/..., whose magic link realpath would
    resolve to the host's "/"."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    parts.reverse()
    done = []
    links = 0
    while parts:
        comp = parts.pop()
        if comp == "..":
            if not done:
                return None
            done.pop()
            continue
        candidate = os.path.join(root, *done, comp)
        try:
            s = os.lstat(candidate)
        except OSError:
            done.append(comp)
            continue
        if st.S_ISLNK(s.st_mode):
            links += 1
            link = os.readlink(candidate)
            if links > max_links or link.startswith("/"):
                return None
            parts.extend(reversed([p for p in link.split("/") if p not in ("", ".")]))
            continue
        done.append(comp)
    return os.path.join(root, *done)


def extract(engine, c, path, stream, no_overwrite_dir_non_dir=False):
    """PUT: extract a tar into the directory ``path`` of the container."""
    idmap = engine.images.rootfs_idmap(c.id)
    with RootView(engine, c) as view:
        view.check_writable(path)
        target = view.host_path(path)
        if not os.path.isdir(target):
            if not os.path.lexists(target):
                raise NotFound(f"Could not find the file {path} in container {c.name}")
            raise BadRequest(f"extraction point is not a directory: {path}")
        # target is symlink-free (host_path resolved it) and may be under
        # /proc/PID/root (a tmpfs), which realpath would turn into the host's /
        root_real = target
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = member.name
                dest = resolve_within(root_real, name)
                if dest is None:
                    raise BadRequest(f"invalid tar member {name!r}: it escapes {path}")
                if no_overwrite_dir_non_dir and os.path.lexists(dest):
                    existing_dir = os.path.isdir(dest) and not os.path.islink(dest)
                    if existing_dir != member.isdir():
                        kind = "directory" if existing_dir else "non-directory"
                        raise BadRequest(f"cannot overwrite {kind} {name!r} with "
                                         f"{'directory' if member.isdir() else 'non-directory'}")
                if member.issym() or member.islnk():
                    link = member.linkname
                    if member.islnk():
                        real = resolve_within(root_real, link)
                        if real is None or real == root_real:
                            raise BadRequest(f"invalid hard link {name!r} -> {link!r}")
                if idmap:  # owners in the tar are the container's: shift them to host ids
                    root_uid, root_gid = idmap["uid"][0][1], idmap["gid"][0][1]
                    uid, gid = map_id(idmap["uid"], member.uid), map_id(idmap["gid"], member.gid)
                    member.uid = root_uid if uid is None else uid
                    member.gid = root_gid if gid is None else gid
                kwargs = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}
                tar.extract(member, root_real, set_attrs=True, numeric_owner=True, **kwargs)
