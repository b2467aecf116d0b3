"""StepVerifier on a real anvil: every step of a derivation trace, re-executed on L1, gives Python's next commitment.

One scenario, posted for real to BatchInbox and DepositPortal (batches with their input roots,
deposits, forced transactions), covers every StepKind of services/rollups/_machine.py: transfers
(one creating an account), withdrawals to the message passer, deposits, forced transactions
applied / refused / left for the next block, every kind of refused batch transaction, duplicate,
gapped and invalid blocks (timestamp, origin from the future or going back, a timestamp past
2**64), a stray leaf, blocks cut short, seals, batch changes, no-ops, and a batcher silent past the
sequencer window: derivation's own blocks (rule F), with a deposit and a forced transaction in
them, once from the late batch's L1 block and once from the L1 horizon. A chain with a 15M gas
limit and a high base fee covers issue 12's forced-queue rules: a forced transaction over the
block gas limit dropped, one under the base fee included at its cap, a full block's leading the
next block and dropped there when its sender cannot pay. A trace-mode Machine over the same L1 inputs gives each step's
pre-snapshot and proof (services/rollups/_witness); the contract must return exactly the
commitment of the machine's next snapshot. A zero-base-fee chain adds a sender created by its
own transaction. Then forged proofs must revert, and a few steps (a transfer, a seal, ...) are sent
as real transactions to measure their gas. Bounded by a batch limit (a dispute's trace, see
_machine's Inputs notes), the same scenario derives only from the batches below it: the machine
and L1 both stop at the limit although L1 holds the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from typing import Any

import pytest
from eth_abi.abi import encode

from protocol import (
    BLOCK_GAS_LIMIT,
    FEE_VAULT,
    MAX_BASE_FEE,
    MESSAGE_PASSER,
    BatchBlock,
    BlockLeaf,
    Deposit,
    Genesis,
    Leaf,
    QueuedDeposit,
    QueuedForced,
    TxLeaf,
    batch_leaves,
    decode_batch,
    devnet_genesis,
    encode_batch,
    encode_leaves,
    encode_withdrawal_call,
    input_root,
    keccak256,
    next_base_fee,
)
from services.l1 import (
    Artifact,
    Contract,
    L1Client,
    LocalSigner,
    Receipt,
    RpcError,
    TxSender,
    UnsignedTransaction,
    sign_transaction,
)
from services.rollups._machine import (
    L1Inputs,
    Machine,
    Rules,
    StepKind,
    genesis_snapshot,
)
from services.rollups._snapshot import Phase, Snapshot
from services.rollups._witness import (
    NO_SIBLINGS,
    AppendWitness,
    StepWitness,
    proof_at,
    step_proof,
    step_witness,
    trace,
)
from tests.l1.anvil import DEV_KEYS, Anvil

INBOX, PORTAL, VERIFIER = (Artifact.load(n) for n in ("BatchInbox", "DepositPortal", "StepVerifier"))
DEPLOYER, BATCHER, ALICE = (LocalSigner(k) for k in DEV_KEYS[:3])
CHAIN_ID = 901
#: Small, so that a batch posted a few L1 blocks late breaks it.
WINDOW = 6
RULES = Rules(CHAIN_ID, WINDOW)
FAR = 2**63
#: A batch limit that bounds nothing (StepVerifier.step's batchLimit for an unbounded trace).
NO_LIMIT = 2**256 - 1
#: "Well under a block": the figures are printed; the target is < 1M.
GAS_BOUND = 1_000_000

# L2 keys: two funded dev accounts, and one with no L2 account at all.
K0, K1 = (bytes.fromhex(k.removeprefix("0x")) for k in DEV_KEYS[2:4])
POOR = keccak256(b"a key with no L2 balance")
K0_ADDRESS = LocalSigner(DEV_KEYS[2]).address
EXISTING = LocalSigner(DEV_KEYS[1]).address  # funded at genesis
FRESH = keccak256(b"fresh recipient")[:20]
FRESH_DEPOSIT = keccak256(b"fresh deposit recipient")[:20]
ORIGIN_HASH = b"\x33" * 32


def tx(key: bytes, nonce: int, to: bytes = EXISTING, value: int = 1, *, data: bytes = b"", gas: int = 60_000,
       fee_cap: int = 10 * 10**9, tip: int = 10**9) -> bytes:
    return sign_transaction(UnsignedTransaction(CHAIN_ID, nonce, min(tip, fee_cap), fee_cap, gas, to, value, data), key)


def another_sender(raw: bytes) -> bytes:
    mutated = bytearray(raw)
    mutated[-5] ^= 0xFF  # another s: the signature recovers some other key (with no account)
    return bytes(mutated)


def unrecoverable(nonce: int) -> bytes:
    """A signature in range that no public key recovers from (r = 5 is no point's x): ecrecover gives 0."""
    return UnsignedTransaction(CHAIN_ID, nonce, 10**9, 10 * 10**9, 60_000, EXISTING, 1).encode_signed(0, 5, 1)


def snapshot_tuple(s: Snapshot) -> tuple[Any, ...]:
    return tuple(w if isinstance(w, bytes) else int(w) for w in astuple(s))


@dataclass
class Scenario:
    l1: L1Client
    anvil: Anvil
    inbox: Contract
    portal: Contract
    verifier: Contract
    #: The genesis's L1 origin: the L1 block right after the deployment (rule F counts from it).
    origin: int = 0
    inputs: L1Inputs = field(default_factory=L1Inputs)

    async def transact(self, signer: LocalSigner, contract: Contract | None, data: bytes, value: int = 0) -> Receipt:
        sender = await TxSender.create(self.l1, signer)
        to = contract.address if contract is not None else None
        receipt = await sender.wait_receipt(await sender.send(to, data, value), 5)
        assert receipt.success
        return receipt

    async def deposit(self, to: bytes, mint: int) -> int:
        receipt = await self.transact(ALICE, self.portal, self.portal.encode_call("depositTransaction", to), mint)
        (event,) = [e for e in map(self.portal.decode_log, receipt.logs) if e is not None]
        a = event.args
        self.inputs.add_deposit(QueuedDeposit(a["index"], a["l1Block"], bytes(a["from"]),
                                              Deposit(bytes(a["sourceHash"]), bytes(a["to"]), a["mint"])))
        return receipt.block_number

    async def force(self, raw: bytes) -> int:
        receipt = await self.transact(ALICE, self.inbox, self.inbox.encode_call("forceInclude", raw))
        self.inputs.add_forced(QueuedForced(len(self.inputs.forced), receipt.block_number, raw))
        return receipt.block_number

    async def post(self, blocks: list[BatchBlock]) -> int:
        """A batch as the batcher posts it; L1Inputs gets the leaves derivation reads back from its data."""
        return await self.post_leaves(decode_batch(encode_batch(blocks)))

    async def post_leaves(self, leaves: tuple[Leaf, ...]) -> int:
        """Any leaves, framed; each BLOCK leaf's origin hash made L1's (ORIGIN_HASH in the scenario
        stands for "the right hash": the inbox refuses any other). The inbox computes the root."""
        attested = []
        for leaf in leaves:
            if isinstance(leaf, BlockLeaf):
                origin = await self.l1.get_block(leaf.l1_origin_number)
                assert origin is not None
                leaf = replace(leaf, l1_origin_hash=origin.hash)
            attested.append(leaf)
        call = self.inbox.encode_call("appendBatch", encode_leaves(attested))
        receipt = await self.transact(BATCHER, self.inbox, call)
        self.inputs.add_batch(len(self.inputs.batches), receipt.block_number, input_root(attested), tuple(attested))
        stored, _ = await self.inbox.read(self.l1, "batch", len(self.inputs.batches) - 1)
        assert stored == input_root(attested)  # the root L1 computed is the one derivation reads
        return receipt.block_number

    def genesis(self, **fields: Any) -> Genesis:
        return replace(devnet_genesis(CHAIN_ID), l1_origin_number=self.origin, **fields)

    async def read_to_head(self) -> int:
        """The L1 horizon: every input up to L1's head is in ``inputs`` (the scenario adds them as it sends)."""
        self.inputs.l1_horizon = await self.l1.block_number()
        return self.inputs.l1_horizon

    def machine(self, genesis: Genesis | None = None, batch_limit: int | None = None) -> Machine:
        genesis = genesis or self.genesis()
        state = genesis.state()
        inputs = self.inputs if batch_limit is None else self.inputs.limited(batch_limit, self.inputs.l1_horizon)
        return Machine(genesis_snapshot(genesis, state), state, inputs, RULES, trace=True)

    async def step(self, pre: Snapshot, proof: bytes, target: int = FAR, batch_limit: int = NO_LIMIT,
                   l1_horizon: int | None = None) -> bytes:
        horizon = self.inputs.l1_horizon if l1_horizon is None else l1_horizon
        (post,) = await self.verifier.read(self.l1, "step", snapshot_tuple(pre), target, batch_limit, horizon, proof)
        return bytes(post)

    async def revert_of(self, pre: Snapshot, proof: bytes, target: int = FAR) -> str:
        assert self.verifier.address is not None
        with pytest.raises(RpcError) as caught:
            await self.l1.call(self.verifier.address, self.verifier.encode_call(
                "step", snapshot_tuple(pre), target, NO_LIMIT, self.inputs.l1_horizon, proof))
        error = self.verifier.decode_error(caught.value.revert_data)
        assert error is not None
        return error.name


async def deploy(l1: L1Client, artifact: Artifact, *args: Any) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    receipt = await deployer.wait_receipt(await deployer.send(None, Contract(artifact).encode_deploy(*args)), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(artifact, receipt.contract_address)


async def deployed(l1: L1Client, chain: Anvil) -> Scenario:
    inbox = await deploy(l1, INBOX, BATCHER.address)
    portal = await deploy(l1, PORTAL, b"\xee" * 20, 1)  # its registry: unused, no withdrawal here
    assert inbox.address is not None and portal.address is not None
    verifier = await deploy(l1, VERIFIER, inbox.address, portal.address, CHAIN_ID, WINDOW)
    return Scenario(l1, chain, inbox, portal, verifier, await l1.block_number() + 1)


@pytest.fixture
async def scenario(l1: L1Client, chain: Anvil) -> Scenario:
    """L1 holding every kind of input the machine has a rule for (see the comments for what each is for)."""
    sc = await deployed(l1, chain)

    await sc.deposit(FRESH_DEPOSIT, 10**18)  # block 1: a deposit creating an account
    await sc.force(tx(K1, 0, FRESH, 5))  # block 1: applied (creates FRESH)
    await sc.force(b"\x02garbage")  # block 1: refused (malformed)
    # 21,000 gas already used in block 1: a 30M gas limit does not fit, it waits for block 2.
    origin1 = await sc.force(tx(K1, 1, gas=BLOCK_GAS_LIMIT))
    origin2 = await sc.deposit(K0_ADDRESS, 2 * 10**18)  # after block 1's origin: block 2
    block1 = (
        tx(K0, 0),  # a transfer
        tx(K0, 1, FRESH, 7),  # to an account the forced transfer created
        tx(K0, 2, keccak256(b"new")[:20], 9),  # creates an account
        tx(K0, 3, MESSAGE_PASSER, 10**15, data=encode_withdrawal_call(EXISTING, 50_000, b"hi")),  # a withdrawal
        another_sender(tx(K0, 4)),
        unrecoverable(4),
        tx(K0, 9),  # a nonce gap
        tx(POOR, 0),  # no account, no funds: refused after an exclusion proof
        tx(K0, 4, fee_cap=1, tip=0),  # below the base fee
        b"\x02\xff\xff",  # garbage
        tx(K0, 4, MESSAGE_PASSER, 3),  # a plain withdrawal: the second message
    )
    await sc.post([BatchBlock(1, 100, origin1, ORIGIN_HASH, block1),
                   BatchBlock(2, 101, origin2, ORIGIN_HASH, (
                       tx(K0, 5, gas=BLOCK_GAS_LIMIT),  # the forced one used 21,000 gas: refused, no room
                       tx(K0, 5)))])
    posted = await sc.post_leaves((*batch_leaves([
        BatchBlock(2, 101, origin2, ORIGIN_HASH, (tx(K0, 6),)),  # a duplicate of block 2
        BatchBlock(3, 50, origin2, ORIGIN_HASH, ()),  # timestamp before block 2's
        # (an origin after the batch's L1 block: the inbox refuses the batch, tests/attacks/test_origin_binding.py)
        BatchBlock(3, 102, origin1, ORIGIN_HASH, (tx(K0, 6),)),  # an origin before block 2's: never back
    ]), BlockLeaf(3, 2**64, origin2, ORIGIN_HASH, 0), *batch_leaves([  # a timestamp no snapshot holds
        BatchBlock(3, 102, origin2, ORIGIN_HASH, (tx(K0, 6), tx(K1, 2, FEE_VAULT, 1))),  # valid
        BatchBlock(5, 103, origin2, ORIGIN_HASH, (tx(K0, 7),)),  # a gap: the rest of the batch is ignored
        BatchBlock(4, 103, origin2, ORIGIN_HASH, ()),
    ])))
    assert posted - origin2 <= WINDOW
    await sc.post_leaves((
        TxLeaf(tx(K0, 7)),  # a stray leaf
        BlockLeaf(4, 103, origin2, ORIGIN_HASH, 2),
        TxLeaf(tx(K0, 7)),
        BlockLeaf(5, 104, origin2, ORIGIN_HASH, 5),  # block 4 claimed two transactions: cut here
        TxLeaf(b""),  # an empty transaction
        TxLeaf(tx(K0, 8)),  # block 5 claimed five: cut at the end of the batch
    ))
    # The batcher goes silent past the window of block 5's origin (origin2): derivation makes the
    # blocks of origins origin2 + 1 ... late - WINDOW itself (rule F), a deposit and a forced
    # transaction in the one of their L1 block; block 6 of the late batch is a duplicate by then.
    await sc.deposit(FRESH_DEPOSIT, 3)
    await sc.force(tx(K1, 3, FRESH, 4, fee_cap=10**9, tip=10**9))
    chain.rpc("anvil_mine", hex(WINDOW))
    late = await sc.l1.block_number() + 1
    derived = late - WINDOW - origin2
    await sc.post([BatchBlock(6, 105, origin2, ORIGIN_HASH, (tx(K0, 9),)),  # posted too late
                   BatchBlock(6 + derived, 105, late - WINDOW, ORIGIN_HASH, (tx(K0, 9),))])  # after derivation's
    # Read to L1's head: the window of the last block's origin (late - WINDOW) lapses once more.
    assert await sc.read_to_head() == late
    return sc


async def run_against_l1(sc: Scenario, m: Machine) -> dict[StepKind, int]:
    """Every step of ``m`` until its first no-op, checked on L1 (with ``m``'s batch limit); how
    many of each kind."""
    seen: dict[StepKind, int] = {}
    disagreements = []
    limit = NO_LIMIT if m.inputs.batch_limit is None else m.inputs.batch_limit
    while True:
        pre = m.snapshot
        proof = step_proof(m, FAR)
        kind = m.step(FAR)
        seen[kind] = seen.get(kind, 0) + 1
        post = await sc.step(pre, proof, batch_limit=limit, l1_horizon=m.inputs.l1_horizon)
        if post != m.snapshot.commitment():
            disagreements.append(f"step {m.steps} ({kind}) from {pre}")
        if kind is StepKind.NOOP:
            break
    assert not disagreements, "\n".join(disagreements)
    return seen


async def test_every_step_of_the_trace_agrees_with_python(scenario: Scenario) -> None:
    sc = scenario
    m = sc.machine()
    seen = await run_against_l1(sc, m)
    assert set(seen) == set(StepKind), f"not covered: {set(StepKind) - set(seen)}"
    # Blocks 1-5 from batches; derivation's own (origin2 + 1 ...); the late batch's next; one more of
    # derivation's, from the horizon (L1 was read to the late batch's block).
    derived = [b for b in m.sealed if b.header.l1_origin_hash == bytes(32)]
    late = m.sealed[-2].header
    assert [b.header.number for b in m.sealed] == list(range(1, len(m.sealed) + 1)) and len(derived) >= 2
    assert [b.header.number for b in derived] == [*range(6, late.number), late.number + 1]
    assert [b.header.l1_origin_number for b in derived] == [
        *range(m.sealed[4].header.l1_origin_number + 1, late.l1_origin_number + 1), late.l1_origin_number + 1]
    assert [len(b.tx_hashes) for b in m.sealed[:5]] == [7, 3, 2, 1, 1]  # deposits and forced ones included
    assert sum(len(b.tx_hashes) for b in derived) == 2 and len(late.transactions_root) == 32
    assert len(m.sealed[-2].tx_hashes) == 1  # the late batch's block after derivation's
    assert m.state.message_count == 2 and m.state.get(MESSAGE_PASSER).balance == 10**15 + 3
    assert [s.reason for s in m.skipped if s.block == 1] == [
        "MALFORMED_RLP", "BLOCK_GAS_LIMIT_REACHED", "NONCE_TOO_HIGH", "INVALID_SIGNATURE", "NONCE_TOO_HIGH",
        "INSUFFICIENT_FUNDS", "FEE_CAP_BELOW_BASE_FEE", "MALFORMED_RLP"]
    # The whole trace: the commitments a dispute bisects over, from genesis's snapshot on.
    genesis = sc.genesis()
    snapshots = trace(genesis_snapshot(genesis), genesis.state(), sc.inputs, FAR, RULES)
    assert len(snapshots) == m.steps + 1 and snapshots[-1] == m.snapshot
    pre, proof = proof_at(genesis_snapshot(genesis), genesis.state(), sc.inputs, FAR, 5, RULES)
    assert pre == snapshots[5] and await sc.step(pre, proof) == snapshots[6].commitment()


async def test_a_sender_without_an_account_is_created_by_its_own_transaction(l1: L1Client, chain: Anvil) -> None:
    """With a zero base fee a transaction can cost nothing, so a key with no account may send one:
    the sender's write is then an insertion (and 0 wei to a fresh address creates nothing)."""
    sc = await deployed(l1, chain)
    origin = await sc.force(tx(POOR, 0, FRESH, 0, fee_cap=0, tip=0))
    await sc.post([BatchBlock(1, 1, origin, ORIGIN_HASH, (tx(POOR, 1, EXISTING, 0, fee_cap=0, tip=0),))])
    zero_fee = sc.genesis(base_fee=0)
    m = sc.machine(zero_fee)
    await run_against_l1(sc, m)
    poor = m.sealed[0].tx_hashes
    assert len(poor) == 2 and m.state.account_tree.index_of(FRESH) is None  # 0 wei created nothing
    assert m.state.account_tree.count == len(zero_fee.alloc) + 2  # the zero address, and the poor sender


async def test_steps_that_read_nothing_take_an_empty_proof(scenario: Scenario) -> None:
    sc = scenario
    m = sc.machine()
    m.run(target=1)
    idle = m.snapshot
    assert idle.number == 1 and idle.phase == Phase.IDLE and step_proof(m, 1) == b""
    assert await sc.step(idle, b"", target=1) == idle.commitment()  # rule 1: at the target
    nothing_posted = replace(idle, batch_index=len(sc.inputs.batches))
    assert await sc.step(nothing_posted, b"", l1_horizon=idle.l1_origin_number) == nothing_posted.commitment()  # 2
    while not (m.snapshot.phase == Phase.BATCH and m.snapshot.tx_left == 0):
        m.step(FAR)
    sealing = m.snapshot
    assert step_proof(m, FAR) == b"" and m.step(FAR) is StepKind.SEAL
    assert await sc.step(sealing, b"") == m.snapshot.commitment()
    assert await sc.revert_of(replace(idle, phase=4), b"") == "InvalidPhase"  # type: ignore[arg-type]


async def test_a_batch_at_or_past_the_limit_does_not_exist_though_l1_holds_it(scenario: Scenario) -> None:
    """A dispute trace reads the batches L1 held when its output was proposed (rule 2, rule 11):
    under every limit, every step agrees with L1, and derivation stops at the limit."""
    sc = scenario
    count = len(sc.inputs.batches)
    full = sc.machine()
    full.run()
    for limit in range(count):
        # The horizon of a dispute whose batch limit is `limit`: the L1 block before batch `limit`'s.
        horizon = sc.inputs.batches[limit].l1_block - 1
        m = sc.machine(batch_limit=limit)
        m.inputs = m.inputs.limited(limit, horizon)
        await run_against_l1(sc, m)
        stopped = m.snapshot
        assert (stopped.phase, stopped.batch_index, stopped.item_index) == (Phase.IDLE, limit, 0)
        # A prefix of the unbounded derivation, short of its last block (only the last batch holds it).
        assert len(m.sealed) < len(full.sealed)
        assert [b.hash for b in m.sealed] == [b.hash for b in full.sealed[: len(m.sealed)]]
        assert step_proof(m, FAR) == b""  # rule 2 reads nothing ...
        assert await sc.step(stopped, b"", batch_limit=limit, l1_horizon=horizon) == stopped.commitment()  # still
        # One more batch in the bound: the same snapshot takes a real step, from the batch it reads.
        wider = sc.machine(batch_limit=limit + 1)
        wider.inputs = wider.inputs.limited(limit + 1, sc.inputs.batches[limit].l1_block)
        wider.snapshot, wider.state = stopped, m.state.copy()
        proof = step_proof(wider, FAR)
        assert wider.step(FAR) is not StepKind.NOOP and proof != b""
        assert await sc.step(stopped, proof, batch_limit=limit + 1,
                             l1_horizon=wider.inputs.l1_horizon) == wider.snapshot.commitment()

    # Rule 11: a block being read from a batch past the bound is cut (unreachable from START,
    # which reads under the same bound, but L1 and Python must still agree), with no proof.
    m = sc.machine()
    while not (m.snapshot.phase == Phase.BATCH and m.snapshot.tx_left > 0):
        m.step(FAR)
    pre = m.snapshot
    m.inputs = sc.inputs.limited(pre.batch_index, 0)
    assert step_proof(m, FAR) == b"" and m.step(FAR) is StepKind.TXS_CUT
    assert await sc.step(pre, b"", batch_limit=pre.batch_index, l1_horizon=0) == m.snapshot.commitment() \
        == replace(pre, tx_left=0).commitment()
    # A view's batches narrow, never widen; its horizon is the dispute's.
    narrowed = sc.inputs.limited(3, 7).limited(5, 9)
    assert (narrowed.batch_limit, narrowed.l1_horizon) == (3, 9) and sc.inputs.limited(3, 7).batch(3) is None


async def test_the_base_fee_update_is_python_s(scenario: Scenario) -> None:
    limit = BLOCK_GAS_LIMIT
    target = limit // 2
    for base_fee in (0, 7, 8, 10**9, MAX_BASE_FEE - MAX_BASE_FEE // 16, MAX_BASE_FEE - 1, MAX_BASE_FEE):
        for gas_used in (0, 1, target - 1, target, target + 1, limit - 1, limit):
            (fee,) = await scenario.verifier.read(scenario.l1, "nextBaseFee", base_fee, gas_used, limit)
            assert fee == next_base_fee(base_fee, gas_used, limit), (base_fee, gas_used)


async def _honest(sc: Scenario, want: Callable[[Snapshot], bool]) -> tuple[Snapshot, StepWitness, Machine]:
    """The first step whose pre-snapshot ``want`` accepts: its pre-snapshot, its witness, and the
    machine before it (its state, for proofs of other accounts). L1 must accept the honest proof."""
    m = sc.machine()
    while not want(m.snapshot):
        assert m.step(FAR) is not StepKind.NOOP, "no such step"
    pre, w = m.snapshot, step_witness(m, FAR)
    before = m.state.copy()
    m.step(FAR)
    assert await sc.step(pre, w.encode()) == m.snapshot.commitment()
    m.state = before
    return pre, w, m


def _flip(siblings: tuple[bytes, ...], k: int) -> tuple[bytes, ...]:
    s = bytearray(siblings[k])
    s[31] ^= 1
    return (*siblings[:k], bytes(s), *siblings[k + 1 :])


def _account(w: StepWitness, i: int, **changes: Any) -> StepWitness:
    accounts = list(w.accounts)
    accounts[i] = replace(accounts[i], **changes)
    return replace(w, accounts=accounts)


def _leaf(w: StepWitness, i: int, **changes: Any) -> StepWitness:
    return _account(w, i, leaf=replace(w.accounts[i].leaf, **changes))


def _path(w: StepWitness, i: int, **changes: Any) -> StepWitness:
    return _account(w, i, path=replace(w.accounts[i].path, **changes))


async def test_forged_proofs_revert(scenario: Scenario) -> None:
    sc = scenario
    new = keccak256(b"new")[:20]
    # The batch transfer that creates `new`: sender updated, `new` inserted, FEE_VAULT credited.
    pre, w, m = await _honest(sc, lambda s: s.phase == Phase.BATCH and s.batch_index == 0 and s.item_index == 3)
    assert [a.leaf.account for a in w.accounts][::2] == [K0_ADDRESS, FEE_VAULT]
    assert w.accounts[1].leaf.account != new and w.accounts[1].append_siblings != NO_SIBLINGS
    sender = w.accounts[0]
    forged: dict[str, tuple[StepWitness, str]] = {
        "a sibling of the sender's path": (_path(w, 0, siblings=_flip(sender.path.siblings, 4)),
                                           "InvalidAccountProof"),
        "a wrong balance in the sender's leaf": (_leaf(w, 0, balance=sender.leaf.balance + 1),
                                                 "InvalidAccountProof"),
        "a wrong nonce in the sender's leaf": (_leaf(w, 0, nonce=sender.leaf.nonce + 1), "InvalidAccountProof"),
        "a wrong leaf index": (_path(w, 0, index=sender.path.index + 1), "InvalidAccountProof"),
        "a wrong tree size": (_path(w, 0, count=sender.path.count + 1), "InvalidAccountProof"),
        "the recipient as existing (inclusion of nothing)": (_leaf(w, 1, account=new), "InvalidAccountProof"),
        "a low leaf that does not skip over the recipient": (_leaf(w, 1, next=new), "InvalidAccountProof"),
        "a sibling of the insertion's free slot": (
            _account(w, 1, append_siblings=_flip(w.accounts[1].append_siblings, 0)), "InvalidProof"),
        "a missing account witness": (replace(w, accounts=w.accounts[:2]), "MissingAccountWitness"),
        "a wrong transactions-tree size": (replace(w, txs=replace(w.txs, count=w.txs.count + 1)), "InvalidProof"),
        "another batch leaf": (replace(w, input=TxLeaf(tx(K0, 2, new, 10)).encode()), "InvalidInputProof"),
        "a sibling of the leaf's path": (replace(w, input_siblings=_flip(w.input_siblings, 0)),
                                         "InvalidInputProof"),
        "a wrong leaf count": (replace(w, input_count=w.input_count + 1), "InvalidInputProof"),
        "no leaf where there is one": (replace(w, input_count=pre.item_index), "InvalidInputProof"),
    }
    # An exclusion by the leaf of the recipient's successor, where it has one.
    low = w.accounts[1].leaf
    if low.next != bytes(20):
        successor = m.state.account_tree.prove(low.next)
        forged["the successor's leaf as low leaf"] = (
            _account(w, 1, leaf=successor.leaf, path=successor.path), "InvalidAccountProof")
    for name, (witness, error) in forged.items():
        assert await sc.revert_of(pre, witness.encode()) == error, name

    # A withdrawal: the message-passer append must prove the tree's size (the message nonce).
    pre, w, _ = await _honest(sc, lambda s: s.phase == Phase.BATCH and s.batch_index == 0 and s.item_index == 4)
    assert w.message != AppendWitness()
    for message in (replace(w.message, count=1), replace(w.message, siblings=_flip(w.message.siblings, 1))):
        assert await sc.revert_of(pre, replace(w, message=message).encode()) == "InvalidProof"

    # A deposit: its preimage must hash to the portal's source hash.
    pre, w, _ = await _honest(sc, lambda s: s.phase == Phase.DEPOSITS)
    queued = sc.inputs.deposits[0]
    for mint, l1_block in ((queued.deposit.mint + 1, queued.l1_block), (queued.deposit.mint, queued.l1_block + 1)):
        wrong = encode(["address", "address", "uint256", "uint256"], [queued.sender, queued.deposit.to, mint, l1_block])
        assert await sc.revert_of(pre, replace(w, input=wrong).encode()) == "InvalidDeposit"
    assert await sc.revert_of(pre, _leaf(w, 0, balance=1).encode()) == "InvalidAccountProof"

    # A forced transaction: its raw bytes must hash to the queued hash.
    pre, w, _ = await _honest(sc, lambda s: s.phase == Phase.FORCED)
    assert await sc.revert_of(pre, replace(w, input=tx(K1, 0, FRESH, 6)).encode()) == "InvalidForcedTransaction"

    # No leaf past the end of a batch: the count must be the input root's (tree root and count).
    end = len(sc.inputs.batches[0].leaves)
    pre, w, _ = await _honest(sc, lambda s: s.phase == Phase.IDLE and s.batch_index == 0 and s.item_index == end)
    assert w.input == b""  # NEXT_BATCH
    for lie in (replace(w, input_count=w.input_count + 1), replace(w, input_tree_root=bytes(32))):
        assert await sc.revert_of(pre, lie.encode()) == "InvalidInputProof"


async def step_gas(sc: Scenario, m: Machine, wanted: dict[str, object]) -> dict[str, tuple[int, int, int]]:
    """Steps ``m`` and sends the first step of each wanted kind (a StepKind, or the (batch index,
    item index) of the batch leaf it reads) as a real transaction: (gas used, EIP-7623 calldata
    floor, proof bytes) by name. Gas of the whole transaction: 21,000 and the calldata included."""
    figures: dict[str, tuple[int, int, int]] = {}
    while len(figures) < len(wanted):
        pre, proof = m.snapshot, step_proof(m, FAR)
        kind = m.step(FAR)
        assert kind is not StepKind.NOOP, f"not met: {set(wanted) - set(figures)}"
        at = (pre.batch_index, pre.item_index) if pre.phase == Phase.BATCH and kind is not StepKind.SEAL else kind
        name = next((n for n, w in wanted.items() if w == at and n not in figures), None)
        if name is None:
            continue
        data = sc.verifier.encode_call("step", snapshot_tuple(pre), FAR, NO_LIMIT, m.inputs.l1_horizon, proof)
        receipt = await sc.transact(DEPLOYER, sc.verifier, data)
        zeros = data.count(0)
        floor = 21_000 + 10 * (zeros + 4 * (len(data) - zeros))  # EIP-7623 (Prague, anvil's default)
        figures[name] = (receipt.gas_used, floor, len(proof))
    # Where gas used == the floor, the calldata floor is what the transaction pays, not execution.
    print("\nStepVerifier.step gas: whole transaction, EIP-7623 calldata floor (proof bytes)",
          *(f"  {n}: {gas:,}, {floor:,} ({size:,})" for n, (gas, floor, size) in figures.items()), sep="\n")
    assert all(gas < GAS_BOUND for gas, _, _ in figures.values()), figures
    return figures


async def test_gas_of_a_transfer_step_and_a_seal_step(scenario: Scenario) -> None:
    await step_gas(scenario, scenario.machine(), {
        "transfer": (0, 1), "transfer creating an account": (0, 3), "withdrawal": (0, 4),
        "refused (nonce gap)": (0, 7), "deposit": StepKind.DEPOSIT, "seal": StepKind.SEAL,
        "derived block start (rule F)": StepKind.FORCED_BLOCK,
    })


async def forced_queue(l1: L1Client, chain: Anvil) -> tuple[Scenario, Genesis]:
    """Issue 12 items 5 and 6 on a chain with a 15M gas limit and a 100 gwei genesis base fee: every
    forced transaction below has a 10 gwei fee cap, far under block 1's base fee (87.5 gwei)."""
    sc = await deployed(l1, chain)
    genesis = sc.genesis(gas_limit=15_000_000, base_fee=100 * 10**9)
    await sc.force(tx(POOR, 0, gas=20_000_000))  # over the block gas limit, from a key with no funds: dropped
    await sc.force(tx(K1, 0))  # under the base fee: included at its cap
    await sc.force(tx(K1, 1, gas=15_000_000))  # a whole block's gas: 21,000 are used, it leads block 2
    await sc.force(tx(POOR, 0, gas=15_000_000))  # leads block 3, where it fits: no funds, dropped
    origin = await sc.force(tx(K1, 2))
    await sc.post([BatchBlock(1, 1, origin, ORIGIN_HASH, (tx(K0, 0),)),  # a batch transaction: refused
                   BatchBlock(2, 2, origin, ORIGIN_HASH, ()), BatchBlock(3, 3, origin, ORIGIN_HASH, ())])
    await sc.read_to_head()
    return sc, genesis


async def test_forced_transactions_are_dropped_waived_and_deferred_as_in_python(l1: L1Client, chain: Anvil) -> None:
    sc, genesis = await forced_queue(l1, chain)
    m = sc.machine(genesis)
    seen = await run_against_l1(sc, m)
    assert seen[StepKind.FORCED_SKIPPED] == 2 and seen[StepKind.FORCED_FULL] == 2 and seen[StepKind.FORCED_APPLIED] == 3
    assert [(s.block, s.source, s.reason) for s in m.skipped] == [
        (1, "forced", "GAS_LIMIT_ABOVE_BLOCK"), (1, "forced", "BLOCK_GAS_LIMIT_REACHED"),
        (1, "batch", "FEE_CAP_BELOW_BASE_FEE"), (2, "forced", "BLOCK_GAS_LIMIT_REACHED"),
        (3, "forced", "INSUFFICIENT_FUNDS")]
    assert [len(b.tx_hashes) for b in m.sealed] == [1, 1, 1] and m.snapshot.forced_index == 5
    # Each paid its fee cap (10 gwei), under the block's base fee, and no tip.
    assert all(b.header.base_fee > 10 * 10**9 for b in m.sealed) and m.state.get(FEE_VAULT).balance == 0
    k1 = next(balance for address, balance in genesis.alloc if address == LocalSigner(DEV_KEYS[3]).address)
    assert m.state.get(LocalSigner(DEV_KEYS[3]).address).balance == k1 - 3 * (21_000 * 10 * 10**9 + 1)
    # The base fee clamp: a chain at MAX_BASE_FEE whose blocks are full stays there, on L1 too.
    (fee,) = await sc.verifier.read(sc.l1, "nextBaseFee", MAX_BASE_FEE, 15_000_000, 15_000_000)
    assert fee == next_base_fee(MAX_BASE_FEE, 15_000_000, 15_000_000) == MAX_BASE_FEE


async def test_gas_of_forced_queue_steps(l1: L1Client, chain: Anvil) -> None:
    sc, genesis = await forced_queue(l1, chain)
    await step_gas(sc, sc.machine(genesis), {
        "forced dropped (gas limit above the block's)": StepKind.FORCED_SKIPPED,
        "forced applied under the base fee (waiver)": StepKind.FORCED_APPLIED,
        "forced deferred (block full)": StepKind.FORCED_FULL,
    })


def test_witness_refuses_a_machine_whose_snapshot_is_not_exact() -> None:
    genesis = devnet_genesis(CHAIN_ID)
    state = genesis.state()
    m = Machine(genesis_snapshot(genesis, state), state, L1Inputs(), RULES, trace=True)
    m.snapshot = replace(m.snapshot, state_root=bytes(32))
    with pytest.raises(ValueError, match="trace=True"):
        step_proof(m, FAR)
