"""An L2 account: what the state holds per address (no code, no storage: no L2 EVM)."""

from __future__ import annotations

from typing import NamedTuple


class Account(NamedTuple):
    """Nonce (transactions sent) and balance (wei). A NamedTuple, not a dataclass: several are
    built per transaction on the hot path, and a tuple costs a third of a frozen dataclass."""

    nonce: int
    balance: int


#: What every address holds until something is sent to it.
EMPTY_ACCOUNT = Account(0, 0)
