"""Attack (issue 12 items 5 and 6): a sequencer stalls or drops the forced queue, the L1 escape hatch.

The attacker holds the batcher's key (it is the sequencer) and sends its own transactions to the
deployed contracts on a real anvil: forced transactions into the inbox (anyone may), batches of
its own blocks. The chain's genesis gas limit is 1M, under the 30M a transaction may declare.

- Item 5: a forced transaction of 20M gas from a key with no L2 funds. Before, "block full" was
  checked first and a full block did not advance the queue: it blocked every later forced
  transaction for ever. Now its gas limit is above the block's: dropped (GAS_LIMIT_ABOVE_BLOCK).
  A forced transaction whose gas limit is the whole block's, behind another, leads the next block,
  where it is first and fits, and is dropped there for its missing funds: the queue advances.
- Item 6: the sequencer fills ten blocks to push the L2 base fee up past a forced transaction's
  fee cap. Before, it was skipped as FEE_CAP_BELOW_BASE_FEE; now it executes at its cap.
- Item 2 (derivation's side): the sequencer posts nothing at all. Before, the forced transaction
  waited for a batch for ever; now the rollups worker's derivation makes the blocks (rule F).

Derivation (the Python machine, fed by the real L1 reader) and the one-step proof (StepVerifier,
deployed by l2node's deploy) must agree on every step of it; and an honest sequencer (its real
block production, services.sequencer's Chain) seals the same blocks from the same queue.
"""

from __future__ import annotations

import pathlib
from dataclasses import astuple, replace
from typing import Any

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, deploy_new
from l2node.node.params import RollupParams
from protocol import (
    DEV_PRIVATE_KEYS,
    BatchBlock,
    L1InputReader,
    QueuedForced,
    Reason,
    batch_input_root,
    batch_leaves,
    devnet_genesis,
    encode_batch,
    keccak256,
)
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender, UnsignedTransaction, sign_transaction
from services.rollups._derivation import read_l1
from services.rollups._machine import L1Inputs, Machine, Rules, StepKind, genesis_snapshot
from services.rollups._snapshot import Snapshot
from services.rollups._trace import DerivedChain
from services.rollups._witness import step_proof
from services.sequencer._store import FORCED_INCLUDED, FORCED_SKIPPED
from tests.l1.anvil import Anvil
from tests.sequencer.test_chain import Sequencer

PARAMS = RollupParams()
CHAIN_ID = PARAMS.chain_id
GAS_LIMIT = 1_000_000
GWEI = 10**9
FAR = 2**63
NO_LIMIT = 2**256 - 1
#: Anyone may force a transaction: an L1 key of the attacker's.
ATTACKER = LocalSigner(DEV_PRIVATE_KEYS[5])
#: L2 keys: funded by the devnet genesis, and one with no L2 funds at all.
FUNDED, SPAMMER = DEV_PRIVATE_KEYS[2], DEV_PRIVATE_KEYS[3]
UNFUNDED = keccak256(b"forced-queue attacker, no L2 funds")
TO = b"\x77" * 20
#: Transfers per block that push the base fee up: 47 x 21,000 = 987,000 gas, near the 1M limit.
FULL = 47


def l2_tx(key: bytes, nonce: int, *, gas: int = 21_000, fee_cap: int = 10 * GWEI, tip: int = 0) -> bytes:
    return sign_transaction(UnsignedTransaction(CHAIN_ID, nonce, tip, fee_cap, gas, TO, 1), key)


def snapshot_tuple(s: Snapshot) -> tuple[Any, ...]:
    return tuple(w if isinstance(w, bytes) else int(w) for w in astuple(s))


async def test_the_sequencer_can_neither_stall_nor_drop_forced_transactions(chain: Anvil) -> None:
    async with L1Client(chain.url) as l1:
        genesis = replace(devnet_genesis(CHAIN_ID), gas_limit=GAS_LIMIT, l1_origin_number=await l1.block_number() + 1)
        addresses = await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, PARAMS, genesis)
        inbox = Contract(Artifact.load("BatchInbox"), addresses.batch_inbox)
        portal = Contract(Artifact.load("DepositPortal"), addresses.deposit_portal)
        verifier = Contract(Artifact.load("StepVerifier"), addresses.step_verifier)
        attacker = await TxSender.create(l1, ATTACKER)
        batcher = await TxSender.create(l1, LocalSigner(DEVNET_BATCHER_KEY))

        async def force(raw: bytes) -> int:
            data = inbox.encode_call("forceInclude", raw)
            receipt = await attacker.wait_receipt(await attacker.send(inbox.address, data), 5)
            assert receipt.success
            return receipt.block_number

        async def post(blocks: list[BatchBlock]) -> int:
            # The inbox's batch call: what the batcher posts (see services.sequencer's batcher), with
            # each block's origin hash L1's (the inbox refuses any other).
            hashes = {n: (await l1.get_block(n)).hash for n in {b.l1_origin_number for b in blocks}}  # type: ignore[union-attr]
            blocks = [replace(b, l1_origin_hash=hashes[b.l1_origin_number]) for b in blocks]
            data = inbox.encode_call("appendBatch", encode_batch(blocks))
            receipt = await batcher.wait_receipt(await batcher.send(inbox.address, data), 5)
            assert receipt.success
            return receipt.block_number

        # Item 5: the 20M-gas transaction that blocked the queue, then one that goes in, then one
        # that takes a whole block's gas limit (and has no funds to pay for it).
        stall = l2_tx(UNFUNDED, 0, gas=20_000_000)
        await force(stall)
        included = l2_tx(FUNDED, 0)
        await force(included)
        whole_block = l2_tx(UNFUNDED, 0, gas=GAS_LIMIT)
        origin = await force(whole_block)
        # Item 6: ten full blocks of the sequencer's own transfers push the base fee from ~0.9 to ~2.8 gwei.
        spam = iter(l2_tx(SPAMMER, n, fee_cap=100 * GWEI) for n in range(10 * FULL))
        blocks = [BatchBlock(1, genesis.timestamp + 1, origin, b"\x11" * 32, ())]
        blocks += [BatchBlock(n, genesis.timestamp + n, origin, b"\x11" * 32, tuple(next(spam) for _ in range(FULL)))
                   for n in range(2, 12)]
        await post(blocks)
        under_the_fee = l2_tx(FUNDED, 1, fee_cap=3 * GWEI // 2, tip=GWEI)
        origin = await force(under_the_fee)
        horizon = await post([BatchBlock(12, genesis.timestamp + 12, origin, b"\x11" * 32,
                                         (l2_tx(FUNDED, 2, fee_cap=3 * GWEI // 2),))])  # the same cap, batched

        # Derivation over what L1 holds, read as the rollups worker reads it, to the last block.
        inputs = L1Inputs()
        await read_l1(L1InputReader(l1, inbox, portal), inputs, addresses.block_number, horizon)
        inputs.l1_horizon = horizon
        state = genesis.state()
        m = Machine(genesis_snapshot(genesis, state), state, inputs, Rules(CHAIN_ID, PARAMS.sequencer_window),
                    trace=True)
        disagreements = []
        while True:
            pre, proof = m.snapshot, step_proof(m, FAR)
            kind = m.step(FAR)
            (post_commitment,) = await verifier.read(l1, "step", snapshot_tuple(pre), FAR, NO_LIMIT, horizon, proof)
            if bytes(post_commitment) != m.snapshot.commitment():
                disagreements.append(f"step {m.steps} ({kind})")
            if kind is StepKind.NOOP:
                break
        assert not disagreements, disagreements

    # The queue advanced past every forced transaction: each dropped or included by the rules.
    assert m.snapshot.forced_index == 4 and len(m.sealed) == 12
    forced_skips = [(s.block, s.reason) for s in m.skipped if s.source == "forced"]
    assert forced_skips == [(1, Reason.GAS_LIMIT_ABOVE_BLOCK), (1, Reason.BLOCK_GAS_LIMIT_REACHED),
                            (2, Reason.INSUFFICIENT_FUNDS)]
    hashes = {b.header.number: b.tx_hashes for b in m.sealed}
    assert keccak256(included) in hashes[1] and keccak256(whole_block) not in {h for v in hashes.values() for h in v}
    # The pushed-up base fee refuses the batched transaction but not the forced one, which pays its cap.
    block12 = m.sealed[-1].header
    assert block12.base_fee > 3 * GWEI // 2 > m.sealed[0].header.base_fee
    assert hashes[12] == (keccak256(under_the_fee),)
    assert [s.reason for s in m.skipped if s.block == 12] == [Reason.FEE_CAP_BELOW_BASE_FEE]
    assert block12.gas_used == 21_000 and m.state.get(TO).balance == 2 + 10 * FULL


async def test_an_honest_sequencer_seals_what_derivation_derives_from_the_same_queue(tmp_path: pathlib.Path) -> None:
    """services.sequencer's block production applies forced transactions by protocol.apply_forced too:
    with the base fee at 100 gwei and a 1M gas limit, the same drops, waiver and deferral, and the
    same block hashes as derivation of its blocks."""
    genesis = replace(devnet_genesis(CHAIN_ID), gas_limit=GAS_LIMIT, base_fee=100 * GWEI)
    queue = [l2_tx(UNFUNDED, 0, gas=20_000_000), l2_tx(FUNDED, 0), l2_tx(UNFUNDED, 0, gas=GAS_LIMIT),
             l2_tx(FUNDED, 1, fee_cap=GWEI, tip=GWEI)]
    s = Sequencer(tmp_path, genesis)
    await s.open()
    try:
        entries = [QueuedForced(i, 0, raw) for i, raw in enumerate(queue)]
        await s.store.run(lambda db: s.store.record_forced(db, entries))
        sealed = [await s.chain.seal(), await s.chain.seal()]
        outcomes = s.storage.connection.execute("SELECT state, block_number, note FROM forced ORDER BY inbox_index")
        assert [tuple(row) for row in outcomes] == [
            (FORCED_SKIPPED, 1, "GAS_LIMIT_ABOVE_BLOCK"), (FORCED_INCLUDED, 1, "0x" + keccak256(queue[1]).hex()),
            (FORCED_SKIPPED, 2, "INSUFFICIENT_FUNDS"), (FORCED_INCLUDED, 2, "0x" + keccak256(queue[3]).hex())]
    finally:
        await s.close()
    blocks = [b for b in sealed if b is not None]
    assert [b.tx_hashes for b in blocks] == [(keccak256(queue[1]),), (keccak256(queue[3]),)]
    assert all(b.header.base_fee > 10 * GWEI for b in blocks)  # both under the base fee, both in

    inputs = L1Inputs()
    for i, raw in enumerate(queue):
        inputs.add_forced(QueuedForced(i, 0, raw))
    leaves = [BatchBlock(b.header.number, b.header.timestamp, b.header.l1_origin_number, b.header.l1_origin_hash, ())
              for b in blocks]
    inputs.add_batch(0, genesis.l1_origin_number + 1, batch_input_root(leaves), tuple(batch_leaves(leaves)))
    state = genesis.state()
    m = Machine(genesis_snapshot(genesis, state), state, inputs, Rules(CHAIN_ID, PARAMS.sequencer_window))
    m.run()
    assert [d.hash for d in m.sealed] == [b.hash for b in blocks]


async def test_a_silent_sequencer_cannot_keep_a_forced_transaction_out(chain: Anvil) -> None:
    """The sequencer posts nothing at all: once the window of the chain's origin lapses, the rollups
    worker's derivation (DerivedChain, following L1 to its horizon) makes the blocks itself (rule F)
    and the forced transaction is in one of them; StepVerifier agrees on the derived block's start."""
    window = 8  # past the deployment and the forced transaction
    async with L1Client(chain.url) as l1:
        params = replace(PARAMS, sequencer_window=window)
        genesis = replace(devnet_genesis(CHAIN_ID), l1_origin_number=await l1.block_number() + 1)
        addresses = await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, params, genesis)
        inbox = Contract(Artifact.load("BatchInbox"), addresses.batch_inbox)
        portal = Contract(Artifact.load("DepositPortal"), addresses.deposit_portal)
        verifier = Contract(Artifact.load("StepVerifier"), addresses.step_verifier)
        attacker = await TxSender.create(l1, ATTACKER)
        forced = l2_tx(FUNDED, 0)
        receipt = await attacker.wait_receipt(await attacker.send(inbox.address, inbox.encode_call("forceInclude",
                                                                                                  forced)), 5)
        derived = DerivedChain(l1, inbox, portal, genesis, Rules(CHAIN_ID, window), addresses.block_number, 0)
        while await l1.block_number() < genesis.l1_origin_number + window - 1:
            chain.rpc("anvil_mine", "0x1")
        assert await derived.sync() == 0  # the window of the genesis's origin is still open
        chain.rpc("anvil_mine", hex(receipt.block_number - genesis.l1_origin_number + window))
        assert await derived.sync() > 0
        head = derived.head.header
        assert head.l1_origin_number == derived.inputs.l1_horizon - window + 1  # every lapsed origin o: o + W <= h
        including = [b for b in derived.deriver.blocks if keccak256(forced) in b.tx_hashes]
        assert len(including) == 1 and including[0].header.l1_origin_number == receipt.block_number
        assert derived.deriver.state.get(TO).balance == 1
        # The first derived block's start, on L1, with the horizon derivation had.
        state = genesis.state()
        m = Machine(genesis_snapshot(genesis, state), state, derived.inputs, Rules(CHAIN_ID, window), trace=True)
        pre, proof = m.snapshot, step_proof(m, FAR)
        assert m.step(FAR) is StepKind.FORCED_BLOCK and proof == b""
        (post,) = await verifier.read(l1, "step", snapshot_tuple(pre), FAR, NO_LIMIT, derived.inputs.l1_horizon, b"")
        assert bytes(post) == m.snapshot.commitment()
