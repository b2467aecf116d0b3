"""Withdrawal proofs: which output a withdrawal is proven against, and the proof itself.

The bridge never builds a proof that would not verify on L1: the output's root must equal
output_root(state root, message-passer root, block hash) of this node's own sealed block at the
output's L2 block (the sequencer's GetBlock), and the message tree over that block's first
``message_count`` message hashes must give its message-passer root (the sized root of
protocol/_commitment.py). A wallet checks the same from the response alone: the preimage hashes
to the root the OutputRegistry holds, and the path leads from the withdrawal's hash to the preimage's
message-passer root (DepositPortal.proveWithdrawal checks exactly that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocol import OUTPUT_VERSION, MerkleTree, output_root
from protos.l2node.rollups.v1 import rollups_pb2
from services.runtime import FailedPrecondition, NotFound

from ._clients import L2Block, Output, SequencerClient
from ._records import OutputRootProof, WithdrawalProof, WithdrawalRecord
from ._store import BridgeStore

_PENDING = (rollups_pb2.OUTPUT_STATUS_PROPOSED, rollups_pb2.OUTPUT_STATUS_CHALLENGED)


def covers(output: Output, record: WithdrawalRecord) -> bool:
    """An output may carry ``record``: at or after its L2 block, not invalidated (the anchor,
    output 0, is genesis: it holds no message)."""
    return output.index > 0 and output.l2_block >= record.l2_block and not output.invalidated


class Proofs:
    """Matches outputs against this node's chain (cached: an output's root never changes) and
    builds proofs from the store's message hashes."""

    def __init__(self, sequencer: SequencerClient, store: BridgeStore) -> None:
        self._sequencer = sequencer
        self._store = store
        self._matches: dict[tuple[int, bytes], L2Block | None] = {}
        self._tree: MerkleTree | None = None

    async def block_of(self, output: Output) -> L2Block | None:
        """This node's block at the output's L2 block if its root is the output's; else None (a
        wrong output, or a block the sequencer does not have yet: asked again next time)."""
        key = (output.index, output.output_root)
        if key in self._matches:
            return self._matches[key]
        block = await self._sequencer.block(output.l2_block)
        if block is None:
            return None
        ours = output_root(block.state_root, block.message_passer_root, block.hash)
        self._matches[key] = block if ours == output.output_root else None
        return self._matches[key]

    def cached_block(self, output: Output) -> L2Block | None:
        """What :meth:`block_of` found for ``output``, without asking (None: not matched yet)."""
        return self._matches.get((output.index, output.output_root))

    async def choose(self, record: WithdrawalRecord, outputs: Iterable[Output]) -> tuple[Output, L2Block] | None:
        """The lowest-index FINALIZED output covering ``record`` that matches this node's chain,
        else the lowest-index pending one (GetWithdrawalProof's rule); None: none yet."""
        candidates = sorted((o for o in outputs if covers(o, record)), key=lambda o: o.index)
        for wanted in ((rollups_pb2.OUTPUT_STATUS_FINALIZED,), _PENDING):
            for output in candidates:
                if output.status in wanted and (block := await self.block_of(output)) is not None:
                    return output, block
        return None

    async def for_output(self, record: WithdrawalRecord, output: Output) -> tuple[Output, L2Block]:
        """``output`` if ``record`` may be proven against it; FAILED_PRECONDITION saying why not."""
        if not covers(output, record):
            raise FailedPrecondition(
                f"output {output.index} ({output.word}, L2 block {output.l2_block}) cannot carry a withdrawal of "
                f"L2 block {record.l2_block}", reason="OUTPUT_DOES_NOT_COVER")
        block = await self.block_of(output)
        if block is None:
            raise FailedPrecondition(f"output {output.index}'s root is not this node's chain at L2 block "
                                     f"{output.l2_block}", reason="OUTPUT_MISMATCH")
        return output, block

    def build(self, record: WithdrawalRecord, output: Output, block: L2Block) -> WithdrawalProof:
        """The proof of ``record`` against ``output`` (whose root ``block`` reproduces)."""
        nonce, count = record.message.nonce, block.message_count
        if nonce >= count:
            raise FailedPrecondition(f"output {output.index}'s block {block.number} holds {count} messages, not "
                                     f"message {nonce}", reason="OUTPUT_DOES_NOT_COVER")
        tree = self._tree_of(count)
        if tree.root() != block.message_passer_root:
            # The messages read so far are not the chain's: they are re-read; nothing to prove yet.
            raise FailedPrecondition(f"the messages read do not give block {block.number}'s message-passer root",
                                     reason="MESSAGES_BEHIND")
        if tree.leaf(nonce) != record.withdrawal_hash:
            raise NotFound(f"message {nonce} of this chain is not this withdrawal", reason="WITHDRAWAL_NOT_FOUND")
        path = tree.prove(nonce)
        root_proof = OutputRootProof(OUTPUT_VERSION, block.state_root, block.message_passer_root, block.hash)
        return WithdrawalProof(record, output.index, output.output_root, output.l2_block, output.word, root_proof,
                               path.index, path.count, tuple(path.siblings))

    def _tree_of(self, count: int) -> MerkleTree:
        hashes: Sequence[bytes] = self._store.message_hashes(count)
        if len(hashes) != count:
            raise FailedPrecondition(f"{len(hashes)} of the chain's {count} messages read so far",
                                     reason="MESSAGES_BEHIND")
        tree = self._tree
        if tree is None or tree.count > count or any(tree.leaf(i) != hashes[i] for i in range(tree.count)):
            tree = MerkleTree(hashes)
        elif tree.count < count:
            tree = tree.copy()
            tree.append(hashes[tree.count:])
        self._tree = tree
        return tree

    def forget(self) -> None:
        """The chain rewound: blocks and messages may differ now."""
        self._matches.clear()
        self._tree = None
