"""Errors of the supervisor API, named after OTP's error reasons."""

from __future__ import annotations


class SupervisorError(Exception):
    """Base class; ``reason`` is the OTP-style atom for programs, ``str()`` the words for people."""

    reason = "error"


class InvalidSpec(SupervisorError, ValueError):
    reason = "invalid_spec"


class NotFound(SupervisorError, LookupError):
    reason = "not_found"


class AlreadyPresent(SupervisorError):
    """start_child with the id of a spec that exists but does not run."""

    reason = "already_present"


class AlreadyStarted(SupervisorError):
    """start_child with the id of a child that runs."""

    reason = "already_started"


class Running(SupervisorError):
    """restart_child or delete_child on a child that runs."""

    reason = "running"


class Restarting(SupervisorError):
    """restart_child or delete_child on a child the supervisor is restarting."""

    reason = "restarting"


class MaxChildren(SupervisorError):
    reason = "max_children"


class StartFailed(SupervisorError):
    """A child did not become ready; ``child_id`` names it."""

    reason = "start_failed"

    def __init__(self, child_id: str, why: str) -> None:
        super().__init__(f"child {child_id} failed to start: {why}")
        self.child_id = child_id
        self.why = why


class NotRunning(SupervisorError):
    """An API call on a supervisor that is not (or no longer) running."""

    reason = "not_running"


class Shutdown(SupervisorError):
    """The supervisor stopped all children and gave up (restart intensity, auto_shutdown)."""

    reason = "shutdown"
