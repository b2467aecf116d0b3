"""The node's JSON-RPC probe: how the supervisor learns that an L1 node (anvil) is up and well."""

from __future__ import annotations

import pytest

from l2node.node.l1 import JsonRpcProbe, free_loopback_port
from supervisor import ProbeFailed
from tests.l1.anvil import Anvil


async def test_an_answering_l1_node_passes_and_its_port_is_taken(chain: Anvil) -> None:
    probe = JsonRpcProbe(chain.url)
    try:
        await probe.check(2.0)
        with pytest.raises(ProbeFailed, match="already in use"):  # a second anvil would fail to bind
            await probe.preflight()
    finally:
        await probe.close()


async def test_a_method_without_a_result_fails(chain: Anvil) -> None:
    probe = JsonRpcProbe(chain.url, method="no_suchMethod")
    try:
        with pytest.raises(ProbeFailed, match="no_suchMethod"):
            await probe.check(2.0)
    finally:
        await probe.close()


async def test_nobody_listening_fails_the_check_and_passes_the_preflight() -> None:
    probe = JsonRpcProbe(f"http://127.0.0.1:{free_loopback_port()}")
    try:
        await probe.preflight()
        with pytest.raises(ProbeFailed, match="eth_chainId"):
            await probe.check(1.0)
    finally:
        await probe.close()
