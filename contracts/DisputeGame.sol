// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IStepVerifier} from "./IStepVerifier.sol";
import {PullPayments} from "./PullPayments.sol";
import {Snapshots} from "./Snapshot.sol";

/// @notice What a game reports its result to: the OutputRegistry that created it.
interface IGameRegistry {
    /// @notice Called once by a game the registry created, when the game resolves.
    function resolveGame(bool challengerWon) external;
}

/// @title DisputeGame
/// @notice One challenger against one output's proposer (the defender): a bisection over the
///         derivation trace from the start output's snapshot (position 0, agreed by both) to
///         the output's snapshot (position traceLength, claimed by the defender), down to a
///         single step that the StepVerifier executes on L1, over what L1 held up to the output's
///         L1 horizon (l1Horizon, and batchLimit, the batches included by then).
/// @dev The registry deploys one instance per challenge, so every challenger plays its own
///      two-party game with its own bond: nobody can ride on (or sabotage) another challenger's
///      moves. The invariant of the bisection: both sides agree on the snapshot commitment at
///      `lo`, and the challenger disputes the defender's commitment at `hi`. Each round the
///      defender states its commitment at the midpoint and the challenger says whether it
///      agrees, which halves [lo, hi]; after at most ceil(log2(traceLength)) rounds (at least
///      floor(log2(traceLength))) hi = lo + 1 and one step from the agreed snapshot at lo
///      decides whose claim at hi is right.
///
///      Termination is by chess clock: each side has maxClockDuration in total for all of its
///      moves and only the side to move spends time, so neither side can stall the game for
///      long, and a slow opponent cannot eat into the other's time. A side whose clock runs out
///      loses (claimTimeout). The step is the challenger's move (it is the one who claims the
///      step disproves the defender), but anyone may submit it: its outcome is decided by the
///      verifier, not by who calls, so the defender may call it to end the game early.
///
///      Every bisect and choose carries a bond, moveBond(round) = moveBondBase * (round + 1), and
///      the winner takes everything the game holds. The bond makes each move cost its maker
///      something it only gets back by being right; it grows with depth because deeper moves are
///      nearer the step, the one expensive call, and because it makes the total a liar risks
///      grow quadratically with how long it keeps the game going, while an honest side always
///      recovers its bonds. Payouts are credited and pulled (withdraw), so a winner that cannot
///      receive ETH cannot block the game's resolution or the registry's.
contract DisputeGame is PullPayments {
    enum Status {
        IN_PROGRESS,
        DEFENDER_WON,
        CHALLENGER_WON
    }

    /// @notice Who is to move: the side whose clock runs.
    enum Side {
        NONE,
        DEFENDER,
        CHALLENGER
    }

    /// @notice The next move: BISECT (defender), CHOOSE (challenger), STEP (challenger's turn,
    ///         anyone may submit it); NONE once resolved.
    enum Move {
        NONE,
        BISECT,
        CHOOSE,
        STEP
    }

    /// @notice What the registry passes when it creates a game (a struct: too many for the stack).
    struct Config {
        uint256 outputIndex;
        IStepVerifier verifier;
        uint256 target; // the output's L2 block: where the trace ends
        uint256 batchLimit; // inbox batches in L1 blocks <= l1Horizon: the trace's bound
        uint256 l1Horizon; // the last L1 block the output's derivation read
        bytes32 startHash; // the start output's snapshot commitment (position 0)
        bytes32 endHash; // the output's snapshot commitment (position traceLength)
        uint256 traceLength;
        address defender;
        address challenger;
        uint256 moveBondBase;
        uint256 maxClockDuration;
    }

    /// @notice The registry that created the game and is told its result.
    address public immutable registry;
    /// @notice The disputed output's index in the registry.
    uint256 public immutable outputIndex;
    IStepVerifier public immutable verifier;
    /// @notice The disputed output's L2 block: the trace ends there.
    uint256 public immutable target;
    /// @notice The inbox's batches in L1 blocks <= l1Horizon: the trace reads no batch at or past it
    ///         (see IStepVerifier), so the step's result cannot change during the game.
    uint256 public immutable batchLimit;
    /// @notice The disputed output's L1 horizon: the trace reads L1 up to this block only.
    uint256 public immutable l1Horizon;
    uint256 public immutable traceLength;
    /// @notice The agreed commitment at position 0 (the start output's snapshot: the latest finalized
    ///         output when the disputed one was proposed).
    bytes32 public immutable startClaim;
    /// @notice The defender's commitment at position traceLength (the output's snapshot).
    bytes32 public immutable rootClaim;
    address public immutable defender;
    address public immutable challenger;
    uint256 public immutable moveBondBase;
    uint256 public immutable maxClockDuration;

    // One slot for what every move reads and writes.
    /// @notice Both sides agree on the commitment at `lo`.
    uint64 public lo;
    /// @notice The defender claims `hiHash` at `hi`; the challenger disputes it.
    uint64 public hi;
    /// @notice When the side to move started thinking: the last move, or the game's creation.
    uint64 public lastMoveAt;
    /// @notice Completed bisection rounds (bisect + choose).
    uint8 public round;
    Status public status;
    bool private _midPending; // the defender has bisected; the challenger must choose

    uint64 private _defenderClock; // seconds left, as of lastMoveAt
    uint64 private _challengerClock;

    bytes32 public loHash;
    bytes32 public hiHash;
    /// @notice The defender's claim at mid() in the current round; meaningful while nextMove() is CHOOSE.
    bytes32 public midClaim;


    /// @notice The defender claimed `claim` at position `mid` in round `round`.
    event Bisected(uint256 round, uint256 mid, bytes32 claim);
    /// @notice The challenger agreed (or not) with the round's mid claim; [lo, hi] is what remains.
    event Chose(uint256 round, bool agree, uint256 lo, uint256 hi);
    /// @notice The step from the agreed snapshot `pre` gave `post` (compared with hiHash).
    event Stepped(bytes32 pre, bytes32 post);
    /// @notice The side to move ran out of time; the other side wins.
    event TimedOut(Side side);
    event Resolved(Status status);

    /// @notice The game is over (`status` is its result).
    error GameOver(Status status);
    /// @notice The move is not the one the game expects next.
    error OutOfTurn(Move attempted, Move expected);
    error NotDefender(address caller);
    error NotChallenger(address caller);
    /// @notice msg.value is not this round's move bond.
    error WrongBond(uint256 sent, uint256 required);
    /// @notice The side to move has used up its clock: only claimTimeout is left.
    error ClockExpired(Side side);
    /// @notice The side to move still has `remaining` seconds.
    error ClockNotExpired(Side side, uint256 remaining);
    /// @notice The step's pre-state is not the agreed snapshot at lo.
    error PreStateMismatch(bytes32 given, bytes32 expected);

    /// @dev Called by the registry with the challenge bond; the registry has validated `c`.
    constructor(Config memory c) payable {
        registry = msg.sender;
        outputIndex = c.outputIndex;
        verifier = c.verifier;
        target = c.target;
        batchLimit = c.batchLimit;
        l1Horizon = c.l1Horizon;
        traceLength = c.traceLength;
        startClaim = c.startHash;
        rootClaim = c.endHash;
        defender = c.defender;
        challenger = c.challenger;
        moveBondBase = c.moveBondBase;
        maxClockDuration = c.maxClockDuration;
        hi = uint64(c.traceLength);
        lastMoveAt = uint64(block.timestamp);
        loHash = c.startHash;
        hiHash = c.endHash;
        _defenderClock = uint64(c.maxClockDuration);
        _challengerClock = uint64(c.maxClockDuration);
    }

    // --- moves -----------------------------------------------------------------------------------

    /// @notice The defender's move: its commitment at mid(). Pays moveBond(round).
    function bisect(bytes32 claim) external payable {
        _expect(Move.BISECT);
        if (msg.sender != defender) revert NotDefender(msg.sender);
        _takeBond();
        _tick(Side.DEFENDER);
        midClaim = claim;
        _midPending = true;
        emit Bisected(round, mid(), claim);
    }

    /// @notice The challenger's move: whether it agrees with the defender's mid claim. Agreeing
    ///         moves the dispute to [mid, hi], disagreeing to [lo, mid]. Pays moveBond(round).
    function choose(bool agree) external payable {
        _expect(Move.CHOOSE);
        if (msg.sender != challenger) revert NotChallenger(msg.sender);
        _takeBond();
        _tick(Side.CHALLENGER);
        uint64 m = uint64(mid());
        if (agree) {
            lo = m;
            loHash = midClaim;
        } else {
            hi = m;
            hiHash = midClaim;
        }
        _midPending = false;
        emit Chose(round, agree, lo, hi);
        round += 1;
    }

    /// @notice Execute the one disputed step (hi = lo + 1) from the agreed snapshot at lo. If
    ///         it does not give the defender's claim at hi, the challenger wins; otherwise the
    ///         defender does. Anyone may call it; it spends the challenger's clock.
    /// @param pre The snapshot whose commitment is loHash.
    /// @param proof What the verifier needs to prove what the step reads; a forged one reverts.
    function step(Snapshots.Snapshot calldata pre, bytes calldata proof) external {
        _expect(Move.STEP);
        _tick(Side.CHALLENGER);
        bytes32 preHash = keccak256(abi.encode(pre));
        if (preHash != loHash) revert PreStateMismatch(preHash, loHash);
        bytes32 post = verifier.step(pre, target, batchLimit, l1Horizon, proof);
        emit Stepped(preHash, post);
        _resolve(post != hiHash);
    }

    /// @notice If the side to move has used up its clock, the other side wins. Anyone.
    function claimTimeout() external {
        Side side = turn();
        if (side == Side.NONE) revert GameOver(status);
        uint256 elapsed = block.timestamp - lastMoveAt;
        uint256 left = side == Side.DEFENDER ? _defenderClock : _challengerClock;
        if (elapsed < left) revert ClockNotExpired(side, left - elapsed);
        // Record the loser's clock as spent, so that clocks() reads the final state.
        if (side == Side.DEFENDER) _defenderClock = 0;
        else _challengerClock = 0;
        lastMoveAt = uint64(block.timestamp);
        emit TimedOut(side);
        _resolve(side == Side.DEFENDER);
    }


    // --- views -----------------------------------------------------------------------------------

    /// @notice The bond of each move in round `r`: deeper rounds risk more (see the contract notes).
    function moveBond(uint256 r) public view returns (uint256) {
        return moveBondBase * (r + 1);
    }

    /// @notice The position the defender bisects at (or has bisected at) this round.
    function mid() public view returns (uint256) {
        return (uint256(lo) + uint256(hi)) / 2;
    }

    function nextMove() public view returns (Move) {
        if (status != Status.IN_PROGRESS) return Move.NONE;
        if (hi - lo == 1) return Move.STEP;
        return _midPending ? Move.CHOOSE : Move.BISECT;
    }

    /// @notice The side whose clock is running; NONE once resolved.
    function turn() public view returns (Side) {
        Move next = nextMove();
        if (next == Move.NONE) return Side.NONE;
        return next == Move.BISECT ? Side.DEFENDER : Side.CHALLENGER;
    }

    /// @notice Seconds each side has left as of block.timestamp (the side to move's is running).
    function clocks() external view returns (uint256 defenderRemaining, uint256 challengerRemaining) {
        defenderRemaining = _defenderClock;
        challengerRemaining = _challengerClock;
        Side side = turn();
        // A view may be evaluated against a header older than the state it reads (an RPC node's
        // eth_call at a block number racing a new block): never revert on it.
        uint256 elapsed = block.timestamp > lastMoveAt ? block.timestamp - lastMoveAt : 0;
        if (side == Side.DEFENDER) defenderRemaining = elapsed >= defenderRemaining ? 0 : defenderRemaining - elapsed;
        else if (side == Side.CHALLENGER) {
            challengerRemaining = elapsed >= challengerRemaining ? 0 : challengerRemaining - elapsed;
        }
    }


    // --- internals -------------------------------------------------------------------------------

    function _expect(Move attempted) private view {
        if (status != Status.IN_PROGRESS) revert GameOver(status);
        Move expected = nextMove();
        if (attempted != expected) revert OutOfTurn(attempted, expected);
    }

    function _takeBond() private view {
        uint256 bond = moveBond(round);
        if (msg.value != bond) revert WrongBond(msg.value, bond);
    }

    /// @dev Charge the time since the last move to `side`, the side moving now.
    function _tick(Side side) private {
        uint256 elapsed = block.timestamp - lastMoveAt;
        uint64 left = side == Side.DEFENDER ? _defenderClock : _challengerClock;
        if (elapsed >= left) revert ClockExpired(side);
        left -= uint64(elapsed);
        if (side == Side.DEFENDER) _defenderClock = left;
        else _challengerClock = left;
        lastMoveAt = uint64(block.timestamp);
    }

    function _resolve(bool challengerWon) private {
        status = challengerWon ? Status.CHALLENGER_WON : Status.DEFENDER_WON;
        // Nothing is credited before resolution, so the balance is every bond both sides paid.
        _pay(challengerWon ? challenger : defender, address(this).balance);
        emit Resolved(status);
        IGameRegistry(registry).resolveGame(challengerWon);
    }
}
