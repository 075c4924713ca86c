"""The local stack: Postgres, Redis, the four services and the nginx gateway, for `make run` and tests."""

from .ports import free_port, free_ports
from .stack import Stack, StackError

__all__ = ["Stack", "StackError", "free_port", "free_ports"]
