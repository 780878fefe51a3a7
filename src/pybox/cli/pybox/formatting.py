"""docker's tables and ``--format`` output: ps, images, history (and the lists
of issue 7 that follow the same pattern).

A format is either ``table`` (the default columns), ``table TEMPLATE`` (a header
line plus rows, aligned like Go's tabwriter with docker's settings: minimum
width 10, padding 3), ``json`` (one JSON object a line), or a bare template (one
rendered line per row).  Rows are objects with docker's field names (``.ID``,
``.Image``, ``.RunningFor``...); their ``HEADERS`` give the column titles.
"""

from __future__ import annotations

import time

from pybox.cli.pybox.templates import Template, TemplateError, go_quote
from pybox.cli.pybox.units import human_size
from pybox.formats.durations import human_duration
from pybox.formats.times import go_time_string, rfc3339_local

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# Docker's default table formats.
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
           "{{.Ports}}\t{{.Names}}"
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Go's text/tabwriter with docker's settings (minwidth 10, tabwidth 1,
    padding 3, padchar ' ', no flags).  Cells end with a tab; the last cell of a
    line is not part of a column.  Column blocks are runs of consecutive lines
    that have that column, as tabwriter does."""
    rows = [line.split("\t") for line in lines]
    widths_for: list[dict[int, int]] = [{} for _ in rows]

    def settle(start: int, end: int, col: int) -> None:
        width = 0
        for r in range(start, end):
            width = max(width, _width(rows[r][col]))
        width = max(width + padding, minwidth)
        for r in range(start, end):
            widths_for[r][col] = width

    max_cols = max((len(r) for r in rows), default=0)
    for col in range(max_cols - 1):
        r = 0
        while r < len(rows):
            if len(rows[r]) - 1 > col:
                start = r
                while r < len(rows) and len(rows[r]) - 1 > col:
                    r += 1
                settle(start, r, col)
            else:
                r += 1
    out = []
    for r, cells in enumerate(rows):
        parts = []
        for c, cell in enumerate(cells):
            if c < len(cells) - 1:
                parts.append(cell + " " * (widths_for[r][c] - _width(cell)))
            else:
                parts.append(cell)
        out.append("".join(parts))
    return out


def _width(text: str) -> int:
    return len(text)


def ellipsis(text: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``max_width`` characters, the last
    one an ellipsis."""
    if len(text) <= max_width:
        return text
    if max_width <= 0:
        return ""
    if max_width == 1:
        return text[:1]
    return text[:max_width - 1] + "…"


def short_id(ident: str) -> str:
    """stringid.TruncateID: drop an algorithm prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def since(unix_seconds: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - unix_seconds)) + " ago"


class Row:
    """Base for table rows: fields are properties named as docker's."""

    HEADERS: dict[str, str] = {}
    FIELDS: tuple[str, ...] = ()

    def field(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(self, name):
            raise TemplateError(f"can't evaluate field {name} in type "
                                f"*formatter.{type(self).__name__}")
        return getattr(self, name)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.FIELDS)}


class HeaderRow:
    """What a ``table`` template is executed on to make the header line."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def field(self, name: str) -> str | Callable[..., str]:
        label = self.headers.get(name, name.upper())
        if name in ("Label",):
            return lambda *a: "LABEL"
        return label


def render_rows(fmt: str, rows: Sequence[object], default_table: str, headers: dict[str, str],
                quiet_field: str | None = None) -> str:
    """-> the text to print (ending in a newline unless empty).  ``rows``: what the
    template runs on (objects with docker's field names, or JSON dicts)."""
    if fmt in ("", "table"):
        fmt = default_table
    if fmt == "json":
        fmt = "{{json .}}"
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    is_table = fmt.startswith("table")
    if is_table:
        fmt = fmt[len("table"):].lstrip(" ")
        if not fmt:
            fmt = default_table[len("table "):]
    template = Template(fmt)
    lines = []
    if is_table:
        lines.append(template.execute(HeaderRow(headers)))
    for row in rows:
        lines.append(template.execute(row))
    if is_table:
        text = "\n".join(lines)
        return "\n".join(tabwrite(text.split("\n"))) + "\n"
    return "".join(line + "\n" for line in lines)


# -- docker ps --------------------------------------------------------------------
class ContainerRow(Row):
    HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
               "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
               "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
               "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
               "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}
    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
              "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State",
              "Status")
    Platform: str | None = None

    def __init__(self, data: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        self.c = data
        self.trunc = trunc
        self.now = now

    @property
    def ID(self) -> str:
        return short_id(self.c.get("Id", "")) if self.trunc else self.c.get("Id", "")

    @property
    def Image(self) -> str:
        image = self.c.get("Image") or "<no image>"
        if self.trunc:
            if image.startswith("sha256:") or short_id(self.c.get("ImageID", "")) == \
                    short_id(image):
                return short_id(image)
            if "@" in image:
                image = image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:
        command = self.c.get("Command", "")
        if self.trunc:
            command = ellipsis(command, 20)
        return go_quote(command)

    @property
    def CreatedAt(self) -> str:
        return go_time_string(self.c.get("Created", 0))

    @property
    def RunningFor(self) -> str:
        return since(self.c.get("Created", 0), self.now)

    @property
    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    @property
    def State(self) -> str:
        return self.c.get("State", "")

    @property
    def Status(self) -> str:
        return self.c.get("Status", "")

    @property
    def Size(self) -> str:
        size_rw = self.c.get("SizeRw") or 0
        size_root = self.c.get("SizeRootFs") or 0
        text = human_size(size_rw)
        if size_root > 0:
            text += f" (virtual {human_size(size_root)})"
        return text

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in (self.c.get("Names") or [])]
        if self.trunc:
            for name in names:
                if "/" not in name:
                    return name
        return ",".join(names)

    @property
    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    @property
    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            if self.trunc:
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: ``0.0.0.0:8080->80/tcp, 53/udp``; consecutive
    ports with the same mapping shape are grouped into ranges."""
    groups: dict[tuple[str, str, str], list[tuple[str, int | None, int]]] = {}
    order = []
    for p in sorted(ports, key=lambda p: (p.get("Type", ""), p.get("PrivatePort", 0),
                                          p.get("IP", ""), p.get("PublicPort", 0))):
        ip = p.get("IP", "")
        public = p.get("PublicPort", 0)
        private = p.get("PrivatePort", 0)
        kind = p.get("Type", "tcp")
        if ip:
            host = ip if ":" not in ip else f"[{ip}]"
            key = f"{host}:{{}}->{{}}/{kind}"
            entry = (key, public, private)
        else:
            key = f"{{}}/{kind}"
            entry = (key, None, private)
        group_key = (key, ip, kind)
        if group_key not in groups:
            groups[group_key] = []
            order.append(group_key)
        groups[group_key].append(entry)
    out = []
    for group_key in order:
        entries = groups[group_key]
        ranges: list[list[Any]] = []
        for _key, public, private in entries:
            if ranges and ranges[-1][3] + 1 == private and \
                    (public is None or ranges[-1][1] + 1 == public):
                ranges[-1][1] = public
                ranges[-1][3] = private
                continue
            ranges.append([public, public, private, private])
        for pub_start, pub_end, priv_start, priv_end in ranges:
            priv = str(priv_start) if priv_start == priv_end else f"{priv_start}-{priv_end}"
            if pub_start is None:
                out.append(group_key[0].format(priv))
            else:
                pub = str(pub_start) if pub_start == pub_end else f"{pub_start}-{pub_end}"
                out.append(group_key[0].format(pub, priv))
    return ", ".join(out)


# -- docker images ------------------------------------------------------------------
class ImageRow(Row):
    HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
               "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
               "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
               "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}
    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, data: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool = True,
                 now: float | None = None) -> None:
        self.i = data
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = now

    @property
    def ID(self) -> str:
        return short_id(self.i.get("Id", "")) if self.trunc else self.i.get("Id", "")

    @property
    def Repository(self) -> str:
        return self.repo

    @property
    def Tag(self) -> str:
        return self.tag

    @property
    def Digest(self) -> str:
        return self.digest

    @property
    def CreatedSince(self) -> str:
        created = self.i.get("Created", 0)
        return "N/A" if not created else since(created, self.now)

    @property
    def CreatedAt(self) -> str:
        return go_time_string(self.i.get("Created", 0))

    @property
    def Size(self) -> str:
        return human_size(self.i.get("Size", 0))

    @property
    def Containers(self) -> str:
        n = self.i.get("Containers", -1)
        return "N/A" if n == -1 else str(n)

    @property
    def VirtualSize(self) -> str:
        return human_size(self.i.get("VirtualSize", self.i.get("Size", 0)))

    @property
    def SharedSize(self) -> str:
        n = self.i.get("SharedSize", -1)
        return "N/A" if n == -1 else human_size(n)

    @property
    def UniqueSize(self) -> str:
        n = self.i.get("SharedSize", -1)
        return "N/A" if n == -1 else human_size(self.i.get("Size", 0) - n)


def image_rows(images: list[dict[str, Any]], *, trunc: bool = True, digests: bool = False,
               show_all_tags: bool = True, now: float | None = None) -> list[ImageRow]:
    """One row per repository:tag, docker's way: untagged images show ``<none>``;
    images are listed newest first."""
    rows = []
    for image in sorted(images, key=lambda i: i.get("Created", 0), reverse=True):
        tags = image.get("RepoTags") or []
        digests_list = image.get("RepoDigests") or []
        repo_digest: dict[str, str] = {}
        for rd in digests_list:
            repo, _, dig = rd.partition("@")
            repo_digest.setdefault(repo, dig)
        if not tags and not digests_list:
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc, now))
            continue
        if not tags or tags == ["<none>:<none>"]:
            for rd in digests_list:
                repo, _, dig = rd.partition("@")
                rows.append(ImageRow(image, repo, "<none>", dig, trunc, now))
            continue
        for rt in tags:
            repo, tag = split_repo_tag(rt)
            rows.append(ImageRow(image, repo, tag, repo_digest.get(repo, "<none>"), trunc,
                                 now))
    return rows


def split_repo_tag(ref: str) -> tuple[str, str]:
    """``host:5000/name:tag`` -> (``host:5000/name``, ``tag``); ``<none>`` tag if
    none."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "<none>"


# -- docker history -----------------------------------------------------------------
class HistoryRow(Row):
    HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
               "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
    FIELDS = ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")

    def __init__(self, data: dict[str, Any], trunc: bool = True, human: bool = True,
                 now: float | None = None) -> None:
        self.h = data
        self.trunc = trunc
        self.human = human
        self.now = now

    @property
    def ID(self) -> str:
        ident = self.h.get("Id", "")
        if ident == "<missing>" or not self.trunc:
            return ident
        return short_id(ident)

    @property
    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt
        return since(self.h.get("Created", 0), self.now)

    @property
    def CreatedAt(self) -> str:
        return rfc3339_local(self.h.get("Created", 0))

    @property
    def CreatedBy(self) -> str:
        text = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        size = self.h.get("Size", 0)
        return human_size(size) if self.human else str(size)

    @property
    def Comment(self) -> str:
        return self.h.get("Comment", "")


# -- inspect ------------------------------------------------------------------------
def indent_raw_json(raw: str, indent: str = "    ") -> str:
    """encoding/json's Indent on raw bytes: the daemon's own escaping and number
    spelling are kept (docker inspect prints the daemon's JSON re-indented, not
    re-encoded); empty objects and arrays stay ``{}``/``[]``."""
    out = []
    depth = 0
    i, n = 0, len(raw)
    need_indent = False
    while i < n:
        c = raw[i]
        if c in " \t\r\n":
            i += 1
            continue
        if need_indent and c not in "]}":
            need_indent = False
            depth += 1
            out.append("\n" + indent * depth)
        if c == '"':
            j = i + 1
            while j < n:
                if raw[j] == "\\":
                    j += 2
                    continue
                if raw[j] == '"':
                    break
                j += 1
            out.append(raw[i:j + 1])
            i = j + 1
            continue
        if c in "{[":
            out.append(c)
            need_indent = True
        elif c in "}]":
            if need_indent:
                need_indent = False
                out.append(c)
            else:
                depth -= 1
                out.append("\n" + indent * depth + c)
        elif c == ",":
            out.append(",\n" + indent * depth)
        elif c == ":":
            out.append(": ")
        else:
            out.append(c)
        i += 1
    return "".join(out)
