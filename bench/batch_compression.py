"""Batch bytes per transfer: today's batch encoding against zlib, brotli and span-batch-style packing.

    .venv/bin/python bench/batch_compression.py [--sizes 100 1000 10000] [--seed 15]

One L2 block of N realistic transfers per batch (N = ``--sizes``): many senders (N / 4, each
sending about 4 with sequential nonces from a nonce it already had), a few recipients (5, one
taking half of the transfers: an exchange), typical values (mostly 2-3 significant digits of
ether, a fifth exact to the wei), the fees a wallet sets (a few tips, max fee = tip + 2x base
fee mostly), 21,000 gas, no data; every one signed (EIP-1559, chain 901), as the sequencer seals
them. Each encoding is measured on the same bytes:

- **today**: what the batcher posts (``protocol.encode_batch``: version byte, framed BLOCK leaf
  and TX leaves, each transaction's raw bytes; no compression, because the inbox computes the
  input root on L1 from what derivation reads);
- **zlib** levels 6 and 9 and **brotli** qualities 6 and 11 (window 2**24) of today's bytes;
- **span**: a prototype of Optimism's span-batch idea for one block (``SpanBlock``): the block's
  fields once, then columns: the signatures' y parity as a bit field, r and s (32 bytes each),
  nonces, gas limits, a recipient table (each transaction's recipient as a varint index into it:
  one step further than Optimism, which keeps 20 bytes a transaction), values, tips and max fees
  as LEB128 varints, the data length (and bytes), an access-list bit field (and its RLP if set).
  The chain id is the block's. ``decode(encode(x)) == x`` is asserted for every block measured
  (the raw transactions are rebuilt byte for byte);
- **span + zlib 9** and **span + brotli 11**: the columns compressed (Optimism compresses its
  channels too).

Prints a table (bytes per transfer, and the encode time per transfer) with the command line.
"""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import brotli
import rlp
from coincurve import PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sequencer_throughput import bench_key
from protocol import BatchBlock, encode_batch, keccak256
from services.l1 import UnsignedTransaction

CHAIN_ID = 901
GWEI = 10**9
ETHER = 10**18
SPAN_VERSION = 1


# -- realistic transfers ----------------------------------------------------------------------


def transfers(n: int, rng: random.Random) -> list[bytes]:
    """``n`` signed EIP-1559 transfers, as described in the module docstring."""
    senders = max(1, n // 4)
    recipients = [keccak256(b"recipient %d" % i)[12:] for i in range(5)]
    base_fee = 1_000_000_000 + rng.randrange(10**8)
    nonces = [rng.randrange(5_000) for _ in range(senders)]
    keys = [PrivateKey(bench_key(10_000_000 + rng.randrange(10**9))) for _ in range(senders)]
    out = []
    for i in range(n):
        s = i % senders  # round robin: a sender's transfers interleave with others', nonces in order
        to = recipients[0] if rng.random() < 0.5 else rng.choice(recipients[1:])
        if rng.random() < 0.8:
            value = rng.randrange(1, 1000) * 10 ** rng.randrange(13, 18)  # 0.00001-0.999 ETH, 1-3 digits
        else:
            value = rng.randrange(ETHER // 1000, 5 * ETHER)  # exact to the wei (a swap's output, a payroll)
        tip = rng.choice((GWEI // 10, GWEI, GWEI, 3 * GWEI // 2, 2 * GWEI))
        max_fee = tip + base_fee * rng.choice((2, 2, 2, 3)) if rng.random() < 0.9 else 50 * GWEI
        fields = UnsignedTransaction(CHAIN_ID, nonces[s], tip, max_fee, 21_000, to, value)
        nonces[s] += 1
        sig = keys[s].sign_recoverable(fields.signing_hash(), hasher=None)
        out.append(fields.encode_signed(sig[64], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")))
    return out


# -- span-batch-style packing (a prototype) ---------------------------------------------------


def put_varint(out: bytearray, value: int) -> None:
    """Unsigned LEB128."""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated span block")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value


def bits(flags: Sequence[bool]) -> bytes:
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def unbits(data: bytes, n: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(n)]


def as_int(item: bytes) -> int:
    return int.from_bytes(item, "big")


@dataclass(frozen=True, slots=True)
class SpanBlock:
    """One block in span-batch style. ``encode`` takes the block's raw EIP-1559 transactions of
    ``chain_id``; ``decode`` gives them back byte for byte."""

    number: int
    timestamp: int
    l1_origin_number: int
    l1_origin_hash: bytes
    chain_id: int
    transactions: tuple[bytes, ...]

    def encode(self) -> bytes:
        fields = []
        for raw in self.transactions:
            if raw[0] != 2:
                raise ValueError("only EIP-1559 transactions in this prototype")
            items = rlp.decode(raw[1:])
            if as_int(items[0]) != self.chain_id:
                raise ValueError("a transaction of another chain")
            fields.append(items)
        out = bytearray((SPAN_VERSION,))
        for v in (self.number, self.timestamp, self.l1_origin_number, self.chain_id, len(fields)):
            put_varint(out, v)
        out += self.l1_origin_hash
        out += bits([as_int(f[9]) == 1 for f in fields])  # y parity
        out += bits([f[5] == b"" for f in fields])  # contract creations (no recipient)
        out += bits([f[8] != [] for f in fields])  # access lists
        for f in fields:
            out += as_int(f[10]).to_bytes(32, "big") + as_int(f[11]).to_bytes(32, "big")  # r, s
        table = list(dict.fromkeys(f[5] for f in fields if f[5]))
        put_varint(out, len(table))
        for address in table:
            out += address
        index = {a: i for i, a in enumerate(table)}
        for column in (1, 4, 5, 6, 2, 3):  # nonce, gas, to (index), value, tip, max fee
            for f in fields:
                if column == 5:
                    if f[5]:
                        put_varint(out, index[f[5]])
                else:
                    put_varint(out, as_int(f[column]))
        for f in fields:
            put_varint(out, len(f[7]))
            out += f[7]
            if f[8] != []:
                encoded = rlp.encode(f[8])
                put_varint(out, len(encoded))
                out += encoded
        return bytes(out)

    @staticmethod
    def decode(data: bytes) -> SpanBlock:
        r = Reader(data)
        if r.take(1)[0] != SPAN_VERSION:
            raise ValueError("unknown span block version")
        number, timestamp, origin, chain_id, n = (r.varint() for _ in range(5))
        origin_hash = r.take(32)
        flag_bytes = (n + 7) // 8
        parity, creation, has_list = (unbits(r.take(flag_bytes), n) for _ in range(3))
        sigs = [(as_int(r.take(32)), as_int(r.take(32))) for _ in range(n)]
        table = [r.take(20) for _ in range(r.varint())]
        nonce = [r.varint() for _ in range(n)]
        gas = [r.varint() for _ in range(n)]
        to = [b"" if creation[i] else table[r.varint()] for i in range(n)]
        value, tip, max_fee = ([r.varint() for _ in range(n)] for _ in range(3))
        txs = []
        for i in range(n):
            data_i = r.take(r.varint())
            access = rlp.decode(r.take(r.varint())) if has_list[i] else []
            payload = [chain_id, nonce[i], tip[i], max_fee[i], gas[i], to[i], value[i], data_i, access,
                       int(parity[i]), *sigs[i]]
            txs.append(b"\x02" + rlp.encode(payload))
        if r.pos != len(data):
            raise ValueError("trailing bytes after the span block")
        return SpanBlock(number, timestamp, origin, origin_hash, chain_id, tuple(txs))


# -- the measurement --------------------------------------------------------------------------


def brotli_11(data: bytes) -> bytes:
    return bytes(brotli.compress(data, quality=11, lgwin=24))


def brotli_6(data: bytes) -> bytes:
    return bytes(brotli.compress(data, quality=6, lgwin=24))


def measure(n: int, rng: random.Random) -> tuple[float, list[tuple[str, int, float]]]:
    """The mean raw transfer's size, and (encoding, bytes, encode seconds) for one block of ``n``
    transfers; asserts the round trips."""
    raws = transfers(n, rng)
    origin_hash = keccak256(b"origin")
    block = BatchBlock(1_000_000, 1_780_000_000, 24_000_000, origin_hash, tuple(raws))
    span_block = SpanBlock(block.number, block.timestamp, block.l1_origin_number, origin_hash, CHAIN_ID, tuple(raws))

    def timed(f: Callable[[], bytes]) -> tuple[bytes, float]:
        t0 = time.perf_counter()
        out = f()
        return out, time.perf_counter() - t0

    today, t_today = timed(lambda: encode_batch([block]))
    span, t_span = timed(span_block.encode)
    assert SpanBlock.decode(span) == span_block, "span round trip"
    rows = [("today (protocol.encode_batch)", today, t_today)]
    for name, f, src, t_src in (
            ("zlib 6", lambda d: zlib.compress(d, 6), today, t_today),
            ("zlib 9", lambda d: zlib.compress(d, 9), today, t_today),
            ("brotli 6", brotli_6, today, t_today),
            ("brotli 11", brotli_11, today, t_today),
            ("span", None, span, t_span),
            ("span + zlib 9", lambda d: zlib.compress(d, 9), span, t_span),
            ("span + brotli 11", brotli_11, span, t_span)):
        if f is None:
            rows.append((name, src, t_src))
            continue
        out, t = timed(lambda f=f, src=src: f(src))  # type: ignore[misc]
        rows.append((name, out, t_src + t))
    compressed = dict((name, data) for name, data, _ in rows)
    assert zlib.decompress(compressed["zlib 9"]) == today and brotli.decompress(compressed["brotli 11"]) == today
    assert SpanBlock.decode(brotli.decompress(compressed["span + brotli 11"])) == span_block
    return sum(map(len, raws)) / n, [(name, len(data), seconds) for name, data, seconds in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000], help="transfers per block")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    measured = {n: measure(n, rng) for n in args.sizes}
    results = {n: rows for n, (_, rows) in measured.items()}
    raw = statistics.mean(mean for mean, _ in measured.values())
    print(f"**batch bytes per transfer, one L2 block of N transfers** (a raw signed transfer: {raw:.1f} B on average)")
    print(f"command: `{shlex.join(['python', 'bench/batch_compression.py', *sys.argv[1:]])}`")
    print()
    print("| encoding | " + " | ".join(f"N = {n:,}: B/transfer (total)" for n in args.sizes)
          + " | encode us/transfer (N = " + f"{args.sizes[-1]:,})" + " |")
    print("| --- |" + " --- |" * (len(args.sizes) + 1))
    for i, (name, _, _) in enumerate(results[args.sizes[0]]):
        cells = []
        for n in args.sizes:
            size = results[n][i][1]
            cells.append(f"{size / n:.1f} ({size:,})")
        us = results[args.sizes[-1]][i][2] / args.sizes[-1] * 1e6
        print(f"| {name} | " + " | ".join(cells) + f" | {us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
