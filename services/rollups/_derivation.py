"""Derivation: rebuild the L2 chain from L1 data alone, with the sequencer's own state transition.

Nothing here asks the sequencer anything. ``read_l1`` collects what the inbox and the portal
hold (batches with their leaves and input roots, forced transactions, deposits: read by protocol's
``L1InputReader``, as the sequencer reads them; a batch whose data L1 cannot give back raises
``BatchDataError`` there, never a silent stop) into ``L1Inputs``;
``Deriver`` runs the derivation machine (see _machine, where every rule is written down) over
them as far as they go. What a challenger compares is the snapshot at each sealed block: its
output root commits to the state root, the message-passer root and the block hash.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

from protocol import Genesis, L1Input, L1InputReader, QueuedDeposit, QueuedForced, State

from ._machine import DEFAULT_RULES, DerivedBlock, L1Inputs, Machine, Rules, Skipped, genesis_snapshot


class Deriver:
    """The derived chain: feed ``inputs`` (or use ``read_l1``), then ``advance``.

    From genesis, or (``resume``) from a derived block and the state after it, loaded when first
    needed."""

    def __init__(self, genesis: Genesis, rules: Rules = DEFAULT_RULES, executor: Executor | None = None,
                 resume: tuple[DerivedBlock, Callable[[], State], L1Inputs] | None = None) -> None:
        self.genesis = genesis
        if resume is None:
            self.inputs = L1Inputs()
            state = genesis.state()
            anchor = genesis_snapshot(genesis, state)
            header = genesis.header(state)
            self.machine = Machine(anchor, state, self.inputs, rules, executor=executor)
            first = DerivedBlock(header, header.hash(), (), anchor, 0)
        else:
            # The machine goes on from the block's seal, as it did then: the steps after it (the
            # rest of its batch read, skipped leaves) are taken again, from inputs re-read from L1.
            first, load, self.inputs = resume
            self.machine = Machine(first.snapshot, load, self.inputs, rules, executor=executor, steps=first.step)
        #: Every block derived in this process, from ``first`` (genesis, or the block resumed
        #: at) on: ``blocks[n - base]`` is block n.
        self.blocks: list[DerivedBlock] = [first]
        self.base = first.header.number

    @property
    def head(self) -> DerivedBlock:
        return self.blocks[-1]

    def block(self, number: int) -> DerivedBlock | None:
        """Block ``number`` if this process derived it (or resumed at it)."""
        i = number - self.base
        return self.blocks[i] if 0 <= i < len(self.blocks) else None

    @property
    def skipped(self) -> list[Skipped]:
        return self.machine.skipped

    @property
    def state(self) -> State:
        return self.machine.state

    def advance(self) -> int:
        """Derive as far as L1's inputs allow; how many blocks that added."""
        before = len(self.machine.sealed)
        self.machine.run()
        new = self.machine.sealed[before:]
        self.blocks.extend(new)
        return len(new)


async def read_l1(reader: L1InputReader, inputs: L1Inputs, from_block: int, to_block: int) -> list[L1Input]:
    """Add to ``inputs`` what the inbox and the portal hold in L1 blocks [from, to], in L1 order;
    what that was."""
    items = await reader.read(from_block, to_block)
    for item in items:
        if isinstance(item, QueuedDeposit):
            inputs.add_deposit(item)
        elif isinstance(item, QueuedForced):
            inputs.add_forced(item)
        else:
            inputs.add_batch(item.index, item.l1_block, item.input_root, item.leaves, item.blob)
    return items
