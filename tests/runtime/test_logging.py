"""Logging: readable on a terminal, JSON otherwise, a JSON file per process, crash levels, and the
one redaction of URL credentials."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import pty
from collections.abc import Iterator

import pytest
from google.rpc import error_details_pb2

import supervisor as sv
from services.runtime import LOG_DIR_ENV, FieldViolation, Unavailable, init_logging, log_event, redact, redact_url

KEY = "9aa3d95b3bc440fa88ea12eaa4456161"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pass@rpc.example.com:8545/", "https://***@rpc.example.com:8545/"),
    ("https://mainnet.infura.io/v3/" + KEY, "https://mainnet.infura.io/v3/***"),
    ("https://eth-mainnet.g.alchemy.com/v2/AbCdEf123456ghIJ", "https://eth-mainnet.g.alchemy.com/v2/***"),
    ("https://x.quiknode.pro/0123abcd4567ef89/", "https://x.quiknode.pro/***/"),
    ("https://api.example.com/rpc?module=x&apikey=ZZZ&api-key=Y&token=T", "https://api.example.com/rpc?module=x&apikey=***&api-key=***&token=***"),
    ("https://h.example/rpc?auth=" + KEY + "#frag", "https://h.example/rpc?auth=***#***"),
    # Nothing secret: unchanged.
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ("https://rpc.ankr.com/eth", "https://rpc.ankr.com/eth"),
    # What follows a version is masked whatever it looks like: a key need not look like one.
    ("https://arbitrum-mainnet.example.org/v1/mainnet", "https://arbitrum-mainnet.example.org/v1/***"),
    ("https://eth.example.org/v3/secret-api-key", "https://eth.example.org/v3/***"),
    ("http://127.0.0.1:8545/rpc", "http://127.0.0.1:8545/rpc"),
    ("127.0.0.1:50051", "127.0.0.1:50051"),  # a gRPC address is not a URL
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_finds_urls_in_free_text() -> None:
    text = f"cannot reach https://a:b@h.io/v3/{KEY}: refused (then http://127.0.0.1:1)."
    assert redact(text) == "cannot reach https://***@h.io/v3/***: refused (then http://127.0.0.1:1)."
    assert redact("no url here") == "no url here"
    assert redact_url("http://[::1") == "***"  # unparseable: nothing of it is shown


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_a_terminal_gets_readable_lines_a_pipe_gets_json(restore_logging: None) -> None:
    controller, terminal = pty.openpty()
    with os.fdopen(terminal, "w") as tty:
        init_logging("sequencer", logging.INFO, stream=tty)
        logging.getLogger("l2node.test").warning("batch posted to https://u:p@h.io/x", extra={"bytes": 12})
        tty.flush()
        shown = os.read(controller, 4096).decode()
    os.close(controller)
    assert not shown.lstrip().startswith("{")
    assert "WARNING" in shown and "sequencer[" in shown and "batch posted to https://***@h.io/x" in shown
    assert "bytes=12" in shown and "u:p" not in shown

    piped = io.StringIO()
    init_logging("sequencer", logging.INFO, stream=piped)
    logging.getLogger("l2node.test").warning("batch posted to https://u:p@h.io/x", extra={"bytes": 12})
    entry = json.loads(piped.getvalue())
    assert entry["level"] == "WARNING" and entry["message"] == "batch posted to https://***@h.io/x"
    assert entry["bytes"] == 12


def test_with_a_log_dir_each_process_also_writes_json_to_its_file(
    restore_logging: None, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    init_logging("core/sequencer", logging.INFO, stream=io.StringIO())
    logging.getLogger("l2node.test").info("hello", extra={"url": "https://h.io/v3/" + KEY})
    (entry,) = [json.loads(line) for line in (tmp_path / "logs" / "core.sequencer.log").read_text().splitlines()]
    assert entry["message"] == "hello" and entry["service"] == "core/sequencer"
    assert entry["url"] == "https://h.io/v3/***"


@pytest.mark.parametrize(("event_type", "normal", "level"), [
    (sv.EventType.EXITED, False, "WARNING"),
    (sv.EventType.PROBE_FAILED, False, "WARNING"),
    (sv.EventType.ESCALATED, False, "ERROR"),
    (sv.EventType.START_FAILED, False, "ERROR"),
    (sv.EventType.EXITED, True, "INFO"),
    (sv.EventType.STARTED, True, "INFO"),
    (sv.EventType.RESTARTED, True, "INFO"),
])
def test_a_crash_is_a_warning_giving_up_an_error(
    restore_logging: None, event_type: sv.EventType, normal: bool, level: str
) -> None:
    out = io.StringIO()
    init_logging("supervisor", logging.INFO, stream=out)
    bus = sv.EventBus()
    bus.add_listener(lambda event: log_event(logging.getLogger("l2node.supervisor"), event))
    bus.publish(event_type, "sequencer", pid=42, reason="killed by SIGKILL", normal=normal)
    entry = json.loads(out.getvalue())
    assert entry["level"] == level and entry["message"] == event_type.value
    assert entry["child"] == "sequencer" and entry["child_pid"] == 42


def test_an_error_status_never_carries_url_credentials() -> None:
    error = Unavailable(f"L1 https://u:secret@h.io/v3/{KEY} unreachable",
                        field_violations=[FieldViolation("l1.rpc", f"https://h.io/?apikey={KEY}")])
    status = error.to_status_proto()
    assert status.message == "L1 https://***@h.io/v3/*** unreachable"
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    assert bad.field_violations[0].description == "https://h.io/?apikey=***"
