"""`l2node logs [ID] [--follow]`: the tree's logs, read from its files.

Every process of the tree writes JSON lines to DATA_DIR/logs/<id>.log (services.runtime's
logging; rotated at a size cap, so a follower reopens a file that was rotated under it). Without
an id, every file is shown, merged in time order. On a terminal the lines are shown readable;
piped, as the JSON they are (for jq).
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.runtime import console_line, log_file

#: How often --follow looks for new lines.
FOLLOW_POLL_S = 0.2


def log_dir(data_dir: pathlib.Path) -> pathlib.Path:
    return data_dir / "logs"


def select(data_dir: pathlib.Path, child_id: str | None) -> list[pathlib.Path]:
    """The log files to show: one child's, or all; ValueError naming the ids there are."""
    directory = log_dir(data_dir)
    known = sorted(directory.glob("*.log")) if directory.is_dir() else []
    if child_id is None:
        if not known:
            raise ValueError(f"no logs in {directory} (does a tree run, or did one, with this data dir?)")
        return known
    wanted = log_file(directory, child_id)
    if not wanted.is_file():
        ids = ", ".join(p.stem for p in known) or "none"
        raise ValueError(f"no log for {child_id!r} in {directory}; there are: {ids}")
    return [wanted]


def last_lines(paths: Iterable[pathlib.Path], count: int) -> list[str]:
    """The newest ``count`` lines of these files, merged in time order."""
    lines: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [line.rstrip("\n") for line in f.readlines()[-count:] if line.strip()]
    return sorted(lines, key=_ts)[-count:] if count > 0 else []


def render(line: str, readable: bool) -> str:
    if not readable:
        return line
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    return console_line(entry) if isinstance(entry, dict) else line


@dataclass
class _Tail:
    path: pathlib.Path
    inode: int = -1
    offset: int = 0
    partial: str = ""


def follow(paths: Iterable[pathlib.Path], emit: Callable[[str], None], *, from_end: bool = True,
           should_stop: Callable[[], bool] = lambda: False) -> None:
    """Call ``emit`` with every line appended to these files from now on, until ``should_stop``
    says so (Ctrl-C otherwise). A file rotated (replaced) meanwhile is read from its start."""
    tails = [_Tail(p) for p in paths]
    for t in tails:
        if from_end and t.path.exists():
            st = t.path.stat()
            t.inode, t.offset = st.st_ino, st.st_size
    while not should_stop():
        fresh: list[str] = []
        for t in tails:
            fresh += _read_new(t)
        for line in sorted(fresh, key=_ts):
            emit(line)
        time.sleep(FOLLOW_POLL_S)


def _read_new(t: _Tail) -> list[str]:
    try:
        st = os.stat(t.path)
    except FileNotFoundError:
        return []  # between a rotation's rename and the new file
    if st.st_ino != t.inode or st.st_size < t.offset:
        t.inode, t.offset, t.partial = st.st_ino, 0, ""  # rotated or truncated: the new file from its start
    if st.st_size == t.offset:
        return []
    with open(t.path, "rb") as f:
        f.seek(t.offset)
        chunk = f.read()
    t.offset += len(chunk)
    text = t.partial + chunk.decode("utf-8", errors="replace")
    *complete, t.partial = text.split("\n")
    return [line for line in complete if line.strip()]


def _ts(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return ""
    return str(entry.get("ts", "")) if isinstance(entry, dict) else ""
