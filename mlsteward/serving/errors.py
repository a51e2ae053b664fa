"""One error family for the server: each error carries its HTTP status and a message naming the thing.

The HTTP layer (:mod:`mlsteward.serving.app`) catches :class:`ServingError` in one place and
writes the protocol's body ``{"error": message}`` with ``status``. A client's mistake is always
one of the 4xx classes below; anything else that escapes a handler is logged and answered 500
(the fuzz tests prove no input gets there).
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: an answer the server gives on purpose."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(ServingError):
    """The request is malformed or does not fit the model's inputs (wrong shape, datatype, name...)."""

    status = 400


class NotFoundError(ServingError):
    """Unknown path, model or version."""

    status = 404


class MethodNotAllowedError(ServingError):
    status = 405


class PayloadTooLargeError(ServingError):
    """The body or the number of rows exceeds the configured limit."""

    status = 413


class UnsupportedMediaTypeError(ServingError):
    status = 415


class UnavailableError(ServingError):
    """No model is ready (loading, failed verification, draining)."""

    status = 503
