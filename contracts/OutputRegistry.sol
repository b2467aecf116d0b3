// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {DisputeGame} from "./DisputeGame.sol";
import {IStepVerifier} from "./IStepVerifier.sol";
import {PullPayments} from "./PullPayments.sol";
import {Snapshots} from "./Snapshot.sol";

/// @title OutputRegistry
/// @notice The rollup's L2 outputs on L1: anyone proposes the next output with a bond, anyone
///         challenges it with a bond within the challenge window, and an output nobody proved
///         wrong finalizes once the window has passed and its parent has finalized. The
///         registry is also the factory of the dispute games that decide challenges.
/// @dev Outputs form a chain from the anchor (index 0): each is proposed on the current head,
///      with the whole snapshot at the end of its L2 block, from which the registry derives both
///      the output root and the snapshot commitment the dispute bisects to (so an output cannot
///      claim one and defend another). A game's start is the parent's snapshot: a challenger
///      who disputes the parent must challenge the parent.
///
///      Each output also records its batchLimit, the inbox's batch count when it was proposed
///      (verifier.batchCount()): its games re-execute derivation over those batches only (see
///      IStepVerifier). An output is thus a claim about what L1 held when it was proposed: the
///      step at any position of its trace is fixed from then on, whatever batches arrive during
///      a game, and an output claiming an L2 block that those batches do not derive (a block
///      from the future, or an invented one) loses to a challenger whose trace, padded with
///      no-ops, stops where the batches do. The anchor's batchLimit is 0 (it reads nothing).
///
///      Each challenger gets its own DisputeGame, played against the output's proposer, so
///      several may dispute one output at once and none can freeload on, or throw, another's
///      game. A defender win proves nothing about the output (the challenger may have played
///      badly): the output stays disputed while any game is open, and finalizes only once all
///      are resolved and the window has passed, even if games outlast the window.
///
///      A challenger win invalidates the output and everything built on it: the valid outputs
///      are one chain (anchor to head), and every valid output proposed after the loser rests
///      on it. Validity is kept O(1) by recording the chain by depth (`_chain[depth] = index`):
///      an invalidation only shortens it. Later outputs are also marked INVALIDATED and their
///      bonds refunded (they were not proven wrong) eagerly, but for at most MAX_CASCADE of
///      them, so that nobody can make a resolution too expensive to execute by proposing many
///      outputs on top of a bad one; output() reports the rest as INVALIDATED already, and
///      releaseOrphan() marks and refunds them one by one.
///
///      The proposer may challenge its own output: forbidding it would only cost it a second
///      address. It is pointless for a correct output the proposer defends, but a two-party
///      game lets a proposer that colludes with its challenger throw the game; what that buys is
///      a rollback of the outputs built on its own (refunded, and proposed again by their
///      proposers), at the cost of the games' gas.
///
///      All payouts are credited and pulled (withdraw), so a recipient that cannot receive ETH
///      blocks neither a game's resolution nor finalization.
contract OutputRegistry is PullPayments {
    enum Status {
        NONE,
        PROPOSED,
        CHALLENGED,
        FINALIZED,
        INVALIDATED
    }

    /// @notice An output, as output() returns it.
    struct Output {
        bytes32 outputRoot;
        bytes32 snapshotHash;
        uint256 l2Block;
        uint256 parentIndex;
        uint256 proposedAt;
        uint256 traceLength;
        address proposer;
        Status status;
        uint256 activeGames; // games opened and not yet resolved
        uint256 batchLimit; // the inbox's batch count at proposal: the bound of its games' traces
    }

    /// @dev The stored output: four slots rather than eleven. The status shares its slot with the
    ///      proposer, which the cascade of an invalidation reads with it. The narrow widths are far
    ///      beyond reach: each output and each batch is an L1 transaction, and uint40 seconds last
    ///      until the year 36812.
    struct Record {
        bytes32 outputRoot;
        bytes32 snapshotHash;
        uint64 l2Block;
        uint64 parentIndex;
        uint64 traceLength;
        uint40 proposedAt;
        uint16 activeGames;
        address proposer;
        Status status;
        uint40 depth; // position on the chain from the anchor (depth 0)
        uint48 batchLimit;
    }

    struct GameRecord {
        address game;
        uint64 outputIndex;
        bool resolved;
        address challenger;
    }

    /// @notice Upper bound on the challenge window and the clock: catches a duration given in
    ///         milliseconds (7 days in ms is 19 years).
    uint256 public constant MAX_DURATION = 365 days;
    /// @notice How many later outputs a challenger win marks and refunds eagerly (see the notes).
    uint256 public constant MAX_CASCADE = 256;
    /// @notice The gameId of OutputInvalidated for an output released by releaseOrphan.
    uint256 public constant NO_GAME = type(uint256).max;

    IStepVerifier public immutable verifier;
    uint256 public immutable proposalBond;
    uint256 public immutable challengeBond;
    uint256 public immutable moveBondBase;
    /// @notice Seconds after a proposal during which it can be challenged.
    uint256 public immutable challengeWindow;
    /// @notice Seconds each side of a game has for all of its moves.
    uint256 public immutable maxClockDuration;
    uint256 public immutable maxTraceLength;

    Record[] private _outputs;
    mapping(uint256 depth => uint256 index) private _chain;
    uint256 private _chainLength; // valid outputs, anchor included: the head is at depth _chainLength - 1
    uint256 private _latestFinalized;
    GameRecord[] private _games;
    mapping(address game => uint256 idPlusOne) private _gameIds;
    mapping(uint256 index => uint256[] gameIds) private _gamesOf;

    event OutputProposed(
        uint256 indexed index,
        bytes32 outputRoot,
        uint256 l2Block,
        uint256 parentIndex,
        address proposer,
        bytes32 snapshotHash,
        uint256 traceLength,
        uint256 batchLimit
    );
    event OutputChallenged(uint256 indexed index, uint256 indexed gameId, address game, address challenger);
    /// @notice `index` is invalid: `gameId` proved it (or an output it rests on) wrong, or NO_GAME
    ///         when releaseOrphan marked it.
    event OutputInvalidated(uint256 indexed index, uint256 gameId);
    event GameResolved(uint256 indexed gameId, bool challengerWon);
    event OutputFinalized(uint256 indexed index);

    error VerifierNotAContract(address verifier);
    error ZeroProposalBond();
    error ZeroChallengeBond();
    error ZeroMoveBond();
    /// @notice The challenge window must be in (0, MAX_DURATION].
    error ChallengeWindowOutOfRange(uint256 window, uint256 max);
    /// @notice The clock must be in (0, MAX_DURATION].
    error ClockDurationOutOfRange(uint256 duration, uint256 max);
    /// @notice maxTraceLength must be in [1, 2**64 - 1]: game positions are 64-bit.
    error MaxTraceLengthOutOfRange(uint256 maxTraceLength, uint256 max);
    /// @notice Outputs (the anchor included) are snapshots between blocks.
    error NotIdle(uint256 phase);
    error WrongBond(uint256 sent, uint256 required);
    /// @notice Outputs are proposed on the head only.
    error NotHead(uint256 parentIndex, uint256 head);
    /// @notice The output's L2 block must be above its parent's (and fit 64 bits).
    error L2BlockOutOfRange(uint256 l2Block, uint256 parentL2Block);
    error TraceLengthOutOfRange(uint256 traceLength, uint256 maxTraceLength);
    error UnknownOutput(uint256 index, uint256 count);
    error UnknownGame(uint256 gameId, uint256 count);
    /// @notice The output is not PROPOSED or CHALLENGED (anchor, finalized or invalidated).
    error OutputNotPending(uint256 index, Status status);
    error ChallengeWindowClosed(uint256 index, uint256 closedAt);
    error ChallengeWindowOpen(uint256 index, uint256 closesAt);
    error TooManyGames(uint256 index);
    error OutputUnderChallenge(uint256 index, uint256 activeGames);
    error ParentNotFinalized(uint256 index, uint256 parentIndex);
    error NotGame(address caller);
    error GameAlreadyResolved(uint256 gameId);
    /// @notice releaseOrphan: the output is still valid, or already settled.
    error NotAnOrphan(uint256 index);

    /// @param anchor The genesis snapshot (phase IDLE): output 0, final from the start.
    /// @param verifier_ Executes a game's last step.
    /// @param proposalBond_ Paid with each proposal; returned at finalization, lost to a winning challenger.
    /// @param challengeBond_ Paid with each challenge; part of what the game's winner takes.
    /// @param moveBondBase_ A game's round-r moves pay moveBondBase_ * (r + 1).
    /// @param challengeWindow_ Seconds, e.g. 7 days; a few seconds for a demo.
    /// @param maxClockDuration_ Seconds per side of a game, e.g. 3.5 days.
    /// @param maxTraceLength_ Longest trace an output may claim, e.g. 2**32 (32 rounds).
    constructor(
        Snapshots.Snapshot memory anchor,
        IStepVerifier verifier_,
        uint256 proposalBond_,
        uint256 challengeBond_,
        uint256 moveBondBase_,
        uint256 challengeWindow_,
        uint256 maxClockDuration_,
        uint256 maxTraceLength_
    ) {
        if (address(verifier_).code.length == 0) revert VerifierNotAContract(address(verifier_));
        if (proposalBond_ == 0) revert ZeroProposalBond();
        if (challengeBond_ == 0) revert ZeroChallengeBond();
        if (moveBondBase_ == 0) revert ZeroMoveBond();
        if (challengeWindow_ == 0 || challengeWindow_ > MAX_DURATION) {
            revert ChallengeWindowOutOfRange(challengeWindow_, MAX_DURATION);
        }
        if (maxClockDuration_ == 0 || maxClockDuration_ > MAX_DURATION) {
            revert ClockDurationOutOfRange(maxClockDuration_, MAX_DURATION);
        }
        if (maxTraceLength_ == 0 || maxTraceLength_ > type(uint64).max) {
            revert MaxTraceLengthOutOfRange(maxTraceLength_, type(uint64).max);
        }
        if (anchor.phase != Snapshots.IDLE) revert NotIdle(anchor.phase);
        if (anchor.number > type(uint64).max) revert L2BlockOutOfRange(anchor.number, 0);
        verifier = verifier_;
        proposalBond = proposalBond_;
        challengeBond = challengeBond_;
        moveBondBase = moveBondBase_;
        challengeWindow = challengeWindow_;
        maxClockDuration = maxClockDuration_;
        maxTraceLength = maxTraceLength_;

        bytes32 root = Snapshots.outputRoot(anchor);
        bytes32 commitment = Snapshots.commitment(anchor);
        _outputs.push(
            Record({
                outputRoot: root,
                snapshotHash: commitment,
                l2Block: uint64(anchor.number),
                parentIndex: 0,
                traceLength: 0,
                proposedAt: uint40(block.timestamp),
                activeGames: 0,
                proposer: address(0),
                status: Status.FINALIZED,
                depth: 0,
                batchLimit: 0
            })
        );
        _chainLength = 1; // _chain[0] = 0 already
        // Logged like any output, so that the log history alone describes the chain.
        emit OutputProposed(0, root, anchor.number, 0, address(0), commitment, 0, 0);
        emit OutputFinalized(0);
    }

    // --- proposals -------------------------------------------------------------------------------

    /// @notice Propose the output after the head. Anyone, with proposalBond.
    /// @param parentIndex The head (checked: a proposal never forks the chain).
    /// @param s The snapshot at the end of the output's L2 block (phase IDLE).
    /// @param traceLength Derivation steps from the parent's snapshot to `s`: what a dispute bisects.
    /// @return index The output's index.
    /// @dev Records verifier.batchCount() as the output's batchLimit: `s` must be derivable from the
    ///      batches L1 holds now, or the output loses any game (see the contract notes).
    function propose(uint256 parentIndex, Snapshots.Snapshot calldata s, uint256 traceLength)
        external
        payable
        returns (uint256 index)
    {
        if (msg.value != proposalBond) revert WrongBond(msg.value, proposalBond);
        uint256 headIndex = head();
        if (parentIndex != headIndex) revert NotHead(parentIndex, headIndex);
        if (s.phase != Snapshots.IDLE) revert NotIdle(s.phase);
        Record storage parent = _outputs[parentIndex];
        if (s.number <= parent.l2Block || s.number > type(uint64).max) {
            revert L2BlockOutOfRange(s.number, parent.l2Block);
        }
        if (traceLength == 0 || traceLength > maxTraceLength) {
            revert TraceLengthOutOfRange(traceLength, maxTraceLength);
        }
        Snapshots.Snapshot memory snapshot = s;
        bytes32 root = Snapshots.outputRoot(snapshot);
        bytes32 commitment = Snapshots.commitment(snapshot);
        uint40 depth = parent.depth + 1; // == _chainLength: the parent is the head
        // Clamped to the stored width (unreachable: each batch is an L1 transaction).
        uint256 batchLimit = verifier.batchCount();
        if (batchLimit > type(uint48).max) batchLimit = type(uint48).max;
        index = _outputs.length;
        _outputs.push(
            Record({
                outputRoot: root,
                snapshotHash: commitment,
                l2Block: uint64(s.number),
                parentIndex: uint64(parentIndex),
                traceLength: uint64(traceLength),
                proposedAt: uint40(block.timestamp),
                activeGames: 0,
                proposer: msg.sender,
                status: Status.PROPOSED,
                depth: depth,
                batchLimit: uint48(batchLimit)
            })
        );
        _chain[depth] = index;
        _chainLength = uint256(depth) + 1;
        emit OutputProposed(index, root, s.number, parentIndex, msg.sender, commitment, traceLength, batchLimit);
    }

    /// @notice Dispute output `index` within its challenge window: deploys a DisputeGame between
    ///         the caller (challenger) and the output's proposer (defender). Anyone, with
    ///         challengeBond; several challengers may each open their own game.
    /// @return gameId The game's index in the registry (game(gameId) is its address).
    function challenge(uint256 index) external payable returns (uint256 gameId) {
        Record storage o = _record(index);
        Status status = _status(index, o);
        if (status != Status.PROPOSED && status != Status.CHALLENGED) revert OutputNotPending(index, status);
        uint256 closes = uint256(o.proposedAt) + challengeWindow;
        if (block.timestamp >= closes) revert ChallengeWindowClosed(index, closes);
        if (msg.value != challengeBond) revert WrongBond(msg.value, challengeBond);
        if (o.activeGames == type(uint16).max) revert TooManyGames(index);

        DisputeGame created = new DisputeGame{value: msg.value}(
            DisputeGame.Config({
                outputIndex: index,
                verifier: verifier,
                target: o.l2Block,
                batchLimit: o.batchLimit,
                startHash: _outputs[o.parentIndex].snapshotHash,
                endHash: o.snapshotHash,
                traceLength: o.traceLength,
                defender: o.proposer,
                challenger: msg.sender,
                moveBondBase: moveBondBase,
                maxClockDuration: maxClockDuration
            })
        );
        gameId = _games.length;
        _games.push(GameRecord(address(created), uint64(index), false, msg.sender));
        _gameIds[address(created)] = gameId + 1;
        _gamesOf[index].push(gameId);
        o.status = Status.CHALLENGED;
        o.activeGames += 1;
        emit OutputChallenged(index, gameId, address(created), msg.sender);
    }

    /// @notice A game's result. Only a game this registry created, once. A challenger win
    ///         invalidates the output and the outputs built on it and pays the proposer's bond
    ///         to the challenger; a game on an output already invalidated changes nothing.
    function resolveGame(bool challengerWon) external {
        uint256 idPlusOne = _gameIds[msg.sender];
        if (idPlusOne == 0) revert NotGame(msg.sender);
        uint256 gameId = idPlusOne - 1;
        GameRecord storage g = _games[gameId];
        if (g.resolved) revert GameAlreadyResolved(gameId);
        g.resolved = true;
        uint256 index = g.outputIndex;
        Record storage o = _outputs[index];
        o.activeGames -= 1;
        emit GameResolved(gameId, challengerWon);
        if (_status(index, o) == Status.INVALIDATED) return; // another game (on it or below it) won
        if (challengerWon) _invalidate(index, o, gameId, g.challenger);
        else if (o.activeGames == 0) o.status = Status.PROPOSED;
    }

    /// @notice Finalize output `index`: unchallenged or every game won by its proposer, its
    ///         window passed, its parent final. Returns the proposal bond. Anyone.
    function finalize(uint256 index) external {
        Record storage o = _record(index);
        Status status = o.status;
        if (status == Status.CHALLENGED) revert OutputUnderChallenge(index, o.activeGames);
        if (status != Status.PROPOSED) revert OutputNotPending(index, status);
        uint256 closes = uint256(o.proposedAt) + challengeWindow;
        if (block.timestamp < closes) revert ChallengeWindowOpen(index, closes);
        // A PROPOSED output off the chain always has a non-final parent: this check covers it.
        if (_outputs[o.parentIndex].status != Status.FINALIZED) revert ParentNotFinalized(index, o.parentIndex);
        o.status = Status.FINALIZED;
        _latestFinalized = index;
        _pay(o.proposer, proposalBond);
        emit OutputFinalized(index);
    }

    /// @notice Mark an output invalidated by an ancestor's invalidation, which the eager cascade
    ///         did not reach (see MAX_CASCADE), and refund its bond. Anyone.
    function releaseOrphan(uint256 index) external {
        Record storage o = _record(index);
        Status status = o.status;
        if ((status != Status.PROPOSED && status != Status.CHALLENGED) || _onChain(index, o)) {
            revert NotAnOrphan(index);
        }
        _release(index, o, NO_GAME);
    }


    // --- views -----------------------------------------------------------------------------------

    function outputCount() external view returns (uint256) {
        return _outputs.length;
    }

    /// @notice Output `index`; an output resting on an invalidated one reads INVALIDATED.
    function output(uint256 index) external view returns (Output memory) {
        Record storage o = _record(index);
        return Output({
            outputRoot: o.outputRoot,
            snapshotHash: o.snapshotHash,
            l2Block: o.l2Block,
            parentIndex: o.parentIndex,
            proposedAt: o.proposedAt,
            traceLength: o.traceLength,
            proposer: o.proposer,
            status: _status(index, o),
            activeGames: o.activeGames,
            batchLimit: o.batchLimit
        });
    }

    /// @notice The latest valid output: the next proposal's parent.
    function head() public view returns (uint256) {
        return _chain[_chainLength - 1];
    }

    function latestFinalized() external view returns (uint256) {
        return _latestFinalized;
    }

    function gameCount() external view returns (uint256) {
        return _games.length;
    }

    /// @notice The DisputeGame contract of `gameId`.
    function game(uint256 gameId) external view returns (address) {
        if (gameId >= _games.length) revert UnknownGame(gameId, _games.length);
        return _games[gameId].game;
    }

    /// @notice The ids of every game opened against output `index`, oldest first.
    function gamesOf(uint256 index) external view returns (uint256[] memory) {
        _record(index);
        return _gamesOf[index];
    }


    // --- internals -------------------------------------------------------------------------------

    function _record(uint256 index) private view returns (Record storage) {
        if (index >= _outputs.length) revert UnknownOutput(index, _outputs.length);
        return _outputs[index];
    }

    function _onChain(uint256 index, Record storage o) private view returns (bool) {
        uint256 depth = o.depth;
        return depth < _chainLength && _chain[depth] == index;
    }

    /// @dev The stored status, except that a pending output off the chain is INVALIDATED.
    function _status(uint256 index, Record storage o) private view returns (Status) {
        Status status = o.status;
        if ((status == Status.PROPOSED || status == Status.CHALLENGED) && !_onChain(index, o)) {
            return Status.INVALIDATED;
        }
        return status;
    }

    function _invalidate(uint256 index, Record storage o, uint256 gameId, address challenger) private {
        o.status = Status.INVALIDATED;
        _chainLength = o.depth; // the head is the parent again
        _pay(challenger, proposalBond);
        emit OutputInvalidated(index, gameId);
        // Every pending output after `index` was built on it (the chain only ever grows from the
        // head), and is now off the chain.
        uint256 end = _outputs.length;
        if (end > index + 1 + MAX_CASCADE) end = index + 1 + MAX_CASCADE;
        for (uint256 j = index + 1; j < end; ++j) {
            Record storage later = _outputs[j];
            if (later.status == Status.PROPOSED || later.status == Status.CHALLENGED) _release(j, later, gameId);
        }
    }

    /// @dev An output invalidated because an output below it was: not proven wrong, so refunded.
    function _release(uint256 index, Record storage o, uint256 gameId) private {
        o.status = Status.INVALIDATED;
        _pay(o.proposer, proposalBond);
        emit OutputInvalidated(index, gameId);
    }
}
