"""Outbound gRPC channels of a worker: one per target, traced, closed when the worker stops."""

from __future__ import annotations

import json
from typing import Final

import grpc
from opentelemetry import trace

from services.runtime._policy import channel_options
from services.runtime._tracing import ClientInterceptor

#: On top of the call policy's channel_options (gRPC retries off, reconnect backoff capped).
CHANNEL_OPTIONS: Final = channel_options(
    # A peer restarted by its supervisor is back in ~20-200 ms; gRPC's default first reconnect
    # backoff of 1 s would keep calls failing for five times that.
    ("grpc.initial_reconnect_backoff_ms", 100),
    # ... and its default cap of 120 s would keep a peer that was down for a minute unreachable for
    # another two after it is back (the channels workers' peers are other nodes, down for a while).
    ("grpc.max_reconnect_backoff_ms", 1000),
    # A dns:/// target naming a headless Kubernetes service resolves to every pod; spread calls
    # over them instead of pinning the first. Harmless with one address.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
)


class Channels:
    """Channel cache keyed by target address."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._interceptors = [ClientInterceptor(tracer)]
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(
                address, options=CHANNEL_OPTIONS, interceptors=self._interceptors
            )
            self._channels[address] = channel
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
