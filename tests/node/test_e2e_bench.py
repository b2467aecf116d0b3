"""bench/e2e_throughput.py on a whole `l2node up` tree for two seconds of load: it measures what it
says (transfers sealed, made SAFE, derived, their batches read back from L1) and prints its report.
No timing is asserted: only that every figure is there and sane."""

from __future__ import annotations

import pathlib

import pytest

from bench.e2e_throughput import parser, print_report, run


@pytest.mark.parametrize("frames", [False, True], ids=["one-tx-batches", "frames"])
async def test_the_e2e_bench_reports_sealed_safe_derived_and_l1_figures(tmp_path: pathlib.Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       frames: bool) -> None:
    """With ``frames``, the batcher posts every block (~7 KB) in frames of at most 3,000 bytes
    (BatchInbox.appendFrame): the sequencer's follower and the rollups worker read them back."""
    # Depth 1, so that the watch after the window (at most 60 s) sees every transfer SAFE quickly.
    args = parser().parse_args(["--duration", "2", "--accounts", "64", "--max-rate", "256", "--drain-s", "60",
                                "--confirmation-depth", "1", *(["--max-frame-bytes", "3000"] if frames else [])])
    report = await run(args, tmp_path, "test")
    assert report.load["sent"] == report.load["accepted"] == report.signed == 512  # the load ran out, all taken
    assert report.sealed_txs == 512 and report.sealed_blocks >= 1
    # Every transfer sealed became SAFE and was derived by the rollups worker, each with a lag.
    assert report.safe_censored == report.derived_censored == 0
    assert sum(n for _, n in report.safe_lags) == sum(n for _, n in report.derived_lags) == 512
    assert all(lag > 0 for lag, _ in report.safe_lags)
    # ... in two: to the L1 block of its batch, then to SAFE (every batch landed in a block seen).
    assert sum(n for _, n in report.included_lags) == sum(n for _, n in report.depth_lags) == 512
    assert all(a > 0 and b >= 0 for (a, _), (b, _) in zip(report.included_lags, report.depth_lags, strict=True))
    # Their batches, read back from L1: every transfer, at its raw bytes plus framing and ABI.
    every = report.l1_all
    assert every.transfers == 512 and every.l2_blocks >= 1
    assert 100 < every.batch_calldata / every.transfers < 200 and every.batch_gas > 21_000 * every.batches
    assert report.l1.gas_limit == 30_000_000 and report.l1.hardfork
    if frames:  # no L1 transaction carried more than a frame, so blocks went in several
        assert report.l1.biggest_batch <= 3000 and every.batches > every.batch_data // 3000
    assert report.cpu["sequencer"] > 0
    # The sequencer's threads over the window (named only where py-spy is installed), and each call's latency.
    assert report.threads and sum(run for _, run, _ in report.threads) > 0
    assert len(report.load["latency"]) == 2 and all(t > 0 for t in report.load["latency"])  # 512 in calls of 256
    print_report(report)
    out = capsys.readouterr().out
    assert "command: `test`" in out and "load average" in out and "L1 gas per transfer" in out
    assert "SAFE lag in two" in out
    assert "sequencer threads: cores on a CPU" in out and "SendRawTransactions latency" in out
