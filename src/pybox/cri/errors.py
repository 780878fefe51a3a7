"""pybox errors -> gRPC status codes, one rule for every CRI servicer.

containerd's CRI plugin answers with the errdefs codes of the error it met
(NotFound -> NOT_FOUND, InvalidArgument -> INVALID_ARGUMENT, AlreadyExists ->
ALREADY_EXISTS, FailedPrecondition -> FAILED_PRECONDITION, anything else ->
UNKNOWN); kubelet and critest look at the code, not at the words.  pybox's
errors carry an HTTP status (pybox.errors), so the mapping reads that status:
no table of class names.  A 409 is ambiguous (a name taken or a state that
forbids the call): the call says which it means.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from pybox.errors import PyboxError

T = TypeVar("T")

_BY_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class CRIError(PyboxError):
    """An error the CRI layer raises with its gRPC code chosen."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_code(err: BaseException, conflict: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
                ) -> grpc.StatusCode:
    """The gRPC code of ``err``; a 409 becomes ``conflict``."""
    if isinstance(err, CRIError):
        return err.code
    if isinstance(err, PyboxError):
        if err.http_status == 409:
            return conflict
        return _BY_STATUS.get(err.http_status, grpc.StatusCode.UNKNOWN)
    if isinstance(err, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.UNKNOWN


def rpc(conflict: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
        ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A servicer method's wrapper: a pybox error ends the call with its code
    and message (``context.abort``, the one place that aborts: an abort
    raises a bare Exception, which no handler here may see); anything unexpected is logged with its
    traceback (a bug of pyboxd's) and answered UNKNOWN."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def call(self: Any, request: Any, context: grpc.ServicerContext) -> T:
            try:
                return fn(self, request, context)
            except PyboxError as e:
                context.abort(status_code(e, conflict), str(e))
                raise  # abort raises; not reached
            except Exception as e:  # noqa: BLE001 - a bug answers UNKNOWN, logged
                sys.stderr.write(f"pyboxd: cri: {fn.__name__}: unexpected error:\n"
                                 + traceback.format_exc())
                sys.stderr.flush()
                context.abort(status_code(e), f"{fn.__name__}: {e}")
                raise

        return call

    return wrap


def unimplemented(what: str) -> CRIError:
    """UNIMPLEMENTED, to raise (CheckpointContainer, a streaming server not there)."""
    return CRIError(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not implemented by pyboxd")
