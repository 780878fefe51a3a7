"""pyboxd's gRPC server for the CRI: RuntimeService and ImageService on a unix socket.

One ``grpc.server`` with a thread pool (kubelet keeps a few calls and one
GetContainerEvents stream open; critest runs specs in parallel), listening
on ``unix://SOCKET`` (default /run/pybox/cri.sock, beside the Docker API
socket: EXEC_ROOT/cri.sock), serving cri/runtime_service.py's RuntimeService
and cri/images.py's ImageService.

Threads: start() must come after the monitor zygote is forked (pyboxd's
order; grpc's threads start here).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import grpc
from cri_api.v1 import api_pb2_grpc

from pybox.cri.images import ImageService
from pybox.cri.options import CRIOptions
from pybox.cri.runtime_service import RuntimeService
from pybox.engine.engine import Engine
from pybox.errors import PyboxError

MAX_WORKERS = 64
BIND_DIR_SUFFIX = ".bind-"  # start()'s private directory beside the socket: .NAME.bind-XXXXXXXX
MAX_MESSAGE = 16 * 1024 * 1024  # kubelet's own limit (ListContainers on a busy node)


def answers(path: str) -> bool:
    """Whether a process accepts connections on the unix socket ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def bind_dir_prefix(path: str) -> str:
    return "." + os.path.basename(path) + BIND_DIR_SUFFIX


def remove_stale_bind_dirs(path: str) -> None:
    """The private directories start() made for the socket ``path`` that a
    pyboxd killed mid-bind left (only those: the directory may hold other
    daemons' sockets)."""
    directory = os.path.dirname(path) or "."
    prefix = bind_dir_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class CRIServer:
    """The CRI's gRPC server, for one engine."""

    def __init__(self, engine: Engine, options: CRIOptions) -> None:
        self.engine = engine
        self.options = options
        self.images = ImageService(engine, options)
        self.runtime = RuntimeService(engine, options)
        # a configured sandbox image is pulled as kubelet's pulls are (the CRI's mirrors)
        self.runtime.pods.pull = self.images.pull  # NAME alone is NAME:latest
        self.server: grpc.Server | None = None

    def start(self) -> None:
        """Listen on the socket (PyboxError if another process serves it) and serve."""
        path = self.options.socket
        if answers(path):
            raise PyboxError(f"{path}: another process is listening on this socket "
                             "(is another pyboxd or containerd running?)")
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o711, exist_ok=True)
        remove_stale_bind_dirs(path)
        server = grpc.server(ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                                thread_name_prefix="cri"),
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)])
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(self.runtime, server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(self.images, server)
        # grpc binds the path itself, with the process's umask, which other
        # threads rely on (a umask changed around the bind would be theirs
        # too): it binds in a private 0700 directory, the socket gets its mode
        # and group there, and only then is it renamed into place, so the
        # socket is 0660 root:GROUP from the moment anyone can reach it
        private = tempfile.mkdtemp(prefix=bind_dir_prefix(path), dir=directory)
        bound = os.path.join(private, "s")
        try:
            try:
                server.add_insecure_port("unix://" + bound)
            except RuntimeError as e:
                raise PyboxError(f"cannot listen on {path}: {e}") from None
            os.chmod(bound, 0o660)
            if self.options.group is not None:
                os.chown(bound, 0, self.options.group)
            os.rename(bound, path)  # (replaces a stale socket a killed pyboxd left)
        finally:
            shutil.rmtree(private, ignore_errors=True)
        server.start()
        self.server = server

    def stop(self) -> None:
        """Stop serving (calls under way get a second), remove the socket."""
        if self.server is not None:
            self.server.stop(grace=1).wait(5)
            self.server = None
        try:
            self.runtime.close()
        except Exception as e:  # noqa: BLE001 - shutting down: report, go on
            sys.stderr.write(f"pyboxd: cri: closing: {e}\n")
        try:
            os.unlink(self.options.socket)
        except OSError:
            pass
