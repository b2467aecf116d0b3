"""Rollup parameters that are safe on the L1 they run on (issue 12, item 7): the one place that
says so, for `l2node deploy` / `l2node up` (before deploying) and the rollups worker (at start,
from the deployed contracts' values).

The arithmetic, with ``b`` the L1 block time *measured* from L1 (:func:`l1_block_time_s`, never
taken from config) and ``M`` = MOVE_MARGIN_BLOCKS:

- **Chess clocks.** A game over a trace of ``n`` steps bisects ``R = ceil(log2 n)`` rounds; the
  defender makes R moves and the challenger R + 1 (the last is the one-step proof). Each move is
  an L1 transaction that must land on its side's clock, so with ``n`` = max_trace_length (the
  deepest game any output can need): ``max_clock_s >= (R + 1) * b * M``. The issue's failure:
  60 s clocks on 12 s blocks is 5 blocks, fewer than the 6 moves the game needed.
- **Challenge window.** The challenger sees a proposal once it is ``d`` blocks deep (the rollups
  worker's confirmation depth), judges it and gets its challenge in:
  ``challenge_window_s >= (d + M) * b``. It does not depend on the clocks (an output with an open
  game never finalizes). This is a mechanical floor; production's 7 days are about L1 censorship.
- **Sequencer window** ``W`` (L1 blocks). Floor: the sequencer seals a heartbeat block once its
  origin is W/2 behind the head it follows (spec C), and that block must then reach L1 within the
  other half: ``W / 2 >= d + ceil(batch_interval_s / b) + M`` (its L1 view's depth, the batcher's
  cadence, inclusion). Ceiling: ``W <= 8191 - HISTORY_MARGIN_BLOCKS``: the inbox checks every
  block's origin hash against the EIP-2935 history (8191 blocks; contracts/BatchInbox.sol), and a
  batch landing late must find its origins still attested there, so that derivation skips a block
  it posted too late (one rule, Python and Solidity) rather than the inbox reverting the whole
  batch with the batch's in-window blocks. The margin, 256 blocks (51 min at 12 s), is a stuck
  batch transaction's time in the mempool under congestion.
- **Genesis origin.** At deploy the genesis ``l1_origin`` must be at most W/2 blocks behind the
  L1 head: past W, derivation makes one L2 block per L1 block of lapsed window (rule F) before
  any block of the sequencer's can count.

MOVE_MARGIN_BLOCKS = 4, the L1 blocks one move may take: one to see the opponent's move mined,
one for the honest side's compute (a bisection claim is a derived snapshot, a one-step proof a
witness of at most a block's execution: about a second, bench/RESULTS.md) and its transaction's
broadcast, two of inclusion slack under congestion (EIP-1559's base fee rises 12.5% a block; the
sender's fee cap covers that and replaces a stuck transaction). Measured: a devnet move takes
~1.5 blocks (a 10-round game ~25-30 s on a 1 s L1), so 4 is 2.7x that. It is a floor: a real L1
deployment should have far more (the production preset: 3.5-day clocks are ~760 blocks a move).

**Local devnet** = chain id 31337 (anvil's default, `l2node up`'s own anvil) on a loopback URL
(127.0.0.0/8, ::1, localhost). There an unsafe combination is logged as a warning (a test may
want 8 s clocks); anywhere else it is refused, naming each reason with its numbers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from typing import Any, Final, NamedTuple

from eth_abi.exceptions import DecodingError
from yarl import URL

from services.l1 import Artifact, BlockHeader, Contract, L1Client

#: L1 blocks one dispute move may take (see the module docstring).
MOVE_MARGIN_BLOCKS: Final = 4
#: Blocks the EIP-2935 history contract serves (its ring buffer), which the inbox reads origins from.
HISTORY_BLOCKS: Final = 8191
#: Blocks a late batch may spend in the mempool and still find its origins in the history.
HISTORY_MARGIN_BLOCKS: Final = 256
MAX_SEQUENCER_WINDOW: Final = HISTORY_BLOCKS - HISTORY_MARGIN_BLOCKS
#: How many recent L1 blocks the block time is averaged over.
BLOCK_TIME_SAMPLE: Final = 64
#: The L1 chain id of a local devnet (anvil's default).
DEVNET_CHAIN_ID: Final = 31337
#: The services' defaults: the rollups worker's and the batcher's confirmation depth, the
#: batcher's cadence (services/rollups/_settings.py, services/sequencer/_settings.py).
CONFIRMATION_DEPTH: Final = 4
BATCH_INTERVAL_S: Final = 1.0

_log = logging.getLogger("l2node.params")


class UnsafeParams(ValueError):
    """Rollup parameters refused on this L1; the message names every reason and its numbers."""


class Timings(NamedTuple):
    """The deployed values the check reads ([rollups] keys; the registry's and verifier's immutables)."""

    challenge_window_s: int
    max_clock_s: int
    max_trace_length: int
    sequencer_window: int


def game_rounds(max_trace_length: int) -> int:
    """Bisection rounds of the deepest game: ceil(log2(max_trace_length))."""
    return (max_trace_length - 1).bit_length()


def min_clock_s(max_trace_length: int, block_time_s: float) -> float:
    """(R + 1) moves x the L1 block time x MOVE_MARGIN_BLOCKS."""
    return (game_rounds(max_trace_length) + 1) * block_time_s * MOVE_MARGIN_BLOCKS


def min_challenge_window_s(block_time_s: float, confirmation_depth: int = CONFIRMATION_DEPTH) -> float:
    return (confirmation_depth + MOVE_MARGIN_BLOCKS) * block_time_s


def sequencer_window_bounds(block_time_s: float, confirmation_depth: int = CONFIRMATION_DEPTH,
                            batch_interval_s: float = BATCH_INTERVAL_S) -> tuple[int, int]:
    """The smallest and largest safe sequencer window, in L1 blocks."""
    half = confirmation_depth + math.ceil(batch_interval_s / block_time_s) + MOVE_MARGIN_BLOCKS
    return 2 * half, MAX_SEQUENCER_WINDOW


def unsafe_reasons(t: Timings, block_time_s: float, *, genesis_origin: int, l1_head: int,
                   confirmation_depth: int = CONFIRMATION_DEPTH, batch_interval_s: float = BATCH_INTERVAL_S
                   ) -> list[str]:
    """Why ``t`` is unsafe on an L1 of ``block_time_s`` whose head (at deploy) is ``l1_head``;
    empty when it is safe. Each reason carries its arithmetic."""
    reasons = []
    rounds, b = game_rounds(t.max_trace_length), block_time_s
    clock = min_clock_s(t.max_trace_length, b)
    if t.max_clock_s < clock:
        reasons.append(
            f"max_clock_s {t.max_clock_s} is below {clock:g} s: max_trace_length {t.max_trace_length} makes "
            f"{rounds} rounds (ceil(log2)), so {rounds} moves by the defender and {rounds + 1} by the challenger, "
            f"x {b:g} s per L1 block x {MOVE_MARGIN_BLOCKS} blocks per move (even at one move per block, "
            f"{t.max_clock_s} s lasts {math.floor(t.max_clock_s / b)} of the {rounds + 1} moves)")
    window = min_challenge_window_s(b, confirmation_depth)
    if t.challenge_window_s < window:
        reasons.append(
            f"challenge_window_s {t.challenge_window_s} is below {window:g} s: a challenger sees a proposal "
            f"{confirmation_depth} blocks deep and needs {MOVE_MARGIN_BLOCKS} more to get its challenge in, "
            f"x {b:g} s per L1 block")
    low, high = sequencer_window_bounds(b, confirmation_depth, batch_interval_s)
    if t.sequencer_window < low:
        reasons.append(
            f"sequencer_window {t.sequencer_window} is below {low} L1 blocks: twice (the heartbeat fires at W/2) "
            f"confirmation depth {confirmation_depth} + the batcher's {batch_interval_s:g} s cadence in "
            f"{b:g} s blocks + {MOVE_MARGIN_BLOCKS} blocks of inclusion")
    if t.sequencer_window > high:
        reasons.append(
            f"sequencer_window {t.sequencer_window} is above {high} L1 blocks: the inbox checks origins against "
            f"the EIP-2935 history of {HISTORY_BLOCKS} blocks, less {HISTORY_MARGIN_BLOCKS} for a late batch")
    behind = l1_head - genesis_origin
    if behind > t.sequencer_window // 2:
        reasons.append(
            f"the genesis l1_origin {genesis_origin} is {behind} L1 blocks behind the L1 head {l1_head}, more than "
            f"half the sequencer window ({t.sequencer_window // 2}): derivation would make one L2 block per "
            f"lapsed L1 block; set the genesis's l1_origin to a recent L1 block")
    return reasons


async def l1_block_time_s(l1: L1Client, sample: int = BLOCK_TIME_SAMPLE) -> tuple[float | None, int]:
    """The L1's mean block time over its last ``sample`` blocks (None: no block after genesis yet)
    and its head. Timestamps are whole seconds, so a mean under 1 s is an automining dev chain
    (blocks only when transactions come): it counts as 1 s."""
    return await _block_time_to(l1, await l1.get_block("latest"), sample)


async def _block_time_to(l1: L1Client, head: BlockHeader | None, sample: int = BLOCK_TIME_SAMPLE
                         ) -> tuple[float | None, int]:
    """:func:`l1_block_time_s` with the head already read."""
    if head is None or head.number == 0:
        return None, 0 if head is None else head.number
    back = min(sample, head.number)
    old = await l1.get_block(head.number - back)
    if old is None:
        return None, head.number
    return max(1.0, (head.timestamp - old.timestamp) / back), head.number


def is_local_devnet(chain_id: int, url: str) -> bool:
    """Chain id 31337 on a loopback URL (the module docstring's definition)."""
    if chain_id != DEVNET_CHAIN_ID:
        return False
    host = URL(url).host or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def deployed_timings(l1: L1Client, registry: bytes, verifier: bytes) -> Timings:
    """The values the deployed OutputRegistry and StepVerifier hold (their immutables)."""
    reads = _timing_reads(registry, verifier)
    return _timings(reads, await l1.batch([_eth_call(contract, name) for contract, name in reads]))


def _timing_reads(registry: bytes, verifier: bytes) -> list[tuple[Contract, str]]:
    """The view functions that hold the :class:`Timings`, in its order."""
    reg = Contract(Artifact.load("OutputRegistry"), registry)
    ver = Contract(Artifact.load("StepVerifier"), verifier)
    return [(reg, "challengeWindow"), (reg, "maxClockDuration"), (reg, "maxTraceLength"), (ver, "sequencerWindow")]


def _eth_call(contract: Contract, name: str) -> tuple[str, tuple[dict[str, str], str]]:
    assert contract.address is not None
    return "eth_call", ({"to": "0x" + contract.address.hex(), "data": "0x" + contract.encode_call(name).hex()},
                        "latest")


def _timings(reads: list[tuple[Contract, str]], answers: list[Any]) -> Timings:
    """Timings from the raw eth_call answers to ``reads`` (DecodingError if one is not a value)."""
    values = [int(contract.decode_output(name, bytes.fromhex(str(answer).removeprefix("0x")))[0])
              for (contract, name), answer in zip(reads, answers, strict=True)]
    return Timings(*values)


async def check_safe_params(l1: L1Client, t: Timings, *, genesis_origin: int, deploy_block: int | None = None,
                            confirmation_depth: int = CONFIRMATION_DEPTH,
                            batch_interval_s: float = BATCH_INTERVAL_S, what: str = "[rollups]") -> list[str]:
    """Check ``t`` on ``l1`` (its block time measured; the genesis origin against ``deploy_block``,
    default the head): UnsafeParams naming every reason unless it is safe or ``l1`` is a local
    devnet, where the reasons are logged as a warning. The reasons either way."""
    return _judge(l1.url, t, await _measure(l1), genesis_origin=genesis_origin, deploy_block=deploy_block,
                  confirmation_depth=confirmation_depth, batch_interval_s=batch_interval_s, what=what)


async def _measure(l1: L1Client) -> tuple[float | None, int, int]:
    """What a check needs to know of ``l1``: its block time (see :func:`l1_block_time_s`), head, chain id."""
    (block_time, head), chain_id = await asyncio.gather(l1_block_time_s(l1), l1.chain_id())
    return block_time, head, chain_id


def _judge(url: str, t: Timings, measured: tuple[float | None, int, int], *, genesis_origin: int,
           deploy_block: int | None, confirmation_depth: int, batch_interval_s: float, what: str) -> list[str]:
    block_time, head, chain_id = measured
    local = is_local_devnet(chain_id, url)
    if block_time is None:
        if local:  # `l2node up`'s fresh anvil: the rollups worker checks once blocks are there
            _log.info("%s not checked: the local devnet has no block yet to measure its block time from", what)
            return []
        reasons = ["the L1 has no block after genesis to measure its block time from"]
    else:
        reasons = unsafe_reasons(t, block_time, genesis_origin=genesis_origin,
                                 l1_head=head if deploy_block is None else deploy_block,
                                 confirmation_depth=confirmation_depth, batch_interval_s=batch_interval_s)
    if not reasons:
        return reasons
    timed = "no block time yet" if block_time is None else f"block time {block_time:g} s, measured"
    shown = f"{what} {t._asdict()} on L1 chain {chain_id} ({timed})"
    if local:
        _log.warning("%s: only safe on a local devnet: %s", shown, "; ".join(reasons))
        return reasons
    raise UnsafeParams(f"{shown} is unsafe: " + "; ".join(reasons) + " (see protocol/_safe_params.py)")


async def check_deployed(l1: L1Client, registry: bytes, verifier: bytes, *, genesis_origin: int, deploy_block: int,
                         confirmation_depth: int = CONFIRMATION_DEPTH) -> list[str]:
    """:func:`check_safe_params` of the deployed contracts' values (the rollups worker, at start).
    Contracts that do not answer (an anvil that lost its state) are the roles' outage to wait out,
    as before: logged, not checked (nothing can be proposed or disputed on them)."""
    # The contracts' values, the L1's chain id and head in one JSON-RPC batch, then the block the
    # block time is measured from: the rollups worker's way to SERVING (two requests, not seven:
    # each ~1 ms of its CPU, on a loop that its watchers' calls wait for).
    reads = _timing_reads(registry, verifier)
    chain_id, head, *answers = await l1.batch(
        [("eth_chainId", ()), ("eth_getBlockByNumber", ("latest", False)),
         *(_eth_call(contract, name) for contract, name in reads)])
    try:
        timings = _timings(reads, answers)
    except DecodingError as exc:
        _log.warning("the deployed contracts' values cannot be read, so not checked: %s", exc)
        return [f"unreadable: {exc}"]
    block_time, head_number = await _block_time_to(l1, None if head is None else BlockHeader.from_json(head))
    measured = (block_time, head_number, int(str(chain_id), 16))
    return _judge(l1.url, timings, measured, genesis_origin=genesis_origin, deploy_block=deploy_block,
                  confirmation_depth=confirmation_depth, batch_interval_s=BATCH_INTERVAL_S,
                  what="the deployed contracts'")
