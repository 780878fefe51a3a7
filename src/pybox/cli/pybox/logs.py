"""``pybox logs``: inspect (for Config.Tty: raw or stdcopy), then ``GET
/containers/{id}/logs`` streamed as it arrives; ``-f`` keeps it open until the
container stops or the user interrupts."""

from __future__ import annotations

from pybox.cli.pybox.common import container_path
from pybox.cli.pybox.flags import FlagSet
from pybox.cli.pybox.session import write_all
from pybox.cli.pybox.stdcopy import Demuxer, StreamError
from pybox.errors import ClientError
from pybox.formats.times import get_timestamp

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from pybox.cli.pybox import Cli


def cmd_logs(cli: Cli, argv: list[str], command: str) -> int:
    fs = FlagSet(command, f"{command} [OPTIONS] CONTAINER", "Fetch the logs of a container",
                 exact_args=1)
    fs.add("details", kind="bool", help="Show extra details provided to logs")
    fs.add("follow", "f", "bool", help="Follow log output")
    fs.add("since", help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
                         'relative (e.g. "42m" for 42 minutes)')
    fs.add("tail", "n", default="all", help='Number of lines to show from the end of the '
                                            'logs (default "all")')
    fs.add("timestamps", "t", "bool", help="Show timestamps")
    fs.add("until", help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                         'relative (e.g. "42m" for 42 minutes)')
    opts = fs.parse(argv)
    name = opts.args[0]
    client = cli.client
    info = client.get_json(container_path(name, "/json"))
    try:
        since = get_timestamp(opts.since) if opts.since else None
        until = get_timestamp(opts.until) if opts.until else None
    except ValueError as err:
        raise ClientError(str(err)) from None
    query = {"stdout": 1, "stderr": 1, "since": since, "until": until,
             "timestamps": 1 if opts.timestamps else None,
             "follow": 1 if opts.follow else None, "tail": opts.tail,
             "details": 1 if opts.details else None}
    resp = client.request("GET", container_path(info["Id"], "/logs"), query=query)
    tty = bool((info.get("Config") or {}).get("Tty"))
    cli.flush()
    demux = None if tty else Demuxer()
    try:
        for data in resp.iter_body():
            if demux is None:
                write_all(1, data)
                continue
            try:
                frames = demux.feed(data)
            except StreamError as err:
                raise ClientError(str(err)) from None
            for stream, payload in frames:
                write_all(2 if stream == 2 else 1, payload)
    except KeyboardInterrupt:
        resp.close()
        return 130
    return 0
