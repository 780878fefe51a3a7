"""``pybox``: the docker command line, as a client of pyboxd's Docker Engine API.

    pybox [-H unix://SOCKET] [-D] COMMAND [OPTIONS] [ARGS...]

Every command is one or a few HTTP requests to the daemon, the same requests
the docker CLI sends (../shared/docs/docker-api/README.md), so pybox works
against pyboxd and against a real dockerd alike.  Start-up matters (``pybox run``
is benchmarked against podman), so this module imports almost nothing: the
command's module is imported when the command runs, and the HTTP client speaks
HTTP/1.1 on ``_socket`` itself (see client.py for why not h11).

The daemon's address: ``-H``/``--host``, else ``$PYBOX_HOST``, else
unix:///run/pybox/pybox.sock.  Only with that default (no -H, no PYBOX_HOST) is
pyboxd started in the background when nothing answers (see daemon.py).
"""

import os
import sys

from pybox import __version__
from pybox.cli.pybox.client import APIClient
from pybox.cli.pybox.daemon import autostart_hook
from pybox.cli.pybox.flags import HelpRequested
from pybox.errors import ClientError, ExitStatus
from pybox.locations import DEFAULT_HOST

PROG = "pybox"

# command -> (module, function); "group sub" for management commands.
COMMANDS = {
    "create": ("containers", "cmd_create"),
    "run": ("containers", "cmd_run"),
    "start": ("containers", "cmd_start"),
    "stop": ("containers", "cmd_stop"),
    "kill": ("containers", "cmd_kill"),
    "pause": ("containers", "cmd_pause"),
    "unpause": ("containers", "cmd_unpause"),
    "restart": ("containers", "cmd_restart"),
    "rm": ("containers", "cmd_rm"),
    "wait": ("containers", "cmd_wait"),
    "ps": ("containers", "cmd_ps"),
    "attach": ("containers", "cmd_attach"),
    "rename": ("containers", "cmd_rename"),
    "port": ("containers", "cmd_port"),
    "top": ("containers", "cmd_top"),
    "update": ("containers", "cmd_update"),
    "diff": ("containers", "cmd_diff"),
    "export": ("containers", "cmd_export"),
    "commit": ("containers", "cmd_commit"),
    "stats": ("stats", "run"),
    "cp": ("copy", "run"),
    "exec": ("exec", "cmd_exec"),
    "logs": ("logs", "cmd_logs"),
    "images": ("images", "cmd_images"),
    "import": ("images", "cmd_import"),
    "load": ("images", "cmd_load"),
    "save": ("images", "cmd_save"),
    "tag": ("images", "cmd_tag"),
    "rmi": ("images", "cmd_rmi"),
    "history": ("images", "cmd_history"),
    "pull": ("images", "cmd_pull"),
    "push": ("registry", "cmd_push"),
    "login": ("registry", "cmd_login"),
    "logout": ("registry", "cmd_logout"),
    "inspect": ("system", "cmd_inspect"),
    "info": ("system", "cmd_info"),
    "version": ("system", "cmd_version"),
    "events": ("system", "cmd_events"),
    "explain": ("explain", "cmd_explain"),
    "build": ("build", "cmd_build"),
    # management commands
    "container attach": ("containers", "cmd_attach"),
    "container create": ("containers", "cmd_create"),
    "container run": ("containers", "cmd_run"),
    "container start": ("containers", "cmd_start"),
    "container stop": ("containers", "cmd_stop"),
    "container kill": ("containers", "cmd_kill"),
    "container pause": ("containers", "cmd_pause"),
    "container unpause": ("containers", "cmd_unpause"),
    "container restart": ("containers", "cmd_restart"),
    "container rm": ("containers", "cmd_rm"),
    "container remove": ("containers", "cmd_rm"),
    "container wait": ("containers", "cmd_wait"),
    "container ls": ("containers", "cmd_ps"),
    "container list": ("containers", "cmd_ps"),
    "container ps": ("containers", "cmd_ps"),
    "container inspect": ("system", "cmd_container_inspect"),
    "container exec": ("exec", "cmd_exec"),
    "container explain": ("explain", "cmd_explain"),
    "container logs": ("logs", "cmd_logs"),
    "container rename": ("containers", "cmd_rename"),
    "container port": ("containers", "cmd_port"),
    "container top": ("containers", "cmd_top"),
    "container update": ("containers", "cmd_update"),
    "container diff": ("containers", "cmd_diff"),
    "container export": ("containers", "cmd_export"),
    "container commit": ("containers", "cmd_commit"),
    "container stats": ("stats", "run"),
    "container cp": ("copy", "run"),
    "container prune": ("containers", "cmd_container_prune"),
    "image build": ("build", "cmd_build"),
    "builder build": ("build", "cmd_build"),
    "builder prune": ("build", "cmd_builder_prune"),
    "image ls": ("images", "cmd_images"),
    "image list": ("images", "cmd_images"),
    "image import": ("images", "cmd_import"),
    "image load": ("images", "cmd_load"),
    "image save": ("images", "cmd_save"),
    "image tag": ("images", "cmd_tag"),
    "image rm": ("images", "cmd_rmi"),
    "image remove": ("images", "cmd_rmi"),
    "image history": ("images", "cmd_history"),
    "image inspect": ("images", "cmd_image_inspect"),
    "image pull": ("images", "cmd_pull"),
    "image push": ("registry", "cmd_push"),
    "image prune": ("images", "cmd_image_prune"),
    "system info": ("system", "cmd_info"),
    "system events": ("system", "cmd_events"),
    "system df": ("system", "cmd_df"),
    "system prune": ("system", "cmd_system_prune"),
    "volume create": ("volumes", "cmd_create"),
    "volume ls": ("volumes", "cmd_ls"),
    "volume list": ("volumes", "cmd_ls"),
    "volume inspect": ("volumes", "cmd_inspect"),
    "volume rm": ("volumes", "cmd_rm"),
    "volume remove": ("volumes", "cmd_rm"),
    "volume prune": ("volumes", "cmd_prune"),
    "network create": ("networks", "cmd_create"),
    "network ls": ("networks", "cmd_ls"),
    "network list": ("networks", "cmd_ls"),
    "network inspect": ("networks", "cmd_inspect"),
    "network rm": ("networks", "cmd_rm"),
    "network remove": ("networks", "cmd_rm"),
    "network connect": ("networks", "cmd_connect"),
    "network disconnect": ("networks", "cmd_disconnect"),
    "network prune": ("networks", "cmd_prune"),
}
GROUPS = ("container", "image", "system", "volume", "network", "builder")

SUMMARY = """
Usage:  pybox [OPTIONS] COMMAND

A client for pyboxd (and any Docker Engine API daemon), with docker's commands

Common Commands:
  run         Create and run a new container from an image
  build       Build an image from a Dockerfile
  exec        Execute a command in a running container
  ps          List containers
  images      List images
  pull        Download an image from a registry
  push        Upload an image to a registry
  import      Import the contents from a tarball to create a filesystem image
  login       Authenticate to a registry
  logout      Log out from a registry
  info        Display system-wide information
  version     Show the pybox version information

Management Commands:
  builder     Manage builds
  container   Manage containers
  image       Manage images
  network     Manage networks
  system      Manage pybox
  volume      Manage volumes

Commands:
  attach      Attach local standard input, output, and error streams to a running container
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  explain     Show the kernel objects behind a container (pybox's own)
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  inspect     Return low-level information on pybox objects
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  port        List port mappings or a specific mapping for the container
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  update      Update configuration of one or more containers
  wait        Block until one or more containers stop, then print their exit codes

Global Options:
  -D, --debug          Enable debug mode
  -H, --host string    Daemon socket to connect to (unix://PATH; default
                       $PYBOX_HOST or unix:///run/pybox/pybox.sock)
  -l, --log-level string
                       Set the logging level (accepted, ignored)
  -v, --version        Print version information and quit

Run 'pybox COMMAND --help' for more information on a command.
"""


class Cli:
    """What every command gets: the daemon address, a lazily made API client,
    and the output streams."""

    def __init__(self, host: str | None=None, debug: bool=False) -> None:
        from_env = os.environ.get("PYBOX_HOST") or None
        self.explicit_host = bool(host or from_env)
        self.host = host or from_env or DEFAULT_HOST
        self.debug = debug
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            hook = None
            if not self.explicit_host:
                hook = autostart_hook(self.host)
            self._client = APIClient(self.host, connect_hook=hook)
        return self._client

    @staticmethod
    def out(text: str) -> None:
        sys.stdout.write(text)

    @staticmethod
    def err(text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        sys.stderr.flush()


def _parse_globals(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    host = None
    debug = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-H", "--host"):
            if i + 1 >= len(argv):
                raise ClientError("flag needs an argument: --host", exit_status=125)
            host = argv[i + 1]
            i += 2
        elif arg.startswith("--host="):
            host = arg[len("--host="):]
            i += 1
        elif arg.startswith("-H") and len(arg) > 2:
            host = arg[2:].lstrip("=")
            i += 1
        elif arg in ("-D", "--debug"):
            debug = True
            i += 1
        elif arg == "--config" or arg.startswith("--config="):
            # docker's location of client config files (config.json: logins,
            # credential helpers): the same as DOCKER_CONFIG, which it overrides
            if arg == "--config":
                if i + 1 >= len(argv):
                    raise ClientError("flag needs an argument: --config", exit_status=125)
                os.environ["DOCKER_CONFIG"] = argv[i + 1]
                i += 2
            else:
                os.environ["DOCKER_CONFIG"] = arg[len("--config="):]
                i += 1
        elif arg in ("-l", "--log-level", "-c", "--context"):
            i += 2
        elif arg.startswith(("--log-level=", "--context=")):
            i += 1
        elif arg in ("-v", "--version"):
            return host, debug, ["--version"]
        elif arg in ("-h", "--help"):
            return host, debug, ["--help"]
        elif arg.startswith("-") and arg != "-":
            raise ClientError(f"unknown flag: {arg}\nSee '{PROG} --help'.", exit_status=125)
        else:
            break
    return host, debug, argv[i:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cli = None
    try:
        try:
            host, debug, rest = _parse_globals(argv)
            if not rest or rest[0] == "--help" or rest == ["help"]:
                sys.stdout.write(SUMMARY.lstrip("\n") if rest else SUMMARY)
                return 0
            if rest[0] == "--version":
                sys.stdout.write(f"pybox version {__version__}\n")
                return 0
            cli = Cli(host, debug)
            name = rest[0]
            args = rest[1:]
            if name in GROUPS:
                if not args or args[0] in ("--help", "-h"):
                    sys.stdout.write(_group_help(name))
                    return 0
                name = f"{name} {args[0]}"
                args = args[1:]
            target = COMMANDS.get(name)
            if target is None:
                if name.split()[0] in GROUPS:
                    raise ClientError(f"{PROG}: unknown command: {PROG} {name}\n\n"
                                      f"Run '{PROG} {name.split()[0]} --help' for more "
                                      "information")
                raise ClientError(f"{PROG}: unknown command: {PROG} {name}\n\n"
                                  f"Run '{PROG} --help' for more information")
            module_name, function = target
            module = __import__(f"pybox.cli.pybox.{module_name}", fromlist=[function])
            rc = getattr(module, function)(cli, args, f"{PROG} {name}")
            return rc or 0
        finally:
            if cli is not None:
                cli.flush()
    except HelpRequested as help_text:
        sys.stdout.write(help_text.text)
        return 0
    except ExitStatus as status:
        if status.message:
            sys.stderr.write(status.message.rstrip("\n") + "\n")
        return status.exit_status
    except ClientError as err:
        sys.stderr.write(str(err).rstrip("\n") + "\n")
        return err.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (``pybox logs c | head``): end quietly, as docker does
        # (Go dies of SIGPIPE), and leave later flushes a harmless target
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
        except OSError:
            pass
        return 141


def _group_help(group: str) -> str:
    subs = sorted(name.split()[1] for name in COMMANDS if name.startswith(group + " "))
    return (f"\nUsage:  {PROG} {group} COMMAND\n\nManage {group}s\n\nCommands:\n"
            + "".join(f"  {s}\n" for s in subs)
            + f"\nRun '{PROG} {group} COMMAND --help' for more information on a command.\n")
