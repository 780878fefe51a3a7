"""pyboxd: the engine daemon, serving the Docker Engine API.

    pyboxd [-H unix:///run/pybox/pybox.sock ...] [--data-root /var/lib/pybox]
           [--exec-root /run/pybox] [--pidfile F] [--group G] [--debug]
           [--userns-remap default|USER[:GROUP]]

Start-up order matters: the monitor zygote is forked first, while pyboxd is
still single-threaded (see pybox.monitor.zygote); then running containers are
re-adopted from disk; then the API threads start.  SIGTERM/SIGINT stop the
daemon but not the containers: their monitors keep running and a restarted
pyboxd re-adopts them (containers survive engine restarts by default).
"""

import argparse
import os
import signal
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pyboxd", description=__doc__.split("\n")[0])
    p.add_argument("-H", "--host", action="append", default=[],
                   help="unix://PATH to listen on (repeatable)")
    p.add_argument("--data-root", default="/var/lib/pybox")
    p.add_argument("--exec-root", default="/run/pybox")
    p.add_argument("--pidfile", default=None)
    p.add_argument("--group", default=None, help="group allowed to use the socket")
    p.add_argument("--userns-remap", default="", metavar="default|USER[:GROUP]",
                   help="run containers in a user namespace mapped to USER's "
                        "/etc/subuid and /etc/subgid ranges ('default': dockremap)")
    p.add_argument("--debug", action="store_true")
    from pybox.engine import pull as registry_setup  # registry flags (and Engine.pull)

    registry_setup.add_arguments(p)
    p.add_argument("--no-proc-view", dest="proc_view", action="store_false",
                   help="no /proc view (lxcfs-like /proc/meminfo, cpuinfo...) for containers")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    hosts = args.host or ["unix:///run/pybox/pybox.sock"]
    paths = []
    for h in hosts:
        if not h.startswith("unix://"):
            sys.stderr.write(f"pyboxd: only unix:// sockets are supported, not {h!r}\n")
            return 2
        paths.append(h[len("unix://"):])
    os.makedirs(args.data_root, mode=0o711, exist_ok=True)
    os.makedirs(args.exec_root, mode=0o711, exist_ok=True)

    from pybox import __version__
    from pybox.api import build_router
    from pybox.api.server import SERVER, Server
    from pybox.engine.engine import Engine
    from pybox.engine.images import ImageService

    from pybox.engine.remap import check_reachable, parse_option
    from pybox.errors import PyboxError

    try:
        remap = parse_option(args.userns_remap)
        check_reachable(remap, args.data_root)
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1
    images = ImageService(args.data_root)
    engine = Engine(args.data_root, args.exec_root, images=images, userns_remap=remap)
    try:
        from pybox.engine import pull as registry_setup

        registry_setup.configure(engine, args)  # insecure registries, mirrors
    except PyboxError as e:
        sys.stderr.write(f"pyboxd: {e}\n")
        return 1

    def container_running(cid):
        c = engine.store.by_id.get(cid)
        return bool(c and c.state.get("Running"))

    images.images.container_running = container_running
    engine.start_zygote()  # before any thread exists
    engine.procview.enabled = args.proc_view
    engine.procview.start()  # the /proc view's server, supervised (a thread)
    if args.pidfile:
        from pybox.oci.state import write_atomic

        write_atomic(args.pidfile, str(os.getpid()), mode=0o644)
    engine.recover()
    server = Server(build_router(engine), SERVER.format(version=__version__))
    gid = None
    if args.group:
        import grp

        gid = grp.getgrnam(args.group).gr_gid
    for path in paths:
        server.listen_unix(path, group=gid)

    def stop(signum, frame):
        engine.stopping = True
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # as dockerd's SIGUSR1: every thread's stack into the log, for a daemon that hangs
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.stderr.write(f"pyboxd {__version__}: serving {', '.join(paths)}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.shutdown()
        engine.network.shutdown()  # running containers keep their networking
        engine.procview.shutdown()  # kept while running containers use it
        try:
            os.kill(engine.zygote_pid, signal.SIGTERM)
            os.waitpid(engine.zygote_pid, 0)
        except OSError:
            pass
        engine.release_cgroup_parent()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
