"""Image commands: images (image ls), import, load, save, tag, rmi, history,
image inspect, pull, image prune."""

from __future__ import annotations

import sys

from pybox.cli.pybox import formatting
from pybox.cli.pybox.common import (
    confirm,
    for_each,
    image_path,
    normalized_name,
    parse_filters,
    print_json_stream,
    pull_image,
    split_reference,
    write_stream,
)
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import is_terminal
from pybox.cli.pybox.system import inspect_objects
from pybox.cli.pybox.units import human_size
from pybox.errors import ClientError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import IO

    from pybox.cli.pybox import Cli


def cmd_images(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] [REPOSITORY[:TAG]]", "List images",
                 max_args=1)
    fs.add("all", "a", "bool", help="Show all images (default hides intermediate images)")
    fs.add("digests", kind="bool", help="Show digests")
    fs.add("filter", "f", "list", help="Filter output based on conditions provided")
    fs.add("format", help="Format output using a custom template")
    fs.add("no-trunc", kind="bool", help="Don't truncate output")
    fs.add("quiet", "q", "bool", help="Only show image IDs")
    fs.add("tree", kind="bool", hidden=True)
    opts = fs.parse(argv)
    filters = list(opts.filter)
    if opts.args:
        filters.append(f"reference={opts.args[0]}")
    query = {"all": 1 if opts.all else None, "filters": parse_filters(filters)}
    images = cli.client.get_json("/images/json", query=query) or []
    rows = formatting.image_rows(images, trunc=not opts.no_trunc)
    if opts.quiet and not opts.format:
        seen = []
        for row in rows:
            if row.ID not in seen:
                seen.append(row.ID)
        cli.out("".join(f"{i}\n" for i in seen))
        return 0
    default = formatting.IMAGES_TABLE
    if opts.digests:
        default = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}" \
                  "\t{{.Size}}"
    cli.out(formatting.render_rows(opts.format, rows, default, formatting.ImageRow.HEADERS))
    return 0


def cmd_import(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                 "Import the contents from a tarball to create a filesystem image",
                 min_args=1, max_args=2)
    fs.add("change", "c", "list", help="Apply Dockerfile instruction to the created image")
    fs.add("message", "m", help="Set commit message for imported image")
    fs.add("platform", help="Set platform if server is multi-platform capable")
    opts = fs.parse(argv)
    source = opts.args[0]
    repo = opts.args[1] if len(opts.args) > 1 else None
    if repo:
        split_reference(repo)
    query = {"fromSrc": "-", "repo": repo, "message": opts.message or None,
             "changes": opts.change or None, "platform": opts.platform or None}
    body = None
    close = None
    if source.startswith(("http://", "https://")):
        query["fromSrc"] = source
    elif source == "-":
        body = sys.stdin.buffer
    else:
        try:
            body = close = open(source, "rb")
        except OSError as err:
            raise ClientError(f"open {source}: {(err.strerror or str(err)).lower()}") from None
    try:
        resp = cli.client.request("POST", "/images/create", query=query,
                                  body=body if body is not None else b"",
                                  headers={"Content-Type": "text/plain"})
        print_json_stream(cli, resp)
    finally:
        if close is not None:
            close.close()
    return 0


def cmd_load(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Load an image from a tar archive or STDIN",
                 max_args=0)
    fs.add("input", "i", help="Read from tar archive file, instead of STDIN")
    fs.add("quiet", "q", "bool", help="Suppress the load output")
    fs.add("platform", kind="list", help="Load only the given platform(s)")
    opts = fs.parse(argv)
    close = None
    body: IO[bytes]
    if opts.input:
        try:
            body = close = open(opts.input, "rb")
        except OSError as err:
            raise ClientError(f"open {opts.input}: {(err.strerror or str(err)).lower()}") \
                from None
    else:
        if is_terminal(0):
            raise ClientError("requested load from stdin, but stdin is empty")
        body = sys.stdin.buffer
    quiet = opts.quiet or not is_terminal(1)
    try:
        resp = cli.client.request("POST", "/images/load", query={"quiet": 1 if quiet else 0},
                                  body=body, headers={"Content-Type": "application/x-tar"})
        if "json" in resp.headers.get("content-type", ""):
            print_json_stream(cli, resp)
        else:
            cli.out(resp.text())
    finally:
        if close is not None:
            close.close()
    return 0


def cmd_save(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] IMAGE [IMAGE...]",
                 "Save one or more images to a tar archive (streamed to STDOUT by default)",
                 min_args=1)
    fs.add("output", "o", help="Write to a file, instead of STDOUT")
    fs.add("platform", kind="list", help="Save only the given platform(s)")
    opts = fs.parse(argv)
    if not opts.output and is_terminal(1):
        raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or "
                          "redirect")
    resp = cli.client.request("GET", "/images/get", query={"names": list(opts.args)})
    write_stream(cli, resp, opts.output, "images")
    return 0


def cmd_tag(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                 "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", exact_args=2)
    opts = fs.parse(argv)
    source, target = opts.args
    domain, path, tag, digest = split_reference(target)
    if digest:
        raise ClientError("refusing to create a tag with a digest reference")
    cli.client.request("POST", image_path(source, "/tag"),
                       query={"repo": f"{domain}/{path}", "tag": tag or "latest"}).read()
    return 0


def cmd_rmi(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] IMAGE [IMAGE...]",
                 "Remove one or more images", min_args=1)
    fs.add("force", "f", "bool", help="Force removal of the image")
    fs.add("no-prune", kind="bool", help="Do not delete untagged parents")
    opts = fs.parse(argv)

    def rmi(name: str) -> bool:
        query = {"force": 1 if opts.force else None, "noprune": 1 if opts.no_prune else None}
        items = cli.client.request("DELETE", image_path(name), query=query).json() or []
        for item in items:
            if "Untagged" in item:
                cli.out(f"Untagged: {item['Untagged']}\n")
            if "Deleted" in item:
                cli.out(f"Deleted: {item['Deleted']}\n")
        return False
    return for_each(cli, opts.args, rmi)


def cmd_history(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] IMAGE", "Show the history of an image",
                 exact_args=1)
    fs.add("format", help="Format output using a custom template")
    fs.add("human", "H", "bool", default=True, help="Print sizes and dates in human "
                                                    "readable format")
    fs.add("no-trunc", kind="bool", help="Don't truncate output")
    fs.add("quiet", "q", "bool", help="Only show image IDs")
    fs.add("platform", help="Show history for the given platform")
    opts = fs.parse(argv)
    history = cli.client.get_json(image_path(opts.args[0], "/history")) or []
    rows = [formatting.HistoryRow(h, trunc=not opts.no_trunc, human=opts.human)
            for h in history]
    fmt = opts.format
    if opts.quiet and not fmt:
        fmt = "{{.ID}}"
    cli.out(formatting.render_rows(fmt, rows, formatting.HISTORY_TABLE,
                                   formatting.HistoryRow.HEADERS))
    return 0


def cmd_image_inspect(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] IMAGE [IMAGE...]",
                 "Display detailed information on one or more images", min_args=1)
    fs.add("format", "f", help="Format output using a custom template")
    opts = fs.parse(argv)
    return inspect_objects(cli, opts.args, opts.format, ("image",))


def cmd_pull(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] NAME[:TAG|@DIGEST]",
                 "Download an image from a registry", exact_args=1)
    fs.add("all-tags", "a", "bool", help="Download all tagged images in the repository")
    fs.add("quiet", "q", "bool", help="Suppress verbose output")
    fs.add("platform", help="Set platform if server is multi-platform capable")
    opts = fs.parse(argv)
    ref = opts.args[0]
    _, _, tag, digest = split_reference(ref)
    if opts.all_tags and (tag is not None or digest is not None):
        raise ClientError("tag can't be used with --all-tags/-a")
    if tag is None and digest is None and not opts.all_tags:
        tag = "latest"
        if not opts.quiet:
            cli.out("Using default tag: latest\n")
    pull_image(cli, ref, opts.platform or None, opts.quiet, all_tags=opts.all_tags)
    # as docker: the full name of what was pulled, also without -q
    shown = normalized_name(ref)
    if digest:
        shown += f"@{digest}"
    elif tag:
        shown += f":{tag}"
    cli.out(f"{shown}\n")
    return 0


def cmd_image_prune(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS]", "Remove unused images", max_args=0)
    fs.add("all", "a", "bool", help="Remove all unused images, not just dangling ones")
    fs.add("force", "f", "bool", help="Do not prompt for confirmation")
    fs.add("filter", kind="list", help="Provide filter values")
    opts = fs.parse(argv)
    filters = list(opts.filter) + ([] if opts.all else ["dangling=true"])
    if not opts.force and not confirm(cli, "WARNING! This will remove all dangling images."
                                            "\nAre you sure you want to continue?"):
        return 0
    report = cli.client.request("POST", "/images/prune",
                                query={"filters": parse_filters(filters)}).json() or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        cli.out("Deleted Images:\n")
        for item in deleted:
            for key in ("Untagged", "Deleted"):
                if key in item:
                    cli.out(f"{key.lower()}: {item[key]}\n")
        cli.out("\n")
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
