"""A forwarding hop's store writes per two-hop payment, alone: the CPU of ChannelsStore's commits
as hop B makes them in bench/channels.py's batched two-hop rows, without the network.

    .venv/bin/python bench/channels_store.py [--payments 6000] [--chain 64] [--in-flight 96] [--rounds 5]

Per chain of ``--chain`` payments, on a real SQLite file (WAL, groups of commits as the worker
syncs them): A's chain of adds co-signed (a forward RECEIVED each, with its event), each forward's
H6 count, B's chain of adds to C signed and stored (FORWARDED), co-signed, C's settles co-signed
(SETTLING), B's settles to A signed, then co-signed (DONE). Each state holds ``--in-flight`` HTLCs.
Prints the CPU (process time) per payment of each round and the least of them: the noise of a
shared machine only adds. A/B: run it in each tree (PYTHONPATH=TREE), alternating.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from services.channels import ChannelRecord, ChannelsStore, ChannelStatus, StateRecord
from services.channels._records import ForwardRecord, ForwardStatus, RouteHop
from services.channels._store import Meaning
from services.runtime import Storage

AB, BC = b"\xab" * 32, b"\xbc" * 32


def _states(in_flight: int) -> list[tuple[bool, int, bytes, int]]:
    return [(True, 2_001, os.urandom(32), 2_000_000_000 + i) for i in range(in_flight)]


def run(directory: Path, payments: int, chain: int, in_flight: int) -> float:
    """CPU seconds per payment of ``payments`` payments through one store, in chains of ``chain``."""
    storage = Storage(directory / "channels.db")
    storage.sync_in_groups()
    store = ChannelsStore(storage)
    for cid, we_are_a in ((AB, False), (BC, True)):
        record = ChannelRecord(cid, b"\x0a" * 20, b"\x0b" * 20, 1, we_are_a, "127.0.0.1:1", ChannelStatus.OPEN,
                               10**20, 0)
        store.add_channel(record, StateRecord(cid, 0, 10**20, 0, sig_a=b"a" * 65, sig_b=b"b" * 65), "CHANNEL_OPEN")
    held = _states(in_flight - chain)  # the HTLCs of the payments before these, in every state
    sequence = {AB: 0, BC: 0}
    onward = (RouteHop(BC, b"\x0c" * 20, 1_000, 1_999_000_000),)

    def state(cid: bytes, hashes: list[bytes], sig_a: bytes, sig_b: bytes) -> StateRecord:
        htlcs = tuple(held) + tuple((True, 2_001, h, 2_000_000_000) for h in hashes)
        return StateRecord(cid, sequence[cid], 10**20 - 2_001 * len(htlcs), 2_001 * len(htlcs), htlcs, sig_a, sig_b)

    def cosigned(cid: bytes, hashes: list[bytes], meanings: list[Meaning], *, ours: bool) -> None:
        sequence[cid] += 1
        if ours:  # this node's proposal: signed and stored before it leaves, then co-signed
            store.put_state(state(cid, hashes, b"a" * 65, b""), request=b"r" * 200, steps=b"s" * 150 * len(hashes))
        store.record_chain(state(cid, hashes, b"a" * 65, b"b" * 65), meanings)

    started = time.process_time()
    for _ in range(payments // chain):
        hashes = [os.urandom(32) for _ in range(chain)]
        received = [ForwardRecord(AB, h, 2_001, 2_000_000_000, onward, ForwardStatus.RECEIVED) for h in hashes]
        cosigned(AB, hashes, [Meaning("HTLC_RECEIVED", f.payment_hash, f.amount, [store.forward_effect(f)])
                              for f in received], ours=False)
        for _f in received:  # H6, as the resolver checks each forward before sending it on
            store.forwarded_over(BC, AB)
        sent = [dataclasses.replace(f, status=ForwardStatus.FORWARDED, out_channel=BC) for f in received]
        sequence[BC] += 1
        store.put_state(state(BC, hashes, b"a" * 65, b""), request=b"r" * 200, steps=b"s" * 150 * chain,
                        effects=[store.forward_effect(f) for f in sent])
        store.record_chain(state(BC, hashes, b"a" * 65, b"b" * 65),
                           [Meaning("HTLC_OFFERED", h, 1_000) for h in hashes])
        settling = [dataclasses.replace(f, status=ForwardStatus.SETTLING, preimage=b"\x07" * 32) for f in sent]
        cosigned(BC, [], [Meaning("HTLC_SETTLED", f.payment_hash, 1_000, [store.forward_effect(f)])
                          for f in settling], ours=False)
        cosigned(AB, [], [Meaning("HTLC_SETTLED", f.payment_hash, f.amount,
                                  [store.forward_effect(dataclasses.replace(f, status=ForwardStatus.DONE))])
                          for f in settling], ours=True)
    spent = time.process_time() - started
    storage.close()
    return spent / (payments // chain * chain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=6000)
    parser.add_argument("--chain", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            per.append(run(Path(tmp), args.payments, args.chain, args.in_flight) * 1e6)
    print(f"store CPU us/payment at hop B, {args.payments:,} payments in chains of {args.chain}, "
          f"{args.in_flight} HTLCs a state: rounds {', '.join(f'{u:,.0f}' for u in per)}; least {min(per):,.0f}; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
