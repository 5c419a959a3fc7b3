"""Exceptions that map to the CLI's exit codes (design §8)."""

from __future__ import annotations


class ReadbenchError(Exception):
    """Base class; exit code 1 means a bug, so only subclasses are raised on purpose."""

    exit_code = 1


class BadInput(ReadbenchError):
    """The user asked for something invalid: exit 2. The message names the input and the rule."""

    exit_code = 2


class MissingCapability(ReadbenchError):
    """The machine cannot do what was asked (root, kernel feature, tool): exit 3.
    The message says which capability and how to get it."""

    exit_code = 3


class MeasurementError(ReadbenchError):
    """A read failed or came up short inside a timed loop: the batch is void, exit 1."""

    exit_code = 1
