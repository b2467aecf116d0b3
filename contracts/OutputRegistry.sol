// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {DisputeGame} from "./DisputeGame.sol";
import {IStepVerifier} from "./IStepVerifier.sol";
import {PullPayments} from "./PullPayments.sol";
import {Snapshots} from "./Snapshot.sol";

/// @notice What the registry reads of BatchInbox: a proposal's batch limit is checked against it.
interface IBatchIndex {
    function batchCount() external view returns (uint256);
    function batch(uint256 index) external view returns (bytes32 inputRoot, uint256 l1Block);
}

/// @notice What the registry reads of the StepVerifier beyond IStepVerifier: the inbox its steps
///         read, so that a proposal's batch limit is checked against the very batches its games replay.
interface IInboxReader {
    function inbox() external view returns (IBatchIndex);
}

/// @title OutputRegistry
/// @notice The rollup's L2 outputs on L1: anyone proposes an output with a bond, at any L2 block
///         past the latest finalized output, at any time; anyone challenges it with a bond within
///         its challenge window; an output nobody proved wrong finalizes once its window has
///         passed and its games are over. The registry is also the factory of the dispute games
///         that decide challenges.
/// @dev Outputs are independent claims, each from the latest finalized output (Optimism's fault
///      dispute games, which all start from the anchor state, not from the previous proposal).
///      An output records, when it is proposed:
///      - startIndex = latestFinalized(): where its games' traces start (position 0, a snapshot
///        both sides accept because it is final). The proposer does not choose it. A start that
///        finalizes after the proposer computed its trace only shortens the trace needed, and
///        traces are padded with no-ops, so a proposal computed against an older start is still
///        right.
///      - its snapshot at the end of its L2 block, from which the registry derives the output root
///        and the commitment at position traceLength (so an output cannot claim one and defend
///        another); the snapshot must pass Snapshots.checkRange (see there, issue item 9).
///      - l1Horizon and batchLimit: the claim is "derivation from the start over what L1 held in
///        blocks <= l1Horizon gives this snapshot". l1Horizon is in the past (< block.number)
///        and not before the start's; batchLimit is exactly the number of inbox batches in
///        those blocks (checked with two reads). Its games replay derivation over those batches
///        only (see IStepVerifier), so a step's result is fixed from the proposal on, whatever
///        arrives during a game, and an output claiming a block those batches do not derive (a
///        block from the future, or invented) loses to the trace that stops where they do.
///
///      Why independent outputs (issue items 3, 4, 8). With a chain of outputs, each resting on
///      the previous: a wrong head blocks every honest proposal for a whole chess clock (squatting
///      the head); a proposer that throws its game against an accomplice takes every honest output
///      built on its own down with it (a rollback for the price of gas); and outputs built on a
///      wrong one must be refunded, so stacking wrong outputs costs one bond. Here nothing rests
///      on a pending output: a challenger win invalidates that output only and pays its proposal
///      bond to the challenger. So every wrong output costs its own bond; an honest proposer keeps
///      proposing (and finalizing) while other outputs are disputed; and a thrown game can only
///      invalidate the thrower's own output: it loses its bond to its accomplice (a wash between
///      the two, for the gas of a game) and touches no other output, and the next proposal starts
///      from the same finalized output as before. The proposer may challenge its own output
///      (forbidding it would only cost it a second address); this is all that buys.
///      (The other way out of item 3, letting anyone defend a right output, is what Optimism's
///      multi-party game does; the two-party game is kept, and made unable to hurt anyone else.)
///      What a challenge can still do to a right output: keep it undecided for up to both chess
///      clocks, at the price of a challenge bond and move bonds that its defender wins (the rollups
///      worker defends its proposer's outputs by itself); it delays no other output.
///      The cost: a trace spans from the latest finalized output, up to a challenge window of L2
///      blocks (maxTraceLength bounds it; bisection is logarithmic in it).
///
///      Each challenger gets its own DisputeGame, played against the output's proposer, so
///      several may dispute one output at once and none can freeload on, or throw, another's
///      game. A defender win proves nothing about the output (the challenger may have played
///      badly): the output stays disputed while any game is open, and finalizes only once all
///      are resolved and the window has passed, even if games outlast the window.
///
///      latestFinalized() is the finalized output with the highest L2 block (outputs may
///      finalize in any order). All payouts are credited and pulled (withdraw), so a recipient
///      that cannot receive ETH blocks neither a game's resolution nor finalization.
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
        uint256 startIndex; // the latest finalized output when it was proposed: its games' start
        uint256 proposedAt;
        uint256 traceLength;
        address proposer;
        Status status;
        uint256 activeGames; // games opened and not yet resolved
        uint256 batchLimit; // inbox batches in L1 blocks <= l1Horizon: the bound of its games' traces
        uint256 l1Horizon; // the last L1 block its derivation read
    }

    /// @dev The stored output: four slots rather than eleven. The narrow widths are far beyond
    ///      reach: each output and each batch is an L1 transaction, uint40 seconds last until the
    ///      year 36812, and uint40 L1 blocks for 400,000 years of 12-second blocks.
    struct Record {
        bytes32 outputRoot;
        bytes32 snapshotHash;
        uint64 l2Block;
        uint64 startIndex;
        uint64 traceLength;
        uint40 proposedAt;
        uint16 activeGames;
        address proposer;
        Status status;
        uint48 batchLimit;
        uint40 l1Horizon;
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

    IStepVerifier public immutable verifier;
    /// @notice The inbox the verifier's steps read (verifier.inbox()): batch limits are checked here.
    IBatchIndex public immutable inbox;
    uint256 public immutable proposalBond;
    uint256 public immutable challengeBond;
    uint256 public immutable moveBondBase;
    /// @notice Seconds after a proposal during which it can be challenged.
    uint256 public immutable challengeWindow;
    /// @notice Seconds each side of a game has for all of its moves.
    uint256 public immutable maxClockDuration;
    uint256 public immutable maxTraceLength;

    Record[] private _outputs;
    uint256 private _latestFinalized;
    GameRecord[] private _games;
    mapping(address game => uint256 idPlusOne) private _gameIds;
    mapping(uint256 index => uint256[] gameIds) private _gamesOf;

    event OutputProposed(
        uint256 indexed index,
        bytes32 outputRoot,
        uint256 l2Block,
        uint256 startIndex,
        address proposer,
        bytes32 snapshotHash,
        uint256 traceLength,
        uint256 batchLimit,
        uint256 l1Horizon
    );
    event OutputChallenged(uint256 indexed index, uint256 indexed gameId, address game, address challenger);
    /// @notice `index` is invalid: game `gameId` proved it wrong.
    event OutputInvalidated(uint256 indexed index, uint256 gameId);
    event GameResolved(uint256 indexed gameId, bool challengerWon);
    event OutputFinalized(uint256 indexed index);

    error VerifierNotAContract(address verifier);
    error InboxNotAContract(address inbox);
    error ZeroProposalBond();
    error ZeroChallengeBond();
    error ZeroMoveBond();
    /// @notice The challenge window must be in (0, MAX_DURATION].
    error ChallengeWindowOutOfRange(uint256 window, uint256 max);
    /// @notice The clock must be in (0, MAX_DURATION].
    error ClockDurationOutOfRange(uint256 duration, uint256 max);
    /// @notice maxTraceLength must be in [1, 2**64 - 1]: game positions are 64-bit.
    error MaxTraceLengthOutOfRange(uint256 maxTraceLength, uint256 max);
    error WrongBond(uint256 sent, uint256 required);
    /// @notice The output's L2 block must be above its start's (the latest finalized output's).
    error L2BlockOutOfRange(uint256 l2Block, uint256 startL2Block);
    error TraceLengthOutOfRange(uint256 traceLength, uint256 maxTraceLength);
    /// @notice l1Horizon must be in [the start's l1Horizon, block.number - 1].
    error L1HorizonOutOfRange(uint256 l1Horizon, uint256 startL1Horizon, uint256 blockNumber);
    /// @notice batchLimit is more than the inbox holds.
    error BatchLimitAboveCount(uint256 batchLimit, uint256 batchCount);
    /// @notice batchLimit counts batch `index`, which L1 included after l1Horizon (in `l1Block`).
    error BatchAfterHorizon(uint256 index, uint256 l1Block, uint256 l1Horizon);
    /// @notice batchLimit leaves out batch `index`, which L1 included by l1Horizon (in `l1Block`).
    error BatchWithinHorizon(uint256 index, uint256 l1Block, uint256 l1Horizon);
    error UnknownOutput(uint256 index, uint256 count);
    error UnknownGame(uint256 gameId, uint256 count);
    /// @notice The output is not PROPOSED or CHALLENGED (anchor, finalized or invalidated).
    error OutputNotPending(uint256 index, Status status);
    error ChallengeWindowClosed(uint256 index, uint256 closedAt);
    error ChallengeWindowOpen(uint256 index, uint256 closesAt);
    error TooManyGames(uint256 index);
    error OutputUnderChallenge(uint256 index, uint256 activeGames);
    error NotGame(address caller);
    error GameAlreadyResolved(uint256 gameId);

    /// @param anchor The genesis snapshot (it must pass Snapshots.checkRange): output 0, final from
    ///        the start, with batchLimit and l1Horizon 0 (it reads nothing).
    /// @param verifier_ Executes a game's last step; its inbox() is the inbox batch limits are checked on.
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
        IBatchIndex inbox_ = IInboxReader(address(verifier_)).inbox();
        if (address(inbox_).code.length == 0) revert InboxNotAContract(address(inbox_));
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
        Snapshots.checkRange(anchor);
        verifier = verifier_;
        inbox = inbox_;
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
                startIndex: 0,
                traceLength: 0,
                proposedAt: uint40(block.timestamp),
                activeGames: 0,
                proposer: address(0),
                status: Status.FINALIZED,
                batchLimit: 0,
                l1Horizon: 0
            })
        );
        // Logged like any output, so that the log history alone describes every output.
        emit OutputProposed(0, root, anchor.number, 0, address(0), commitment, 0, 0, 0);
        emit OutputFinalized(0);
    }

    // --- proposals -------------------------------------------------------------------------------

    /// @notice Propose an output, from the latest finalized output. Anyone, with proposalBond.
    /// @param s The snapshot at the end of the output's L2 block (checked by Snapshots.checkRange).
    /// @param traceLength Derivation steps from the start's snapshot to `s`: what a dispute bisects.
    /// @param batchLimit The number of inbox batches included in L1 blocks <= l1Horizon.
    /// @param l1Horizon The last L1 block the derivation of `s` read: below block.number, not below
    ///        the start's.
    /// @return index The output's index.
    function propose(Snapshots.Snapshot calldata s, uint256 traceLength, uint256 batchLimit, uint256 l1Horizon)
        external
        payable
        returns (uint256 index)
    {
        if (msg.value != proposalBond) revert WrongBond(msg.value, proposalBond);
        Snapshots.Snapshot memory snapshot = s;
        Snapshots.checkRange(snapshot);
        uint256 startIndex = _latestFinalized;
        Record storage start = _outputs[startIndex];
        if (s.number <= start.l2Block) revert L2BlockOutOfRange(s.number, start.l2Block);
        if (traceLength == 0 || traceLength > maxTraceLength) {
            revert TraceLengthOutOfRange(traceLength, maxTraceLength);
        }
        if (l1Horizon >= block.number || l1Horizon < start.l1Horizon) {
            revert L1HorizonOutOfRange(l1Horizon, start.l1Horizon, block.number);
        }
        _checkBatchLimit(batchLimit, l1Horizon);
        bytes32 root = Snapshots.outputRoot(snapshot);
        bytes32 commitment = Snapshots.commitment(snapshot);
        index = _outputs.length;
        _outputs.push(
            Record({
                outputRoot: root,
                snapshotHash: commitment,
                l2Block: uint64(s.number),
                startIndex: uint64(startIndex),
                traceLength: uint64(traceLength),
                proposedAt: uint40(block.timestamp),
                activeGames: 0,
                proposer: msg.sender,
                status: Status.PROPOSED,
                batchLimit: uint48(batchLimit),
                l1Horizon: uint40(l1Horizon)
            })
        );
        emit OutputProposed(index, root, s.number, startIndex, msg.sender, commitment, traceLength, batchLimit, l1Horizon);
    }

    /// @notice Dispute output `index` within its challenge window: deploys a DisputeGame between
    ///         the caller (challenger) and the output's proposer (defender). Anyone, with
    ///         challengeBond; several challengers may each open their own game.
    /// @return gameId The game's index in the registry (game(gameId) is its address).
    function challenge(uint256 index) external payable returns (uint256 gameId) {
        Record storage o = _record(index);
        Status status = o.status;
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
                l1Horizon: o.l1Horizon,
                startHash: _outputs[o.startIndex].snapshotHash,
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
    ///         invalidates the output (that one only: nothing rests on it) and pays its proposal
    ///         bond to the challenger; a game on an output already invalidated changes nothing.
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
        if (o.status == Status.INVALIDATED) return; // another game on it won already
        if (challengerWon) {
            o.status = Status.INVALIDATED;
            _pay(g.challenger, proposalBond);
            emit OutputInvalidated(index, gameId);
        } else if (o.activeGames == 0) {
            o.status = Status.PROPOSED;
        }
    }

    /// @notice Finalize output `index`: unchallenged or every game won by its proposer, and its
    ///         window passed. Returns the proposal bond. Anyone.
    function finalize(uint256 index) external {
        Record storage o = _record(index);
        Status status = o.status;
        if (status == Status.CHALLENGED) revert OutputUnderChallenge(index, o.activeGames);
        if (status != Status.PROPOSED) revert OutputNotPending(index, status);
        uint256 closes = uint256(o.proposedAt) + challengeWindow;
        if (block.timestamp < closes) revert ChallengeWindowOpen(index, closes);
        o.status = Status.FINALIZED;
        if (o.l2Block > _outputs[_latestFinalized].l2Block) _latestFinalized = index;
        _pay(o.proposer, proposalBond);
        emit OutputFinalized(index);
    }

    // --- views -----------------------------------------------------------------------------------

    function outputCount() external view returns (uint256) {
        return _outputs.length;
    }

    function output(uint256 index) external view returns (Output memory) {
        Record storage o = _record(index);
        return Output({
            outputRoot: o.outputRoot,
            snapshotHash: o.snapshotHash,
            l2Block: o.l2Block,
            startIndex: o.startIndex,
            proposedAt: o.proposedAt,
            traceLength: o.traceLength,
            proposer: o.proposer,
            status: o.status,
            activeGames: o.activeGames,
            batchLimit: o.batchLimit,
            l1Horizon: o.l1Horizon
        });
    }

    /// @notice The finalized output with the highest L2 block: the start of the next proposal.
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

    /// @dev batchLimit is the number of batches in L1 blocks <= l1Horizon: batch batchLimit - 1 is
    ///      in one (or there is none), and batch batchLimit is not (or there is none). Batches are
    ///      appended in L1 block order, so two reads decide it.
    function _checkBatchLimit(uint256 batchLimit, uint256 l1Horizon) private view {
        uint256 count = inbox.batchCount();
        if (batchLimit > count) revert BatchLimitAboveCount(batchLimit, count);
        if (batchLimit > 0) {
            (, uint256 last) = inbox.batch(batchLimit - 1);
            if (last > l1Horizon) revert BatchAfterHorizon(batchLimit - 1, last, l1Horizon);
        }
        if (batchLimit < count) {
            (, uint256 next) = inbox.batch(batchLimit);
            if (next <= l1Horizon) revert BatchWithinHorizon(batchLimit, next, l1Horizon);
        }
    }
}
