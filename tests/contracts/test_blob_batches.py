"""Blob batches on a real anvil (EIP-4844, issue 15; protocol/_blob.py has the layout and rules).

The point-evaluation precompile first (anvil 1.7.1 has it at 0x0A); then BatchInbox.appendBlobBatch
(only the batcher, only with blobs, origins checked as a calldata batch's leaves are), the one reader
of L1 inputs getting the blobs back (anvil_getBlobsByTransactionHash) and the same leaves as the
calldata form, and StepVerifier opening blob leaves with KZG: every step of a trace over blob batches
(well-formed, malformed by rule: a bad header, offsets out of order or out of bounds, a stray leaf, a
block with an origin the batch did not name) gives Python's next commitment, and forged openings
revert (a forged KZG proof, a value not the blob's, another blob's commitment, another batch's
versioned hashes, the elements of another leaf).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_abi.abi import decode, encode

from protocol import (
    BLOB_BYTES,
    BatchDataError,
    BlobBatch,
    BlockLeaf,
    L1InputReader,
    Leaf,
    PostedBatch,
    StrayLeaf,
    TxLeaf,
    batch_leaves,
    blob_input_root,
    blob_stream,
    decode_blob_leaves,
    encode_blob_leaves,
    origins_of,
    to_blobs,
)
from protocol._batch import BatchBlock
from services.l1 import (
    FIELD_ELEMENTS_PER_BLOB,
    FollowerConfig,
    L1Client,
    RpcError,
    TxSender,
    evaluation_point,
    load_setup,
    point_proof,
    sidecar_of,
    versioned_hash,
)
from services.rollups._machine import StepKind
from services.rollups._snapshot import Phase
from services.rollups._witness import OPENING_TYPE, step_witness
from tests.contracts.test_step_verifier import (
    ALICE,
    BATCHER,
    FAR,
    K0,
    K1,
    Scenario,
    deployed,
    run_against_l1,
    step_gas,
    tx,
)
from tests.l1.anvil import Anvil

POINT_EVALUATION = b"\x00" * 19 + b"\x0a"


async def post_blob(sc: Scenario, stream: bytes, origins: tuple[tuple[int, bytes], ...],
                    blobs: tuple[bytes, ...] | None = None) -> int:
    """A blob batch of ``stream`` (or these very ``blobs``) naming ``origins``; L1Inputs gets what the
    reader reads back from L1. The L1 block that holds it."""
    sender = await TxSender.create(sc.l1, BATCHER)
    blobs = blobs if blobs is not None else to_blobs(stream)
    assert sc.inbox.address is not None
    tx_hash = await sender.send_blobs(sc.inbox.address, sc.inbox.encode_call("appendBlobBatch", list(origins)),
                                      await sender.sidecar(blobs))
    receipt = await sender.wait_receipt(tx_hash, 5)
    assert receipt.success
    posted = await read_batch(sc, receipt.block_number)
    assert posted.blob is not None and posted.blob.blobs == blobs and posted.blob.origins == origins
    sc.inputs.add_batch(posted.index, posted.l1_block, posted.input_root, posted.leaves, posted.blob)
    return receipt.block_number


async def read_batch(sc: Scenario, l1_block: int) -> PostedBatch:
    reader = L1InputReader(sc.l1, sc.inbox, sc.portal)
    (posted,) = [i for i in await reader.read(l1_block, l1_block) if isinstance(i, PostedBatch)]
    return posted


async def attested(sc: Scenario, blocks: list[BatchBlock]) -> list[BatchBlock]:
    """The blocks with their origins' real L1 hashes."""
    out = []
    for b in blocks:
        header = await sc.l1.get_block(b.l1_origin_number)
        assert header is not None
        out.append(replace(b, l1_origin_hash=header.hash))
    return out


async def test_the_point_evaluation_precompile_checks_a_ckzg_proof(l1: L1Client, chain: Anvil) -> None:
    blob = to_blobs(bytes(range(256)) * 100)[0]
    sidecar = sidecar_of((blob,))
    vh = versioned_hash(sidecar.commitments[0])
    # anvil loads its KZG setup at its first point evaluation: seconds on a busy machine, past the
    # client's default 5 s deadline (a deadline of its own for that first call).
    proof, y = point_proof(blob, 0)
    call = {"to": "0x" + POINT_EVALUATION.hex(), "data": "0x" + (vh + evaluation_point(0).to_bytes(32, "big") + y
                                                                  + sidecar.commitments[0] + proof).hex()}
    await l1.request("eth_call", call, "latest", deadline_s=60)
    for element in (0, 1, 77, FIELD_ELEMENTS_PER_BLOB - 1):
        proof, y = point_proof(blob, element)
        assert y == blob[32 * element : 32 * element + 32]  # the element's own bytes: z is its point
        z = evaluation_point(element).to_bytes(32, "big")
        answer = await l1.call(POINT_EVALUATION, vh + z + y + sidecar.commitments[0] + proof)
        assert decode(["uint256", "uint256"], answer)[0] == FIELD_ELEMENTS_PER_BLOB
        wrong_y = (int.from_bytes(y, "big") ^ 1).to_bytes(32, "big")
        with pytest.raises(RpcError):
            await l1.call(POINT_EVALUATION, vh + z + wrong_y + sidecar.commitments[0] + proof)


async def test_a_blob_batch_is_bound_by_its_versioned_hashes_and_reads_back_as_calldata_would(
        l1: L1Client, chain: Anvil) -> None:
    sc = await deployed(l1, chain)
    chain.rpc("anvil_mine", "0x2")
    origin = await l1.block_number() - 1
    blocks = await attested(sc, [BatchBlock(1, 100, origin, b"", (tx(K0, 0), tx(K0, 1))),
                                 BatchBlock(2, 101, origin, b"", ())])
    stream = encode_blob_leaves(batch_leaves(blocks))
    block = await post_blob(sc, stream, origins_of(blocks))
    posted = await read_batch(sc, block)
    assert posted.leaves == tuple(batch_leaves(blocks))
    assert posted.blob is not None and len(posted.blob.blobs) == 1
    (root, l1_block) = await sc.inbox.read(l1, "batch", 0)
    assert bytes(root) == blob_input_root(posted.blob.versioned_hashes, origins_of(blocks)) and l1_block == block
    assert (await sc.inbox.read(l1, "batchKind", 0))[0] == 1
    # Two blobs: the stream runs on from the first into the second.
    big = await attested(sc, [BatchBlock(3, 102, origin, b"", tuple(tx(K1, n, data=bytes(3000)) for n in range(45)))])
    stream = encode_blob_leaves(batch_leaves(big))
    assert len(stream) > BLOB_BYTES
    posted = await read_batch(sc, await post_blob(sc, stream, origins_of(big)))
    assert posted.blob is not None and len(posted.blob.blobs) == 2 and posted.leaves == tuple(batch_leaves(big))


class OtherBlobs(L1Client):
    """An L1 node that gives back other blobs than a transaction's: its blobs, each field element
    moved one place on (canonical blobs still, of other commitments)."""

    async def get_blobs(self, tx_hash: bytes) -> list[bytes] | None:
        blobs = await super().get_blobs(tx_hash)
        return None if blobs is None else [blob[-32:] + blob[:-32] for blob in blobs]


async def test_the_reader_checks_blobs_in_the_kzg_helper_processes_not_on_its_event_loop(
        l1: L1Client, chain: Anvil) -> None:
    """The one reader of L1 inputs, derivation's ``read`` and the ``follow`` of the sequencer's (and a
    read replica's) inbox follower, checks a blob batch's blobs against the transaction's versioned
    hashes (a KZG commitment a blob, ~60 ms with the GIL held) in the KZG helper processes: this
    process never loads the KZG setup for it. Blobs that are not the transaction's are refused."""
    sc = await deployed(l1, chain)
    chain.rpc("anvil_mine", "0x2")
    origin = await l1.block_number() - 1
    big = await attested(sc, [BatchBlock(1, 100, origin, b"", tuple(tx(K1, n, data=bytes(3000)) for n in range(45)))])
    load_setup.cache_clear()  # (any KZG work in this process loads it again)
    block = await post_blob(sc, encode_blob_leaves(batch_leaves(big)), origins_of(big))
    posted = await read_batch(sc, block)
    assert posted.blob is not None and len(posted.blob.blobs) == 2
    reader = L1InputReader(sc.l1, sc.inbox, sc.portal)
    async for update in reader.follow(block, FollowerConfig(confirmation_depth=0, poll_interval_s=0.05)):
        if update.added:
            assert [b.leaves for b in update.added] == [posted.leaves]
            break
    assert load_setup.cache_info().currsize == 0
    async with OtherBlobs(chain.url) as lying:
        with pytest.raises(BatchDataError, match="not those of the transaction's versioned hashes"):
            await L1InputReader(lying, sc.inbox, sc.portal).read(block, block)


async def test_only_the_batcher_posts_a_blob_batch_and_only_with_blobs_and_attested_origins(
        l1: L1Client, chain: Anvil) -> None:
    sc = await deployed(l1, chain)
    chain.rpc("anvil_mine", "0x2")
    origin = await l1.block_number() - 1
    header = await l1.get_block(origin)
    assert header is not None and sc.inbox.address is not None
    blobs = to_blobs(b"\x01")

    async def refusal(signer_sender: TxSender, origins: list[tuple[int, bytes]], with_blobs: bool = True) -> str:
        call = sc.inbox.encode_call("appendBlobBatch", origins)
        with pytest.raises(RpcError) as caught:
            if with_blobs:
                await signer_sender.send_blobs(sc.inbox.address, call, await signer_sender.sidecar(blobs))  # type: ignore[arg-type]
            else:
                await signer_sender.send(sc.inbox.address, call)
        error = sc.inbox.decode_error(caught.value.revert_data)
        assert error is not None
        return error.name

    batcher = await TxSender.create(l1, BATCHER)
    assert await refusal(await TxSender.create(l1, ALICE), [(origin, header.hash)]) == "NotBatcher"
    assert await refusal(batcher, [(origin, header.hash)], with_blobs=False) == "NoBlobs"
    assert await refusal(batcher, []) == "OriginCount"
    assert await refusal(batcher, [(origin, b"\x33" * 32)]) == "OriginHashMismatch"
    assert await refusal(batcher, [(origin, header.hash), (origin, header.hash)]) == "OriginsNotAscending"
    assert await refusal(batcher, [(origin + 10, header.hash)]) == "OriginInFuture"
    assert await sc.inbox.read(l1, "batchCount") == (0,)


async def blob_scenario(l1: L1Client, chain: Anvil) -> tuple[Scenario, list[BatchBlock]]:
    """Blob batches of every shape derivation has a rule for (the comments say which)."""
    sc = await deployed(l1, chain)
    chain.rpc("anvil_mine", "0x2")
    origin = await l1.block_number() - 1
    blocks = await attested(sc, [
        BatchBlock(1, 100, origin, b"", (tx(K0, 0), tx(K0, 1, data=bytes(200)), b"\x02garbage", tx(K0, 2))),
        BatchBlock(2, 101, origin, b"", (tx(K1, 0),)),
    ])
    await post_blob(sc, encode_blob_leaves(batch_leaves(blocks)), origins_of(blocks))
    # Offsets out of order and out of bounds (empty leaves), a stray leaf, a block whose origin the
    # batch does not name (5c), then a block cut short by a stray leaf (rule 11).
    b3 = await attested(sc, [BatchBlock(3, 102, origin, b"", (tx(K0, 3),))])
    later = (await attested(sc, [replace(b3[0], l1_origin_number=origin + 1)]))[0]
    unnamed = BlockLeaf(3, 102, origin + 1, later.l1_origin_hash, 0)  # a real L1 block, not named
    leaves: list[Leaf] = [StrayLeaf(b"\x07odd"), unnamed, *batch_leaves(b3)]
    stream = bytearray(encode_blob_leaves([*leaves, TxLeaf(tx(K0, 4)), StrayLeaf(b"x"), BlockLeaf(4, 103, origin, b3[0]
                                           .l1_origin_hash, 3), TxLeaf(tx(K0, 4)), StrayLeaf(b"\x09")]))
    count = int.from_bytes(stream[1:4], "big")
    table = 4 + 4 * (count + 1)
    # Leaf 4 (the TX leaf after block 3, which claimed 1): offsets swapped, so it is empty (stray).
    a, b = 4 + 4 * 4, 4 + 4 * 5
    stream[a:a + 4], stream[b:b + 4] = stream[b:b + 4], stream[a:a + 4]
    assert table < int.from_bytes(stream[a:a + 4], "big")
    await post_blob(sc, bytes(stream), origins_of(b3))
    # A bad header: a batch of no leaves; and a table running past the blob: no leaves either.
    await post_blob(sc, b"\x02" + bytes(stream[1:]), origins_of(b3))
    await post_blob(sc, b"\x01\xff\xff\xff", origins_of(b3))
    # An offset past the end of the blobs (the leaf is empty), then a valid block 4... with data.
    b4 = await attested(sc, [BatchBlock(4, 103, origin, b"", (tx(K0, 4),))])
    stream = bytearray(encode_blob_leaves(batch_leaves(b4)))
    stream[4 + 4 * 2 : 4 + 4 * 3] = (BLOB_BYTES + 5).to_bytes(4, "big")  # the TX leaf's end
    await post_blob(sc, bytes(stream), origins_of(b4))
    await post_blob(sc, encode_blob_leaves(batch_leaves(b4)), origins_of(b4))
    await sc.read_to_head()
    return sc, blocks


async def test_every_step_over_blob_batches_agrees_with_python(l1: L1Client, chain: Anvil) -> None:
    sc, _ = await blob_scenario(l1, chain)
    batches = sc.inputs.batches
    assert [len(b.leaves) for b in batches] == [7, 9, 0, 0, 2, 2]
    assert batches[1].leaves[4] == StrayLeaf(b"") and isinstance(batches[1].leaves[0], StrayLeaf)
    m = sc.machine()
    seen = await run_against_l1(sc, m)
    for kind in (StepKind.SKIP_LEAF, StepKind.SKIP_BLOCK, StepKind.TXS_CUT, StepKind.TX_SKIPPED, StepKind.START,
                 StepKind.NEXT_BATCH, StepKind.TX_APPLIED):
        assert kind in seen, kind
    posted = [b for b in m.sealed if b.header.l1_origin_hash != bytes(32)]  # (then rule F's, the window of 6 lapsed)
    assert [b.header.number for b in posted] == [1, 2, 3, 4]
    print([len(b.tx_hashes) for b in posted])
    assert [len(b.tx_hashes) for b in posted] == [3, 1, 0, 0]


async def test_a_blob_batch_derives_the_same_chain_as_calldata(l1: L1Client, chain: Anvil) -> None:
    blob_sc = await deployed(l1, chain)
    calldata_sc = await deployed(l1, chain)
    chain.rpc("anvil_mine", "0x2")
    origin = await l1.block_number() - 1
    blocks = await attested(blob_sc, [
        BatchBlock(1, 100, origin, b"", tuple(tx(K0, n) for n in range(20))),
        BatchBlock(2, 101, origin + 1, b"", (tx(K1, 0), tx(K0, 20))),
    ])
    await post_blob(blob_sc, encode_blob_leaves(batch_leaves(blocks)), origins_of(blocks))
    await calldata_sc.post(blocks)
    for sc in (blob_sc, calldata_sc):
        await sc.read_to_head()
    genesis = replace(blob_sc.genesis(), l1_origin_number=calldata_sc.origin)
    chains = []
    for sc in (blob_sc, calldata_sc):
        m = sc.machine(genesis)
        m.run()
        chains.append([(b.hash, b.header.state_root) for b in m.sealed])
    assert len(chains[0]) == 2 and chains[0] == chains[1]


async def test_forged_blob_openings_revert(l1: L1Client, chain: Anvil) -> None:
    sc, _ = await blob_scenario(l1, chain)
    m = sc.machine()
    # The first transfer of block 1: a TX leaf read in BATCH phase.
    while not (m.snapshot.phase == Phase.BATCH and m.snapshot.batch_index == 0 and m.snapshot.item_index == 1):
        assert m.step(FAR) is not StepKind.NOOP
    pre, w = m.snapshot, step_witness(m, FAR)
    m.step(FAR)
    assert await sc.step(pre, w.encode()) == m.snapshot.commitment()
    hashes, origins, commitments, elements, values, proofs = decode([OPENING_TYPE], w.blob)[0]

    def opening(**changes: object) -> bytes:
        fields = {"hashes": list(hashes), "origins": list(origins), "commitments": list(commitments),
                  "elements": list(elements), "values": list(values), "proofs": list(proofs)} | changes
        return replace(w, blob=encode([OPENING_TYPE], [tuple(fields.values())])).encode()

    other = sc.inputs.batches[5].blob
    assert other is not None
    flipped = bytearray(proofs[-1])
    flipped[10] ^= 1
    value = bytearray(values[-1])
    value[31] ^= 1  # a byte of the leaf
    forged = {
        "a forged KZG proof": (opening(proofs=[*proofs[:-1], bytes(flipped)]), "InvalidBlobOpening"),
        "another proof of the blob (another element's)": (opening(proofs=[*proofs[:-1], proofs[0]]),
                                                          "InvalidBlobOpening"),
        "a value not the blob's": (opening(values=[*values[:-1], bytes(value)]), "InvalidBlobOpening"),
        "another blob's commitment": (opening(commitments=[sidecar_of(other.blobs).commitments[0]]),
                                      "InvalidBlobOpening"),
        "another batch's versioned hashes": (opening(hashes=list(other.versioned_hashes)), "InvalidBlobBinding"),
        "origins the inbox did not check": (opening(origins=[(1, b"\x11" * 32)]), "InvalidBlobBinding"),
        "a missing element of the leaf": (opening(elements=elements[:-1], values=values[:-1], proofs=proofs[:-1]),
                                          "InvalidBlobOpening"),
        "elements out of order": (opening(elements=elements[::-1], values=values[::-1], proofs=proofs[::-1]),
                                  "InvalidBlobOpening"),
    }
    # The leaf opened at another offset: the elements (and proofs) of the next leaf, all genuine.
    batch = sc.inputs.batches[0]
    assert batch.blob is not None
    nxt = decode([OPENING_TYPE], step_witness_for(batch.blob, 2))[0]
    forged["the elements of another leaf"] = (opening(elements=list(nxt[3]), values=list(nxt[4]), proofs=list(nxt[5])),
                                              "InvalidBlobOpening")
    for name, (proof, error) in forged.items():
        assert await sc.revert_of(pre, proof) == error, name


async def test_gas_of_blob_steps(l1: L1Client, chain: Anvil) -> None:
    """A transfer read from a blob, and a block started from one, as real transactions (printed; under
    1M gas like every step: 614k and 682k measured here)."""
    sc, _ = await blob_scenario(l1, chain)
    await step_gas(sc, sc.machine(), {"START from a blob BLOCK leaf": StepKind.START,
                                      "a transfer from a blob TX leaf": (0, 1)})


def step_witness_for(blob: BlobBatch, index: int) -> bytes:
    from services.rollups._machine import L1Batch
    from services.rollups._witness import blob_opening

    return blob_opening(L1Batch(0, 0, blob.input_root(), decode_blob_leaves(blob_stream(blob.blobs)), blob), index)
