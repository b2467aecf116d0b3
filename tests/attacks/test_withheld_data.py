"""Attack (issue 12, item 1): withhold a batch's data behind an input root, so that derivation cannot
read what a one-step proof opens, derivation stops there, the challenger's judge goes quiet and a
made-up output finalizes unchallenged.

The attacker holds the batcher's key and sends its own transactions to the deployed contracts on a
real anvil. Each move now fails: the inbox takes no root from the batcher (it computes the root
from the calldata), refuses malformed framing by name, and takes a batch only as the batcher's own
top-level call (not through a contract, not through an EIP-7702 delegation), so the data is always
in a transaction's input. What the attacker can still post (well-framed junk) is skipped by
derivation's rules: a later honest batch is derived, and a made-up output over it is challenged
and loses its bond.
"""

from __future__ import annotations

import dataclasses

import pytest

from bench.rollup_verify import transfers
from protocol import BatchBlock, BlockLeaf, TxLeaf, decode_batch, encode_batch, encode_leaves, input_root, keccak256
from services.l1 import Artifact, Contract, RpcError, TxSender
from services.rollups._contracts import OutputStatus, Side
from tests.l1.anvil import Anvil
from tests.rollups._rollup import Rollup

FORWARDER = Artifact.load("ForwarderHarness")


async def refused(r: Rollup, call: bytes, sender: bytes | None = None) -> str:
    """The inbox's refusal of ``call`` (its error's name), sent as the batcher would send it."""
    assert r.inbox.address is not None
    with pytest.raises(RpcError) as caught:
        await r.l1.call(r.inbox.address, call, sender=sender or r.batcher.address)
    error = r.inbox.decode_error(caught.value.revert_data)
    return "no such function" if error is None and caught.value.revert_data == b"" else str(error and error.name)


async def test_a_batcher_cannot_withhold_data_and_judging_goes_on(chain: Anvil, r: Rollup, rogue: TxSender) -> None:
    assert r.inbox.address is not None
    head = await r.l1.get_block(await r.l1.block_number() - 1)
    assert head is not None
    honest = [BatchBlock(1, 100, head.number, head.hash, tuple(transfers(4)))]
    data = encode_batch(honest)

    # 1. The old attack: data with a root that does not match it. There is no root to give.
    selector = keccak256(b"appendBatch(bytes,bytes32)")[:4]
    mismatched = r.inbox.encode_call("appendBatch", data)[4:] + keccak256(b"a root of other leaves")
    assert await refused(r, selector + mismatched) == "no such function"
    # 2. Junk framing: refused by name, never in the inbox (no batch derivation cannot read).
    for junk, name in [(b"\x00" + data[1:], "UnknownVersion"), (data[:-1], "TruncatedLeaf"),
                       (data + b"\x00\x00\x00", "EmptyLeaf"), (b"\x01\x00\x00\x01\x07", "UnknownLeaf"),
                       (b"\x01", "NoLeaves")]:
        assert await refused(r, r.inbox.encode_call("appendBatch", junk)) == name
    # 3. Routed through a contract: the batch would be in no transaction's input.
    sender = r.batcher
    deployed = await sender.wait_receipt(await sender.send(None, Contract(FORWARDER).encode_deploy()), 10)
    assert deployed.contract_address is not None
    forwarder = Contract(FORWARDER, deployed.contract_address)
    routed = forwarder.encode_call("forward", r.inbox.address, r.inbox.encode_call("appendBatch", data))
    receipt = await sender.wait_receipt(await sender.send(deployed.contract_address, routed, gas=500_000), 10)
    assert not receipt.success  # NotBatcher: the forwarder is not the batcher
    # ... or through the batcher's own EIP-7702 delegation to it (a transaction to itself).
    chain.rpc("anvil_setCode", "0x" + sender.address.hex(), "0xef0100" + deployed.contract_address.hex())
    assert await refused(r, r.inbox.encode_call("appendBatch", data)) == "BatcherHasCode"
    receipt = await sender.wait_receipt(await sender.send(sender.address, routed, gas=500_000), 10)
    assert not receipt.success
    chain.rpc("anvil_setCode", "0x" + sender.address.hex(), "0x")
    assert await r.inbox.read(r.l1, "batchCount") == (0,)

    # 4. What it can post: well-framed junk. The root is L1's, over exactly those leaves.
    junk_leaves = (TxLeaf(b"\x02not a transaction"), BlockLeaf(7, 1, head.number, head.hash, 3), TxLeaf(b""))
    await r.batcher.wait_receipt(await r.batcher.send(
        r.inbox.address, r.inbox.encode_call("appendBatch", encode_leaves(junk_leaves))), 10)
    assert (await r.inbox.read(r.l1, "batch", 0))[0] == input_root(junk_leaves)
    # Derivation skips it by rule (a stray leaf, a block with a gap) and goes on to the next batch.
    await r.post(honest)
    await r.chain.sync()
    derived = r.chain.block(1)
    assert derived is not None and len(derived.tx_hashes) == 4 and len(r.chain.inputs.batches) == 2
    assert r.chain.inputs.batches[1].leaves == decode_batch(data)

    # 5. A made-up output over the honest block: judged wrong, challenged, and it loses its bond.
    await r.proposer.chain.sync()
    made_up = dataclasses.replace(derived.snapshot, state_root=keccak256(b"made up"))
    index = await r.propose(rogue, made_up, derived.step)
    games = await r.challenger.check()
    assert [(out.index, side) for _, side, out in games] == [(index, Side.CHALLENGER)]
    ((game_id, _, out),) = games
    await r.lie_to_the_step(rogue, game_id, out)
    assert (await r.registry.output(index)).status == OutputStatus.INVALIDATED
    assert await r.credit(r.challenger.sender) == r.params.proposal_bond
