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

    def __init__(self, message, *, errno=None):
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self):
        return self.message


class SyscallError(PyboxError, OSError):
    """A system call failed.  Is an OSError too, so ``except OSError`` and ``.errno``
    work as for any failed os.* call; keeps the call's name and its arguments."""

    def __init__(self, err, call, args=(), context=None):
        OSError.__init__(self, err, os.strerror(err))
        self.message = None
        self.call = call
        self.call_args = tuple(args)
        self.context = context

    def __str__(self):
        shown = ", ".join(_short(a) for a in self.call_args)
        text = f"{self.call}({shown}): {self.strerror}"
        return f"{self.context}: {text}" if self.context else text


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ConfigError(PyboxError):
    """config.json (or process.json) is malformed or violates the runtime spec.
    The message starts with the JSON path of the offending field."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ContainerError(PyboxError):
    """An operation on a container is impossible in its current state."""


class ContainerNotFound(ContainerError):
    def __init__(self, cid):
        super().__init__(f"container {cid!r} does not exist", errno=2)
        self.cid = cid


class ContainerExists(ContainerError):
    def __init__(self, cid):
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
