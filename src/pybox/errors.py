"""One exception hierarchy for all of pybox.

Every error pybox raises on purpose is a PyboxError.  It carries what a user (or a
calling tool such as containerd, which parses our --log) needs to act: a message
that names the object and the operation, and the errno when the kernel said no.
Layers subclass it; the CLIs map the classes to exit codes and the API (later) to
HTTP status codes.  Nothing here imports anything heavy: this module sits on the
runtime's start-up path.
"""

import os


class PyboxError(Exception):
    """Base class.  ``str(err)`` is the one line the CLI prints."""

    def __init__(self, message, *, errno=None) -> None:
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return self.message


class SyscallError(PyboxError, OSError):
    """A system call failed.  Is an OSError too, so ``except OSError`` and ``.errno``
    work as for any failed os.* call; keeps the call's name and its arguments."""

    def __init__(self, err, call, args=(), context=None) -> None:
        OSError.__init__(self, err, os.strerror(err))
        self.message = None
        self.call = call
        self.call_args = tuple(args)
        self.context = context

    def __str__(self) -> str:
        shown = ", ".join(_short(a) for a in self.call_args)
        text = f"{self.call}({shown}): {self.strerror}"
        return f"{self.context}: {text}" if self.context else text


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ConfigError(PyboxError):
    """config.json (or process.json) is malformed or violates the runtime spec.
    The message starts with the JSON path of the offending field."""

    def __init__(self, path, problem) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ContainerError(PyboxError):
    """An operation on a container is impossible in its current state."""


class ContainerNotFound(ContainerError):
    def __init__(self, cid) -> None:
        super().__init__(f"container {cid!r} does not exist", errno=2)
        self.cid = cid


class ContainerExists(ContainerError):
    def __init__(self, cid) -> None:
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


# -- the engine's answers, mapped to HTTP status codes by the API -------------


class NotFound(PyboxError):
    """No such container, image, exec, volume, network... (404)."""


class Conflict(PyboxError):
    """The object is in a state or use that forbids the request (409)."""


class NotModified(PyboxError):
    """Nothing to do: start of a running container, stop of a stopped one (304)."""


class BadRequest(PyboxError):
    """The request itself is invalid (400)."""


# -- the image store (pybox.images); also the engine's kinds, for the API's codes


class ImageError(PyboxError):
    """The image store could not do what was asked: bad input (a corrupt or
    malicious tarball, a digest that does not match), a missing image or blob, a
    full disk.  When raised from an operation that writes, the store is as it was
    before the call: nothing half-registered, nothing left mounted."""


class InvalidReference(ImageError, BadRequest):
    """An image name, tag or digest that docker would reject; the message is
    docker's (``invalid reference format``...), so clients show the same text."""


class ImageNotFound(ImageError, NotFound):
    """No image matches the reference (the API answers 404 so clients can pull)."""

    def __init__(self, ref) -> None:
        super().__init__(f"No such image: {ref}", errno=2)
        self.ref = ref


class ImageInUse(ImageError, Conflict):
    """Removal refused: a container's rootfs uses the image (the API answers 409)."""


class LayerError(ImageError):
    """A layer tarball is unusable: corrupt, truncated, or a member that would
    escape the layer (``..``, a link outside it) or is not allowed (a device node)."""


class DigestMismatch(ImageError):
    """Content does not hash to the digest that names it (blob or diff-id)."""

    def __init__(self, what, expected, actual) -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class RegistryError(ImageError):
    """A registry refused or failed a request (pull, push, login), or what it sent
    is unusable (a bad manifest, a platform it does not have).  ``status`` is the
    HTTP status when there was one, ``code`` the distribution spec's error code
    (``MANIFEST_UNKNOWN``, ``DENIED``...); the message is docker's wording where
    docker has one, so users can search for it."""

    def __init__(self, message, *, status=None, code=None, errno=None) -> None:
        super().__init__(message, errno=errno)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """The registry (or its token server) refused the credentials, or wants
    some and none were given (HTTP 401)."""


class RegistryNotFound(RegistryError, NotFound):
    """The repository, tag, digest or platform is not in the registry (404)."""


class ClientError(PyboxError):
    """A failure of the pybox CLI (a Docker Engine API client).  ``exit_status`` is
    what the process exits with, following the docker CLI: 1 for a failed
    operation, 125 for run/create failures and bad flags, or the container's own
    status."""

    exit_status = 1

    def __init__(self, message, *, exit_status=None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class DaemonError(ClientError):
    """The daemon answered with an error status; ``message`` is its JSON
    ``message``.  Printed as docker prints it: ``Error response from daemon: ...``."""

    def __init__(self, status, message, *, exit_status=None) -> None:
        super().__init__(message, exit_status=exit_status)
        self.status = status

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class DaemonUnreachable(ClientError):
    """No daemon answers on the socket (and none could be started)."""


class FlagError(ClientError):
    """A bad flag or flag value: docker exits 125 for these."""

    exit_status = 125


class ExitStatus(ClientError):
    """Not an error to print: the command's result is this exit status (a
    container's StatusCode, an exec's ExitCode).  ``message`` may be empty."""

    def __init__(self, status, message: str="") -> None:
        super().__init__(message, exit_status=status)
