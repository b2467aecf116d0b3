"""Waiting for a worker process the tests started: readiness is health, never an open port.

A worker opens its port while it starts (services/runtime/_router.py) and answers every call but
health's UNAVAILABLE "the worker is starting" until its services are in; a test that calls as soon as
the channel connects races that (it failed a clean-clone CI run). The one definition tests use."""

from __future__ import annotations

import contextlib
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def wait_serving(channel: grpc.Channel, timeout_s: float = 30, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until the worker behind ``channel`` answers health SERVING; fails early if ``proc`` exits."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode} before SERVING")
        with contextlib.suppress(grpc.RpcError):
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1, wait_for_ready=True)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker was not SERVING after {timeout_s} s")
        time.sleep(0.02)
