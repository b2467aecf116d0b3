"""DepositPortal's withdrawal calls, encoded: one place for the relayer, GetWithdrawalProof and
the CLI-facing calldata (the ABI is contracts/DepositPortal.sol's; its rules are numbered there)."""

from __future__ import annotations

from typing import Any

from protocol import WithdrawalMessage
from services.l1 import Contract

from ._records import OutputRootProof, WithdrawalProof


def withdrawal_tuple(m: WithdrawalMessage) -> tuple[Any, ...]:
    """The ``Withdrawal`` struct: (nonce, sender, target, value, gasLimit, data)."""
    return (m.nonce, m.sender, m.target, m.value, m.gas_limit, m.data)


def root_proof_tuple(p: OutputRootProof) -> tuple[bytes, bytes, bytes, bytes]:
    """The ``OutputRootProof`` struct: (version, stateRoot, messagePasserRoot, blockHash)."""
    return (p.version, p.state_root, p.message_passer_root, p.block_hash)


def prove_calldata(portal: Contract, proof: WithdrawalProof) -> bytes:
    """proveWithdrawal(withdrawal, outputIndex, outputRootProof, (index, count, siblings))."""
    return portal.encode_call("proveWithdrawal", withdrawal_tuple(proof.withdrawal.message), proof.output_index,
                              root_proof_tuple(proof.root_proof), (proof.index, proof.count, list(proof.siblings)))


def finalize_calldata(portal: Contract, message: WithdrawalMessage, prover: bytes) -> bytes:
    """finalizeWithdrawal(withdrawal, prover): pay out using ``prover``'s proof."""
    return portal.encode_call("finalizeWithdrawal", withdrawal_tuple(message), prover)
