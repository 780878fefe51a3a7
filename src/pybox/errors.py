"""One exception hierarchy for all of pybox.

Every error pybox raises on purpose is a PyboxError.  It carries what a user (or a
calling tool such as containerd, which parses our --log) needs to act: a message
that names the object and the operation, and the errno when the kernel said no.
Layers subclass it; the CLIs map the classes to exit codes, and each class
carries the HTTP status the API answers it with (``http_status``, inherited: a
class states its own only where it differs from its first base's), so the API
needs no table of its own.  Every error class pybox raises on purpose is here,
whatever layer raises it.  Nothing here imports anything heavy (only ``os``):
this module sits on the runtime's start-up path.
"""

import os


class PyboxError(Exception):
    """Base class.  ``str(err)`` is the one line the CLI prints.  Unless a
    subclass says otherwise, the API answers it with 500: something went wrong
    in pybox or below it, not in the request."""

    http_status: int = 500
    message: str | None
    errno: int | None  # set only when the kernel said no (as OSError's)

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return self.message or ""


class SyscallError(PyboxError, OSError):
    """A system call failed.  Is an OSError too, so ``except OSError`` and ``.errno``
    work as for any failed os.* call; keeps the call's name and its arguments."""

    def __init__(self, err: int, call: str, args: tuple[object, ...] | list[object] = (),
                 context: str | None = None) -> None:
        OSError.__init__(self, err, os.strerror(err))
        self.message = None
        self.call = call
        self.call_args = tuple(args)
        self.context = context

    def __str__(self) -> str:
        shown = ", ".join(_short(a) for a in self.call_args)
        text = f"{self.call}({shown}): {self.strerror}"
        return f"{self.context}: {text}" if self.context else text


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ConfigError(PyboxError):
    """config.json (or process.json) is malformed or violates the runtime spec.
    The message starts with the JSON path of the offending field."""

    http_status = 400

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ContainerError(PyboxError):
    """An operation on a container is impossible in its current state."""


class ContainerNotFound(ContainerError):
    http_status = 404

    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid!r} does not exist", errno=2)
        self.cid = cid


class ContainerExists(ContainerError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid!r} already exists", errno=17)
        self.cid = cid


class InvalidState(ContainerError):
    """E.g. start of a running container, delete of a running one without --force."""


class CgroupError(PyboxError):
    """A cgroup could not be created, configured, joined or removed."""


class RootfsError(PyboxError):
    """The container's root filesystem could not be prepared."""


class ProcessSetupError(PyboxError):
    """The container process could not be set up or started (user, caps, exec)."""


class UsageError(PyboxError):
    """Bad command line."""

    http_status = 400


class Locked(PyboxError):
    """Another process holds a lock pyboxd needs; ``pid`` is that process (0
    when it cannot be told, e.g. from another pid namespace)."""

    def __init__(self, path: str, pid: int) -> None:
        super().__init__(f"{path} is locked by pid {pid}")
        self.path = path
        self.pid = pid


class LockError(PyboxError):
    """pyboxd cannot take one of its locks: the message is the one line shown."""


class DaemonConfigError(PyboxError):
    """pyboxd's configuration (flags and daemon.json) is wrong: the message is
    the one line pyboxd shows before it exits, having changed nothing."""


class HookError(PyboxError):
    """An OCI hook failed or timed out (pybox.runtime.hooks)."""


class ChannelClosed(PyboxError):
    """The other end of the runtime's parent/child socketpair went away
    (pybox.runtime.sync)."""


# -- networking (pybox.network) ---------------------------------------------------


class NetnsError(PyboxError):
    """A network namespace could not be created, entered or removed."""


class LinkError(PyboxError):
    """A link, address or route could not be made or removed."""


class FirewallError(PyboxError):
    """nftables refused a change."""


# -- the /proc view (pybox.procview) ------------------------------------------------


class ProcViewError(PyboxError):
    """The /proc view server cannot run here or did not come up."""


# -- the engine's answers, mapped to HTTP status codes by the API -------------


class NotFound(PyboxError):
    """No such container, image, exec, volume, network... (404)."""

    http_status = 404


class Conflict(PyboxError):
    """The object is in a state or use that forbids the request (409)."""

    http_status = 409


class NotModified(PyboxError):
    """Nothing to do: start of a running container, stop of a stopped one (304)."""

    http_status = 304


class BadRequest(PyboxError):
    """The request itself is invalid (400)."""

    http_status = 400


class DockerfileParseError(BadRequest):
    """A Dockerfile (or a word in it) that docker's parser refuses; the message is
    docker's ("Dockerfile parse error line 3: unknown instruction: FORM") (400)."""


class BuildError(PyboxError):
    """A build that failed in a step (a RUN that exited non-zero, a COPY source
    missing, a FROM image not found): docker's words ("The command '/bin/sh -c
    false' returned a non-zero code: 1").  ``code`` is the step's exit code, the
    stream's errorDetail.code, which the docker CLI exits with."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class RequestTooLarge(BadRequest):
    """A body over the limit of what the API reads into memory (413)."""

    http_status = 413


class Unavailable(PyboxError):
    """No thread can be had for a request that would wait on its client (503)."""

    http_status = 503


class NotInSwarm(Unavailable):
    """Swarm mode: pybox is always a node that is not part of a swarm, and says
    so as such a dockerd does (503, its words), so clients that probe or clean
    up swarm state (docker-py's leave_swarm(force=True)) go on."""


class SpecError(PyboxError):
    """A container configuration that cannot be turned into a runtime spec (400)."""

    http_status = 400


class Unsupported(PyboxError):
    """This machine cannot do what a container asks (--storage-opt without disk
    quotas, --gpus with no device driver): dockerd's words, and its 500."""


class StartError(PyboxError):
    """The runtime refused to start the container (400, message decides the CLI's
    exit code: 127 not found, 126 permission, else 125)."""

    http_status = 400


class LogDriverError(PyboxError):
    """A container's log driver cannot start (a syslog server that refuses, an
    option its start cannot use): dockerd's 'failed to initialize logging
    driver: ...', its 500; the start leaves nothing behind."""


class LogsNotReadable(PyboxError):
    """The container's log driver cannot be read back (none; syslog with its
    cache disabled): dockerd's 'configured logging driver does not support
    reading', its 501 (errdefs.NotImplemented)."""

    http_status = 501


class NetworkError(Conflict):
    """Networking could not be set up for a container: the start fails, with
    a message saying why, and leaves nothing behind (409: the host's state,
    not pyboxd, is what stands in the way -- a bridge replaced by another
    kind of link, a kernel refusing a veth)."""


class CNIPluginError(NetworkError):
    """A CNI plugin failed (pybox.network.cni): ``code``, ``msg`` and
    ``details`` are the plugin's own error object (the CNI spec's), so a caller
    can tell "try again later" (code 11) from a broken configuration (7) and
    show the plugin's words; ``plugin`` and ``command`` say which plugin did
    what (``type="bridge" name="net"``, ``ADD``)."""

    def __init__(self, message: str, *, plugin: str = "", command: str = "", code: int = 0,
                 msg: str = "", details: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details


# -- the image store (pybox.images); also the engine's kinds, for the API's codes


class ImageError(PyboxError):
    """The image store could not do what was asked: bad input (a corrupt or
    malicious tarball, a digest that does not match), a missing image or blob, a
    full disk.  When raised from an operation that writes, the store is as it was
    before the call: nothing half-registered, nothing left mounted.  The API
    answers 400 (what the client sent or named is unusable)."""

    http_status = 400


class InvalidReference(ImageError, BadRequest):
    """An image name, tag or digest that docker would reject; the message is
    docker's (``invalid reference format``...), so clients show the same text."""


class ImageNotFound(ImageError, NotFound):
    """No image matches the reference (the API answers 404 so clients can pull)."""

    http_status = 404

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}", errno=2)
        self.ref = ref


class ImageInUse(ImageError, Conflict):
    """Removal refused: a container's rootfs uses the image (the API answers 409)."""

    http_status = 409


class LayerError(ImageError):
    """A layer tarball is unusable: corrupt, truncated, or a member that would
    escape the layer (``..``, a link outside it) or is not allowed (a device node)."""


class DigestMismatch(ImageError):
    """Content does not hash to the digest that names it (blob or diff-id)."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class RegistryError(ImageError):
    """A registry refused or failed a request (pull, push, login), or what it sent
    is unusable (a bad manifest, a platform it does not have).  ``status`` is the
    HTTP status when there was one, ``code`` the distribution spec's error code
    (``MANIFEST_UNKNOWN``, ``DENIED``...); the message is docker's wording where
    docker has one, so users can search for it.  The API answers 500 (as
    dockerd: the registry, not the request, failed); only pull, push and login
    raise it."""

    http_status = 500

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 errno: int | None = None) -> None:
        super().__init__(message, errno=errno)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """The registry (or its token server) refused the credentials, or wants
    some and none were given (HTTP 401)."""

    http_status = 401


class PullAccessDenied(AuthenticationError):
    """A pull the registry refused: ``pull access denied for NAME, repository
    does not exist or may require 'docker login'``.  404, as dockerd's
    notFoundError: the docker CLI then says the repository does not exist."""

    http_status = 404


class RegistryNotFound(RegistryError, NotFound):
    """The repository, tag, digest or platform is not in the registry (404)."""

    http_status = 404


class InvalidAuthHeader(AuthenticationError, BadRequest):
    """An X-Registry-Auth header that does not decode (moby's
    errInvalidParameter: a 400, not the registry's 401)."""

    http_status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid X-Registry-Auth header: {reason}", status=400)


class ClientError(PyboxError):
    """A failure of the pybox CLI (a Docker Engine API client).  ``exit_status`` is
    what the process exits with, following the docker CLI: 1 for a failed
    operation, 125 for run/create failures and bad flags, or the container's own
    status."""

    exit_status = 1

    def __init__(self, message: str, *, exit_status: int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class DaemonError(ClientError):
    """The daemon answered with an error status; ``message`` is its JSON
    ``message``.  Printed as docker prints it: ``Error response from daemon: ...``."""

    def __init__(self, status: int, message: str, *, exit_status: int | None = None) -> None:
        super().__init__(message, exit_status=exit_status)
        self.status = status

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class DaemonUnreachable(ClientError):
    """No daemon answers on the socket (and none could be started)."""


class FlagError(ClientError):
    """A bad flag or flag value: docker exits 125 for these."""

    exit_status = 125


class TemplateError(ClientError):
    """A --format template that does not parse or execute (Go's text/template
    wording after ``template: ``)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"template: {message}", exit_status=1)


class ExitStatus(ClientError):
    """Not an error to print: the command's result is this exit status (a
    container's StatusCode, an exec's ExitCode).  ``message`` may be empty."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message, exit_status=status)
