"""The Ethereum JSON-RPC methods: what each one asks of the sequencer (or answers from the head in
memory), and the Ethereum shape of the answer.

State: the sequencer keeps the latest state only (an account model without history), so
eth_getBalance and eth_getTransactionCount at an older block ("safe", "finalized", a number or a
hash) take the latest state back through the blocks since (``_history``), for the last
``history_blocks`` blocks; older ones get geth's error for state a node does not keep (-32000
"historical state ... is not available"), a block not sealed yet geth's "header not found".

Sends: every eth_sendRawTransaction goes out as SendRawTransactions, so those of one JSON-RPC batch
are one call (:meth:`Methods.send_raw`), and a refusal comes back as geth's words (``_errors``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from protocol import DEPOSIT_TX_TYPE as _DEPOSIT
from protocol import (
    MESSAGE_PASSER,
    OUTPUT_VERSION,
    TX_TYPE_EIP1559,
    MalformedWithdrawal,
    Transaction,
    TxRejected,
    decode_transactions,
    decode_withdrawal_call,
    gas_and_price,
    intrinsic_gas,
    next_base_fee,
    output_root,
    sealed_transaction,
)
from protocol import ZERO_ADDRESS as _ZERO
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import Deployment, DeploymentError, checksum

from ._errors import SERVER_ERROR, RpcError, invalid_params, refusal
from ._hex import (
    BlockRef,
    data,
    params_of,
    parse_address,
    parse_block,
    parse_data,
    parse_hash,
    parse_quantity,
    quantity,
)
from ._history import History
from ._settings import JsonRpcSettings
from ._shapes import block_json, deposit_tx_json, receipt_json, signed_tx_json
from ._upstream import Accounts, Head, Rollups, Sequencer

Handler = Callable[[Any], Awaitable[Any]]
#: geth's eth_feeHistory bound on blocks per call.
MAX_FEE_HISTORY: Final = 1024
#: geth's error for a call's code reverting; eth_estimateGas of a malformed withdrawal gets it.
EXECUTION_REVERTED: Final = 3
#: Receipts wait this long for the head to reach their block (the stream is ms behind the store).
_RECEIPT_WAIT_S: Final = 1.0
#: Blocks whose per-transaction cumulative gas is kept (receipts of one block are read together).
_GAS_BLOCKS: Final = 64
_SEALED: Final = frozenset({pb.RECEIPT_STATUS_SEALED, pb.RECEIPT_STATUS_SAFE, pb.RECEIPT_STATUS_FINALIZED})


def header_not_found() -> RpcError:
    return RpcError(SERVER_ERROR, "header not found")


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_params(f"{what} {value!r}: true or false")
    return value


class Methods:
    """Every method, by name (:attr:`table`); handlers take the positional params."""

    def __init__(self, settings: JsonRpcSettings, sequencer: Sequencer, rollups: Rollups | None, head: Head,
                 client_version: str) -> None:
        self._settings = settings
        self._loaded: Deployment | None = None
        self._seq = sequencer
        self._rollups = rollups
        self.head = head
        self._accounts = Accounts(sequencer, head, settings.cached_accounts)
        self._history = History(sequencer, head, settings.history_blocks)
        self._client_version = client_version
        #: A replica's head when eth_syncing first found it behind its upstream (None: not behind).
        self._sync_start: int | None = None
        self._gas: OrderedDict[str, asyncio.Future[list[int]]] = OrderedDict()
        self.table: dict[str, Handler] = {
            "web3_clientVersion": self.web3_clientVersion,
            "web3_sha3": self.web3_sha3,
            "net_version": self.net_version,
            "net_listening": self.net_listening,
            "net_peerCount": self.net_peerCount,
            "eth_chainId": self.eth_chainId,
            "eth_syncing": self.eth_syncing,
            "eth_blockNumber": self.eth_blockNumber,
            "eth_accounts": self.eth_accounts,
            "eth_getBalance": self.eth_getBalance,
            "eth_getTransactionCount": self.eth_getTransactionCount,
            "eth_getCode": self.eth_getCode,
            "eth_getStorageAt": self.eth_getStorageAt,
            "eth_sendRawTransaction": self.eth_sendRawTransaction,
            "eth_getTransactionByHash": self.eth_getTransactionByHash,
            "eth_getTransactionReceipt": self.eth_getTransactionReceipt,
            "eth_getBlockByNumber": self.eth_getBlockByNumber,
            "eth_getBlockByHash": self.eth_getBlockByHash,
            "eth_getBlockTransactionCountByNumber": self.eth_getBlockTransactionCountByNumber,
            "eth_getBlockTransactionCountByHash": self.eth_getBlockTransactionCountByHash,
            "eth_gasPrice": self.eth_gasPrice,
            "eth_maxPriorityFeePerGas": self.eth_maxPriorityFeePerGas,
            "eth_feeHistory": self.eth_feeHistory,
            "eth_estimateGas": self.eth_estimateGas,
            "eth_call": self.eth_call,
            "eth_getLogs": self.eth_getLogs,
            "optimism_outputAtBlock": self.optimism_outputAtBlock,
            "optimism_syncStatus": self.optimism_syncStatus,
            "optimism_rollupConfig": self.optimism_rollupConfig,
        }

    # -- node and chain ------------------------------------------------------------------------

    async def web3_clientVersion(self, params: Any) -> str:
        params_of(params, 0, 0)
        return self._client_version

    async def web3_sha3(self, params: Any) -> str:
        from protocol import keccak256

        (raw,) = params_of(params, 1, 1)
        return data(keccak256(parse_data(raw)))

    async def net_version(self, params: Any) -> str:
        params_of(params, 0, 0)
        return str(await self._seq.chain_id())

    async def net_listening(self, params: Any) -> bool:
        params_of(params, 0, 0)
        return True

    async def net_peerCount(self, params: Any) -> str:
        params_of(params, 0, 0)
        return "0x0"

    async def eth_chainId(self, params: Any) -> str:
        params_of(params, 0, 0)
        return quantity(await self._seq.chain_id())

    async def eth_syncing(self, params: Any) -> bool | dict[str, str]:
        """false on a sequencer (it makes the chain) and on a replica at its upstream's head; while a
        replica is behind it, geth's progress object (``startingBlock``: where this catch-up began)."""
        params_of(params, 0, 0)
        info = await self._seq.chain_info()
        if info.upstream_block <= info.unsafe_block:
            self._sync_start = None
            return False
        if self._sync_start is None:
            self._sync_start = info.unsafe_block
        return {"startingBlock": quantity(self._sync_start), "currentBlock": quantity(info.unsafe_block),
                "highestBlock": quantity(info.upstream_block)}

    async def eth_blockNumber(self, params: Any) -> str:
        params_of(params, 0, 0)
        return quantity(await self._head_number())

    async def eth_accounts(self, params: Any) -> list[str]:
        params_of(params, 0, 0)
        return []  # the node holds no user's keys: wallets sign

    async def _head_number(self) -> int:
        if not self.head.ready.is_set():
            await asyncio.wait_for(self.head.ready.wait(), timeout=5.0)
        return self.head.number

    # -- accounts ------------------------------------------------------------------------------

    async def _account(self, address: bytes, ref: BlockRef) -> pb.GetAccountResponse:
        """The account as of ``ref``, if that is the state the sequencer has (its head)."""
        if ref.tag == "earliest":
            ref = BlockRef(number=0)
        elif ref.tag in ("safe", "finalized"):
            ref = BlockRef(number=await self._tag_number(ref.tag))
        elif ref.hash is not None:
            number = await self._number_of_hash(ref.hash)
            if number is None:
                raise header_not_found()
            ref = BlockRef(number=number)
        if ref.tag == "pending":  # the pool's nonce: it moves between blocks
            account = await self._seq.account(data(address), pending=True)
        else:
            account = await self._accounts.latest(data(address))
        if ref.number is not None and ref.number != account.block_number:
            if ref.number > account.block_number:
                raise header_not_found()
            nonce, balance = await self._history.account(address, ref.number, account)
            return pb.GetAccountResponse(address=account.address, balance=str(balance), nonce=nonce,
                                         block_number=ref.number)
        return account

    async def eth_getBalance(self, params: Any) -> str:
        address, block = params_of(params, 1, 2)
        account = await self._account(parse_address(address), parse_block(block))
        return quantity(int(account.balance or 0))

    async def eth_getTransactionCount(self, params: Any) -> str:
        address, block = params_of(params, 1, 2)
        account = await self._account(parse_address(address), parse_block(block))
        return quantity(account.nonce)

    async def eth_getCode(self, params: Any) -> str:
        address, block = params_of(params, 1, 2)
        parse_address(address)
        await self._resolve(parse_block(block))
        return "0x"  # no L2 EVM: no account has code, at any block

    async def eth_getStorageAt(self, params: Any) -> str:
        address, slot, block = params_of(params, 2, 3)
        parse_address(address)
        parse_quantity(slot, "storage slot") if not (isinstance(slot, str) and len(slot) == 66) else parse_hash(slot)
        await self._resolve(parse_block(block))
        return "0x" + "00" * 32

    # -- blocks --------------------------------------------------------------------------------

    async def _tag_number(self, tag: str) -> int:
        info = await self._seq.chain_info()
        return info.safe_block if tag == "safe" else info.finalized_block

    async def _number_of_hash(self, block_hash: bytes) -> int | None:
        text = data(block_hash)
        number = self.head.number_of(text)
        if number is not None:
            return number
        block = await self._seq.block(pb.GetBlockRequest(hash=text))
        return None if block is None else block.number

    async def _resolve(self, ref: BlockRef) -> int | None:
        """The block number ``ref`` names; None if no sealed block is it."""
        head = await self._head_number()
        if ref.hash is not None:
            return await self._number_of_hash(ref.hash)
        if ref.number is not None:
            return ref.number if ref.number <= head else None
        if ref.tag == "earliest":
            return 0
        if ref.tag in ("safe", "finalized"):
            return await self._tag_number(ref.tag)
        return head  # latest, pending (the pool's block is the next one: not here)

    async def _block(self, number: int, full: bool) -> pb.Block | None:
        if not full:
            cached = self.head.get(number)
            if cached is not None:
                return cached
        return await self._seq.block(pb.GetBlockRequest(number=number, include_transactions=full))

    async def _block_json(self, number: int | None, full: bool) -> dict[str, Any] | None:
        if number is None:
            return None
        block = await self._block(number, full)
        if block is None:
            return None
        if not full:
            return block_json(block)
        return block_json(block, await self._full_transactions(block))

    async def _full_transactions(self, block: pb.Block) -> list[dict[str, Any]]:
        raws = list(block.raw_transactions)
        hashes = list(block.transaction_hashes)
        deposits = len(hashes) - len(raws)
        base_fee = int(block.base_fee or 0)
        found: list[dict[str, Any]] = []
        for tx_hash in hashes[:deposits]:
            receipt = await self._seq.receipt(tx_hash)
            if receipt is not None:
                found.append(deposit_tx_json(receipt))
        chain_id = await self._seq.chain_id()
        for i, tx in enumerate(decode_transactions(raws, chain_id)):
            if isinstance(tx, TxRejected):  # sealed, so it decoded when it came in: a rule changed since
                raise RpcError(SERVER_ERROR, f"transaction {hashes[deposits + i]} no longer decodes: {tx}")
            found.append(signed_tx_json(tx, base_fee, block.hash, block.number, deposits + i))
        return found

    async def eth_getBlockByNumber(self, params: Any) -> dict[str, Any] | None:
        block, full = params_of(params, 1, 2)
        ref = parse_block(block, allow_hash=False)
        return await self._block_json(await self._resolve(ref), _bool(full, "full transactions"))

    async def eth_getBlockByHash(self, params: Any) -> dict[str, Any] | None:
        block_hash, full = params_of(params, 1, 2)
        number = await self._number_of_hash(parse_hash(block_hash, "block hash"))
        return await self._block_json(number, _bool(full, "full transactions"))

    async def _tx_count(self, number: int | None) -> str | None:
        if number is None:
            return None
        block = await self._block(number, False)
        return None if block is None else quantity(len(block.transaction_hashes))

    async def eth_getBlockTransactionCountByNumber(self, params: Any) -> str | None:
        (block,) = params_of(params, 1, 1)
        return await self._tx_count(await self._resolve(parse_block(block, allow_hash=False)))

    async def eth_getBlockTransactionCountByHash(self, params: Any) -> str | None:
        (block_hash,) = params_of(params, 1, 1)
        return await self._tx_count(await self._number_of_hash(parse_hash(block_hash, "block hash")))

    # -- transactions --------------------------------------------------------------------------

    async def eth_sendRawTransaction(self, params: Any) -> str:
        (raw,) = params_of(params, 1, 1)
        (outcome,) = await self.send_raw([parse_data(raw, "raw transaction")])
        if isinstance(outcome, RpcError):
            raise outcome
        return outcome

    async def send_raw(self, raws: Sequence[bytes]) -> list[str | RpcError]:
        """Send ``raws`` in as few SendRawTransactions calls as the sequencer's batch bound allows:
        for each, its hash or the error it was refused with."""
        outcomes: list[str | RpcError] = []
        step = self._settings.send_batch
        for start in range(0, len(raws), step):
            for result in await self._seq.send(list(raws[start : start + step])):
                if result.WhichOneof("outcome") == "tx_hash":
                    outcomes.append(result.tx_hash)
                else:
                    outcomes.append(refusal(result.error.reason, result.error.message))
        return outcomes

    async def eth_getTransactionByHash(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = params_of(params, 1, 1)
        receipt = await self._seq.receipt(data(parse_hash(tx_hash, "transaction hash")), include_raw=True)
        if receipt is None or receipt.status == pb.RECEIPT_STATUS_DROPPED:
            return None  # geth forgets what its pool dropped
        if not receipt.raw_transaction:
            return deposit_tx_json(receipt)
        tx = sealed_transaction(receipt.raw_transaction, parse_address(getattr(receipt, "from")),
                                parse_hash(receipt.tx_hash))
        if receipt.status not in _SEALED or not receipt.HasField("block_number"):
            return signed_tx_json(tx, None, None, None, None)
        block = await self._block(receipt.block_number, False)
        base_fee = int(block.base_fee or 0) if block is not None else None
        return signed_tx_json(tx, base_fee, receipt.block_hash, receipt.block_number, receipt.index)

    async def eth_getTransactionReceipt(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = params_of(params, 1, 1)
        receipt = await self._seq.receipt(data(parse_hash(tx_hash, "transaction hash")))
        if receipt is None or receipt.status not in _SEALED or not receipt.HasField("block_number"):
            return None  # pending or dropped: no receipt yet (or ever), as geth answers
        await self.head.reach(receipt.block_number, _RECEIPT_WAIT_S)
        deposit = not getattr(receipt, "from")
        cumulative = await self._cumulative_gas(receipt.block_number, receipt.block_hash)
        index = receipt.index
        return receipt_json(receipt, _DEPOSIT if deposit else TX_TYPE_EIP1559,
                            cumulative[index] if index < len(cumulative) else receipt.gas_used)

    async def _cumulative_gas(self, number: int, block_hash: str) -> list[int]:
        """Gas used by the block's transactions up to and including each one (deposits use none),
        kept for the last few blocks; one GetBlock per block, however many receipts are read."""
        future = self._gas.get(block_hash)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._gas[block_hash] = future
            while len(self._gas) > _GAS_BLOCKS:
                self._gas.popitem(last=False)
            try:
                future.set_result(await self._compute_cumulative(number))
            except BaseException as exc:
                self._gas.pop(block_hash, None)
                future.set_exception(exc)
                future.exception()  # retrieved: whoever awaits it gets it, nobody else logs it
                raise
        return await asyncio.shield(future)

    async def _compute_cumulative(self, number: int) -> list[int]:
        block = await self._seq.block(pb.GetBlockRequest(number=number, include_transactions=True))
        if block is None:
            return []
        base_fee = int(block.base_fee or 0)
        total, sums = 0, [0] * (len(block.transaction_hashes) - len(block.raw_transactions))
        for raw in block.raw_transactions:  # the gas charged is the decoded fields' (no recovery needed)
            total += gas_and_price(sealed_transaction(raw, _ZERO, b""), base_fee)[0]
            sums.append(total)
        return sums

    # -- fees and gas --------------------------------------------------------------------------

    async def _next_base_fee(self) -> int:
        await self._head_number()
        b = self.head.block
        return next_base_fee(int(b.base_fee or 0), b.gas_used, b.gas_limit)

    async def eth_gasPrice(self, params: Any) -> str:
        params_of(params, 0, 0)
        return quantity(await self._next_base_fee() + self._settings.suggested_tip_wei)

    async def eth_maxPriorityFeePerGas(self, params: Any) -> str:
        params_of(params, 0, 0)
        return quantity(self._settings.suggested_tip_wei)

    async def eth_feeHistory(self, params: Any) -> dict[str, Any]:
        count_param, newest_param, percentiles_param = params_of(params, 2, 3)
        count = count_param if isinstance(count_param, int) and not isinstance(count_param, bool) \
            else parse_quantity(count_param, "block count")
        percentiles = self._percentiles(percentiles_param)
        newest = await self._resolve(parse_block(newest_param, allow_hash=False))
        if newest is None:
            raise RpcError(SERVER_ERROR, "request beyond head block")
        count = min(count, MAX_FEE_HISTORY, newest + 1)
        if count <= 0:
            return {"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": []}
        oldest = newest - count + 1
        blocks = await asyncio.gather(*(self._block(n, bool(percentiles)) for n in range(oldest, newest + 1)))
        fees: list[str] = []
        ratios: list[float] = []
        rewards: list[list[str]] = []
        last: pb.Block | None = None
        for block in blocks:
            if block is None:
                raise header_not_found()
            fees.append(quantity(int(block.base_fee or 0)))
            ratios.append(block.gas_used / block.gas_limit if block.gas_limit else 0.0)
            if percentiles:
                rewards.append([quantity(r) for r in _rewards(block, percentiles)])
            last = block
        assert last is not None
        fees.append(quantity(next_base_fee(int(last.base_fee or 0), last.gas_used, last.gas_limit)))
        history: dict[str, Any] = {"oldestBlock": quantity(oldest), "baseFeePerGas": fees, "gasUsedRatio": ratios}
        if percentiles:
            history["reward"] = rewards
        return history

    @staticmethod
    def _percentiles(value: Any) -> list[float]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > 100:
            raise invalid_params("reward percentiles: an array of at most 100 numbers")
        previous = 0.0
        for p in value:
            if isinstance(p, bool) or not isinstance(p, int | float) or not previous <= p <= 100:
                raise invalid_params(f"reward percentiles {value!r}: increasing numbers in 0..100")
            previous = p
        return [float(p) for p in value]

    async def _call_checks(self, params: Any) -> tuple[int, dict[str, Any]]:
        """What eth_estimateGas and eth_call share: the call object checked as this L2 would run
        it; the gas it uses (its intrinsic gas: there is no EVM)."""
        call, block = params_of(params, 1, 3)[:2]
        if not isinstance(call, dict):
            raise invalid_params("call: an object")
        await self._resolve(parse_block(block))
        to = call.get("to")
        if to is None:
            raise RpcError(SERVER_ERROR, "contract creation not supported: this L2 has no EVM")
        target = parse_address(to, "to")
        sender = parse_address(call["from"], "from") if call.get("from") is not None else _ZERO
        payload = call.get("input", call.get("data"))
        calldata = parse_data(payload, "input") if payload is not None else b""
        access = tuple((parse_address(e["address"]), tuple(parse_hash(k) for k in e.get("storageKeys", [])))
                       for e in call.get("accessList") or [] if isinstance(e, dict))
        value = parse_quantity(call["value"], "value") if call.get("value") is not None else 0
        if target == MESSAGE_PASSER:
            try:
                decode_withdrawal_call(calldata, sender)
            except MalformedWithdrawal as exc:
                raise RpcError(EXECUTION_REVERTED, f"execution reverted: {exc}") from None
        gas = intrinsic_gas(calldata, access)
        if call.get("gas") is not None and parse_quantity(call["gas"], "gas") < gas:
            raise RpcError(SERVER_ERROR, f"gas required exceeds allowance ({parse_quantity(call['gas'])})")
        price = max((parse_quantity(call[k], k) for k in ("gasPrice", "maxFeePerGas") if call.get(k) is not None),
                    default=0)
        if sender != _ZERO and (value or price):
            balance = int((await self._seq.account(data(sender))).balance or 0)
            if balance < value + gas * price:
                raise RpcError(SERVER_ERROR, "insufficient funds for gas * price + value" if price
                               else "insufficient funds for transfer")
        return gas, call

    async def eth_estimateGas(self, params: Any) -> str:
        gas, _ = await self._call_checks(params)
        return quantity(gas)

    async def eth_call(self, params: Any) -> str:
        await self._call_checks(params)
        return "0x"  # no account has code: a call runs nothing and returns nothing, as to an EOA

    async def eth_getLogs(self, params: Any) -> list[Any]:
        (query,) = params_of(params, 1, 1)
        if not isinstance(query, dict):
            raise invalid_params("filter: an object")
        return []  # nothing on this L2 emits logs (no EVM)

    # -- rollup status (OP Stack's optimism_* namespace) --------------------------------------

    def _l2_ref(self, b: pb.Block) -> dict[str, Any]:
        return {"hash": b.hash, "number": b.number, "parentHash": b.parent_hash, "timestamp": b.timestamp,
                "l1origin": {"hash": b.l1_origin_hash, "number": b.l1_origin_number}, "sequenceNumber": 0}

    async def _ref_at(self, number: int) -> dict[str, Any]:
        block = await self._block(number, False)
        if block is None:
            raise header_not_found()
        return self._l2_ref(block)

    async def optimism_outputAtBlock(self, params: Any) -> dict[str, Any]:
        (number_param,) = params_of(params, 1, 1)
        number = await self._resolve(parse_block(number_param, allow_hash=False))
        block = None if number is None else await self._block(number, False)
        if block is None:
            raise header_not_found()
        state_root, message_root = parse_hash(block.state_root), parse_hash(block.message_passer_root)
        root = output_root(state_root, message_root, parse_hash(block.hash))
        return {"version": data(OUTPUT_VERSION), "outputRoot": data(root), "blockRef": self._l2_ref(block),
                "withdrawalStorageRoot": block.message_passer_root, "stateRoot": block.state_root,
                "syncStatus": await self.optimism_syncStatus([])}

    async def optimism_syncStatus(self, params: Any) -> dict[str, Any]:
        params_of(params, 0, 0)
        info = await self._seq.chain_info(include_l1=True)
        unsafe, safe, finalized = await asyncio.gather(
            self._ref_at(info.unsafe_block), self._ref_at(info.safe_block), self._ref_at(info.finalized_block))
        # The L1 blocks this node's reading of L1 stands at; a node without an L1 has none (OP's
        # zero ref: number 0, zero hashes).
        heads = info.l1 if info.HasField("l1") else pb.L1Heads()
        current, finalized_l1 = _l1_ref(heads.current), _l1_ref(heads.finalized)
        return {"current_l1": current, "current_l1_finalized": finalized_l1, "head_l1": _l1_ref(heads.head),
                "safe_l1": _l1_ref(heads.safe), "finalized_l1": finalized_l1, "unsafe_l2": unsafe, "safe_l2": safe,
                "finalized_l2": finalized, "pending_safe_l2": safe, "cross_unsafe_l2": unsafe,
                "local_safe_l2": safe}

    async def optimism_rollupConfig(self, params: Any) -> dict[str, Any]:
        params_of(params, 0, 0)
        info = await self._seq.chain_info()
        genesis = await self._block(0, False)
        if genesis is None:
            raise header_not_found()
        config: dict[str, Any] = {
            "genesis": {"l1": {"hash": genesis.l1_origin_hash, "number": genesis.l1_origin_number},
                        "l2": {"hash": info.genesis_hash, "number": 0}, "l2_time": genesis.timestamp},
            "l2_chain_id": info.chain_id}
        deployment = self._deployment()
        if deployment is not None:  # OP's names where OP has the thing; l2node's own after them
            def at(name: str) -> str | None:
                return checksum(deployment.addresses[name]) if deployment.has(name) else None

            config |= {"l1_chain_id": deployment.l1_chain_id,
                       "seq_window_size": deployment.rollups.get("sequencer_window"),
                       "batch_inbox_address": at("BatchInbox"), "deposit_contract_address": at("DepositPortal"),
                       "output_registry_address": at("OutputRegistry"), "step_verifier_address": at("StepVerifier"),
                       "challenge_window_s": deployment.rollups.get("challenge_window_s"),
                       "deployment_l1_block": deployment.block_number}
        return config

    def _deployment(self) -> Deployment | None:
        """The deployment's record (``settings.contracts``), read once; None when not configured."""
        if not self._settings.contracts:
            return None
        if self._loaded is None:
            try:
                self._loaded = Deployment.load(self._settings.contracts)
            except DeploymentError as exc:
                raise RpcError(SERVER_ERROR, str(exc)) from None
        return self._loaded


def _l1_ref(ref: pb.L1BlockRef) -> dict[str, Any]:
    """OP's L1BlockRef: hash, number, parentHash, timestamp (numbers as JSON numbers, as op-node gives)."""
    return {"hash": ref.hash or _ZERO_HASH, "number": ref.number, "parentHash": ref.parent_hash or _ZERO_HASH,
            "timestamp": ref.timestamp}


_ZERO_HASH: Final = "0x" + "00" * 32


def _rewards(block: pb.Block, percentiles: list[float]) -> list[int]:
    """geth's reward percentiles: the effective tips of the block's transactions, sorted, each
    weighted by its gas; 0 for an empty block."""
    base_fee = int(block.base_fee or 0)
    txs: list[Transaction] = [sealed_transaction(raw, _ZERO, b"") for raw in block.raw_transactions]
    if not txs:
        return [0] * len(percentiles)
    tipped = sorted((gas_and_price(tx, base_fee)[1] - base_fee, gas_and_price(tx, base_fee)[0]) for tx in txs)
    total = sum(g for _, g in tipped)
    rewards, i, cumulative = [], 0, tipped[0][1]
    for p in percentiles:
        threshold = total * p / 100
        while cumulative < threshold and i < len(tipped) - 1:
            i += 1
            cumulative += tipped[i][1]
        rewards.append(tipped[i][0])
    return rewards
