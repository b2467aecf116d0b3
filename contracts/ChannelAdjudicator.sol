// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {PullPayments} from "./PullPayments.sol";

/// @title ChannelAdjudicator
/// @notice ETH payment channels between two parties: both fund a channel here, pay each other
///         off chain with co-signed states (protocol/_channel.py, rules C1-C9), and come back
///         only to close: cooperatively at once, or unilaterally with the latest co-signed state
///         and a challenge period in which any newer one replaces it (Nitro's ForceMove, without
///         its turn-taking; Lightning's to_self_delay, without its penalty: A13). HTLCs pending
///         in the final closing state are claimed with their preimage until their expiry and
///         refunded after it, one by one (as Lightning sweeps each HTLC output on its own).
/// @dev Rules (the worker and the tests cite them by number):
///
///      A1  channelId = keccak256(abi.encode(block.chainid, address(this), a, b, nonce)): a state
///          signed for one channel is worthless on another, on another chain or adjudicator
///          (and the EIP-712 domain binds the last two once more, A5).
///      A2  open(a, b, nonce, amountA, amountB): msg.sender == a (so nobody can squat an id that
///          names someone else), a and b distinct and non-zero, amountA + amountB > 0, each
///          below 2**96 (packed storage; more than all ETH), msg.value == amountA, and the id
///          never used before, not even by a concluded or cancelled channel (an id is burned for
///          good: an old channel's states must never apply to a new one). With amountB == 0 the
///          channel is OPEN at once (a single-funded channel, as Lightning's); otherwise OPENING.
///      A3  fund(channelId): OPENING, msg.sender == b, msg.value == amountB: OPEN.
///      A4  cancelOpen(channelId): OPENING and block.timestamp >= openedAt + OPEN_TIMEOUT: a's
///          deposit goes back to a; CANCELLED. Not before: b has a fixed window in which its
///          funding cannot be pulled from under it. Anyone may call it (it pays only a).
///      A5  A state's digest is EIP-712's: keccak256(0x1901 || domainSeparator || hashStruct(s)),
///          domain EIP712Domain(name "l2node channels", version "1", chainId, verifyingContract
///          = this); Htlc and State hashed as protocol/_channel.py's docstring writes them (an
///          array of structs: keccak256 of its elements' hashStructs concatenated). The domain
///          separator is recomputed if block.chainid ever differs from the deployment's (a fork).
///      A6  A signature is 65 bytes r || s || v with v in {27, 28} and s <= n/2 (its malleable
///          twin (r, n - s) is refused, as OpenZeppelin's ECDSA does), and it recovers to the
///          participant it stands for: sigA to a, sigB to b (C8, C9).
///      A7  A valid state (C1, C3-C5, C9): its channelId names the channel, every HTLC amount is
///          above zero, at most MAX_HTLCS (483) HTLCs, balanceA + balanceB + sum(htlc.amount)
///          == amountA + amountB (the adjudicator pays out exactly what it holds for the
///          channel, never more), and both signatures valid (A6). The contract does not check
///          C6 (one HTLC per hash and direction) nor C7 (expiry deltas): its safety does not
///          depend on them (each HTLC is paid at most once by its index, within A7's sum).
///      A8  Sequence 0 is the funding state: balances amountA and amountB, no HTLCs, signed by
///          no one (the signatures are ignored and may be empty). Either party can thus leave a
///          channel whose other side vanished before the first update; any co-signed state
///          (sequence >= 1) replaces it in the challenge period. Any other sequence-0 state is
///          refused (NotFundingState).
///      A9  Sequence type(uint64).max (FINAL_SEQUENCE) marks a final state: both signed it to
///          end the channel (as Nitro's isFinal, Lightning's closing_signed); it carries no
///          HTLC. closeCooperative(s, sigA, sigB) takes only a final state (any other co-signed
///          state may be stale: paying it at once would let a party close with an old one), when
///          OPEN or CLOSING (it ends a dispute too), from anyone: pays both balances at once,
///          CONCLUDED. No state can ever replace a final one (nothing is above its sequence).
///          Its htlcsHash is zero, which no list of HTLCs hashes to: a replaced closing state's
///          HTLCs are no longer claimable or refundable (A14).
///      A10 closeUnilateral(s, sigA, sigB): OPEN, msg.sender is a or b (a watchtower holding
///          states may answer a close, A11, never start one), s valid (A7 or A8): s becomes the
///          closing state, the period ends at block.timestamp + CHALLENGE_PERIOD; CLOSING.
///      A11 challenge(s, sigA, sigB): CLOSING, block.timestamp < endsAt, s valid (A7) and
///          s.sequence > the closing state's (a lower or equal one is refused): s replaces the
///          closing state. Anyone may call it (the party's watchtower). endsAt does not move: the
///          period is fixed by the first close, as Lightning's delay runs from the commitment
///          that started it. Each party answers with its newest state, and nothing newer than
///          the newest exists, so a restart would protect nobody; it would only let a party with
///          a long history of states delay the end by one period per state (Nitro restarts
///          because its turn-taking games need a reply to each move; payments do not).
///      A12 conclude(channelId, htlcs): CLOSING, block.timestamp >= endsAt (the period is
///          [close, endsAt): exactly at endsAt a challenge is refused and conclude passes), and
///          keccak256(abi.encode(htlcs)) == the closing state's htlcsHash: pays balanceA to a,
///          balanceB to b; CONCLUDED. The HTLCs' amounts stay here for A14/A15.
///      A13 The stale closer gains nothing: the newer state replaces the stale one within the
///          period and is what conclude pays. There is no penalty (unlike Lightning's): without
///          revocation keys an honest party whose last countersignature was lost in transit
///          legitimately closes with an older state than its peer holds, and must not lose its
///          balance for it.
///      A14 claimHtlc(channelId, htlcs, index, preimage): CLOSING or CONCLUDED, htlcs is the
///          closing state's (htlcsHash), sha256(preimage) == htlcs[index].paymentHash, and the
///          preimage is on chain by the HTLC's expiry: revealed in this call with
///          block.timestamp <= expiry (exactly at it passes, one second after fails), or in an
///          earlier one (revealedAt, kept per channel and payment hash, <= expiry). The reveal
///          is recorded and HtlcClaimed carries the preimage, so the upstream hop sees it early,
///          even during the challenge period. The amount is paid to the HTLC's receiver only
///          from the final state, i.e. once CONCLUDED (during CLOSING the call records the
///          reveal and pays nothing; it is called again after conclude to be paid, even after
///          the expiry). So an HTLC a newer state dropped is never paid: conclude's htlcs are the
///          last closing state's. Expiry and period need no ordering: a receiver must get a state
///          holding its HTLC recorded (close or challenge) and reveal before the expiry, as
///          Lightning's receiver must go on chain before the CLTV; the reveal then counts
///          whenever the period ends. Anyone may call (the payee is fixed by the HTLC).
///      A15 refundHtlc(channelId, htlcs, index): CONCLUDED, htlcsHash matches, block.timestamp
///          > expiry, and no preimage revealed by the expiry (A14): the amount goes back to the
///          offerer (a if fromA). Anyone may call.
///      A16 An HTLC is paid once: claim or refund marks its index settled; a second claim, a
///          refund after a claim or a claim after a refund is refused. A reveal during CLOSING
///          is recorded once (a second one is refused: nothing would change).
///      A17 Payouts are pushed with PAY_GAS gas and no return data copied; a recipient whose
///          call fails (a contract that reverts or needs more) is credited instead and
///          withdraws (PullPayments): no recipient can block a close, a conclude or the other
///          party's payout. Every state change precedes the payout (checks, effects,
///          interactions), so re-entry finds the channel already settled.
contract ChannelAdjudicator is PullPayments {
    /// @notice A pending HTLC: `amount` from its offerer (a if fromA) to the other party against
    ///         the preimage of `paymentHash` (sha256) until `expiry` (L1 unix seconds).
    struct Htlc {
        bool fromA;
        uint256 amount;
        bytes32 paymentHash;
        uint64 expiry;
    }

    /// @notice A state both parties sign (EIP-712, A5).
    struct State {
        bytes32 channelId;
        uint64 sequence;
        uint256 balanceA;
        uint256 balanceB;
        Htlc[] htlcs;
    }

    enum Status {
        NONE,
        OPENING,
        OPEN,
        CLOSING,
        CONCLUDED,
        CANCELLED
    }

    /// @notice What `channel` returns: the channel fixed at open, and its closing state.
    struct ChannelView {
        address a;
        address b;
        uint256 amountA;
        uint256 amountB;
        Status status;
        uint64 sequence;
        uint64 openedAt;
        uint64 endsAt;
        uint256 balanceA;
        uint256 balanceB;
        bytes32 htlcsHash;
    }

    /// Storage: five slots a channel (a, amountA | b, amountB | status, times | balances |
    /// htlcsHash); the last two written at close.
    struct Channel {
        address a;
        uint96 amountA;
        address b;
        uint96 amountB;
        Status status;
        uint64 sequence;
        uint64 openedAt;
        uint64 endsAt;
        uint128 balanceA;
        uint128 balanceB;
        bytes32 htlcsHash;
    }

    /// @notice BOLT 2's max_accepted_htlcs (C5): bounds a close's and a claim's calldata.
    uint256 public constant MAX_HTLCS = 483;
    /// @notice The sequence of a final state (A9).
    uint64 public constant FINAL_SEQUENCE = type(uint64).max;
    /// @notice How long b has to fund before a may cancel (A4).
    uint64 public constant OPEN_TIMEOUT = 1 days;
    /// @notice Gas a pushed payout's recipient gets (A17): a contract wallet's receive hook fits.
    uint256 public constant PAY_GAS = 50_000;
    /// @notice The challenge period in seconds (A10, A11).
    uint64 public immutable CHALLENGE_PERIOD;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant HTLC_TYPEHASH =
        keccak256("Htlc(bool fromA,uint256 amount,bytes32 paymentHash,uint64 expiry)");
    bytes32 private constant STATE_TYPEHASH = keccak256(
        "State(bytes32 channelId,uint64 sequence,uint256 balanceA,uint256 balanceB,Htlc[] htlcs)"
        "Htlc(bool fromA,uint256 amount,bytes32 paymentHash,uint64 expiry)"
    );
    bytes32 private constant NAME_HASH = keccak256("l2node channels");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1's n / 2: the highest s accepted (A6).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint256 private immutable _deployChainId;
    bytes32 private immutable _domainSeparator;

    mapping(bytes32 => Channel) private _channels;
    /// channelId => paymentHash => when its preimage was first revealed here (A14).
    mapping(bytes32 => mapping(bytes32 => uint64)) private _revealedAt;
    /// channelId => word => bits: the settled HTLC indices (A16).
    mapping(bytes32 => mapping(uint256 => uint256)) private _settled;

    event ChannelOpened(
        bytes32 indexed channelId, address indexed a, address indexed b, uint64 nonce, uint256 amountA,
        uint256 amountB
    );
    event ChannelFunded(bytes32 indexed channelId);
    event ChannelCancelled(bytes32 indexed channelId);
    event ChannelClosing(bytes32 indexed channelId, uint64 sequence, uint64 endsAt);
    event ChannelChallenged(bytes32 indexed channelId, uint64 sequence);
    event ChannelConcluded(bytes32 indexed channelId, uint64 sequence, uint256 balanceA, uint256 balanceB);
    /// @notice A preimage on chain (A14); `paid` is what this call paid (0 while CLOSING).
    event HtlcClaimed(bytes32 indexed channelId, uint256 index, bytes32 indexed paymentHash, bytes32 preimage,
        uint256 paid);
    event HtlcRefunded(bytes32 indexed channelId, uint256 index, bytes32 indexed paymentHash, uint256 amount);

    error ZeroChallengePeriod();
    error InvalidParticipants(address a, address b);
    error NotOpener(address sender, address a);
    error NotFunder(address sender, address b);
    error NotParticipant(address sender);
    error ZeroFunding();
    error AmountTooLarge(uint256 amount);
    error WrongAmount(uint256 sent, uint256 expected);
    error ChannelExists(bytes32 channelId);
    error WrongStatus(bytes32 channelId, Status status);
    error OpenTimeoutRunning(uint64 endsAt);
    error FundsNotConserved(bytes32 channelId);
    error ZeroHtlcAmount(uint256 index);
    error TooManyHtlcs(uint256 count);
    error NotFundingState();
    error SignatureLength(uint256 length);
    error SignatureV(uint8 v);
    error SignatureHighS();
    error WrongSigner(address expected, address recovered);
    error NotFinalState(uint64 sequence);
    error HtlcsPending(uint256 count);
    error StaleState(uint64 sequence, uint64 closingSequence);
    error ChallengePeriodOver(uint64 endsAt);
    error ChallengePeriodRunning(uint64 endsAt);
    error HtlcsMismatch(bytes32 supplied, bytes32 closing);
    error HtlcIndexOutOfRange(uint256 index, uint256 count);
    error WrongPreimage(bytes32 paymentHash);
    error HtlcExpired(uint64 expiry);
    error HtlcNotExpired(uint64 expiry);
    error HtlcSettled(uint256 index);
    error PreimageAlreadyRevealed(bytes32 paymentHash);
    error PreimageRevealed(bytes32 paymentHash, uint64 revealedAt);

    /// @param challengePeriod Seconds a unilateral close waits for a newer state (A10, A11).
    constructor(uint64 challengePeriod) {
        if (challengePeriod == 0) revert ZeroChallengePeriod();
        CHALLENGE_PERIOD = challengePeriod;
        _deployChainId = block.chainid;
        _domainSeparator = _buildDomainSeparator();
    }

    // --- opening ---------------------------------------------------------------------------------

    /// @notice Open a channel between `a` (the caller, paying `amountA`) and `b` (A1, A2).
    function open(address a, address b, uint64 nonce, uint256 amountA, uint256 amountB)
        external
        payable
        returns (bytes32 channelId)
    {
        if (msg.sender != a) revert NotOpener(msg.sender, a);
        if (a == address(0) || b == address(0) || a == b) revert InvalidParticipants(a, b);
        if (amountA == 0 && amountB == 0) revert ZeroFunding();
        if (amountA > type(uint96).max) revert AmountTooLarge(amountA);
        if (amountB > type(uint96).max) revert AmountTooLarge(amountB);
        if (msg.value != amountA) revert WrongAmount(msg.value, amountA);
        channelId = channelIdOf(a, b, nonce);
        Channel storage ch = _channels[channelId];
        if (ch.status != Status.NONE) revert ChannelExists(channelId);
        ch.a = a;
        ch.amountA = uint96(amountA);
        ch.b = b;
        ch.amountB = uint96(amountB);
        ch.openedAt = uint64(block.timestamp);
        ch.status = amountB == 0 ? Status.OPEN : Status.OPENING;
        emit ChannelOpened(channelId, a, b, nonce, amountA, amountB);
        if (amountB == 0) emit ChannelFunded(channelId);
    }

    /// @notice b's deposit: the channel is OPEN (A3).
    function fund(bytes32 channelId) external payable {
        Channel storage ch = _channels[channelId];
        _requireStatus(channelId, ch, Status.OPENING);
        if (msg.sender != ch.b) revert NotFunder(msg.sender, ch.b);
        if (msg.value != ch.amountB) revert WrongAmount(msg.value, ch.amountB);
        ch.status = Status.OPEN;
        emit ChannelFunded(channelId);
    }

    /// @notice a takes its deposit back from a channel b never funded (A4).
    function cancelOpen(bytes32 channelId) external {
        Channel storage ch = _channels[channelId];
        _requireStatus(channelId, ch, Status.OPENING);
        uint64 endsAt = ch.openedAt + OPEN_TIMEOUT;
        if (block.timestamp < endsAt) revert OpenTimeoutRunning(endsAt);
        ch.status = Status.CANCELLED;
        emit ChannelCancelled(channelId);
        _send(ch.a, ch.amountA);
    }

    // --- closing ---------------------------------------------------------------------------------

    /// @notice Close at once with a final state both signed (A9).
    function closeCooperative(State calldata s, bytes calldata sigA, bytes calldata sigB) external {
        Channel storage ch = _channels[s.channelId];
        if (ch.status != Status.OPEN && ch.status != Status.CLOSING) revert WrongStatus(s.channelId, ch.status);
        if (s.sequence != FINAL_SEQUENCE) revert NotFinalState(s.sequence);
        _checkState(ch, s, sigA, sigB);
        ch.status = Status.CONCLUDED;
        ch.sequence = s.sequence;
        ch.balanceA = uint128(s.balanceA);
        ch.balanceB = uint128(s.balanceB);
        if (ch.htlcsHash != 0) ch.htlcsHash = 0; // no HTLC list hashes to 0: none is claimable any more
        emit ChannelConcluded(s.channelId, s.sequence, s.balanceA, s.balanceB);
        _send(ch.a, s.balanceA);
        _send(ch.b, s.balanceB);
    }

    /// @notice Start closing with the caller's latest state (A10): a challenge period follows.
    function closeUnilateral(State calldata s, bytes calldata sigA, bytes calldata sigB) external {
        Channel storage ch = _channels[s.channelId];
        _requireStatus(s.channelId, ch, Status.OPEN);
        if (msg.sender != ch.a && msg.sender != ch.b) revert NotParticipant(msg.sender);
        _checkState(ch, s, sigA, sigB);
        uint64 endsAt = uint64(block.timestamp) + CHALLENGE_PERIOD;
        ch.status = Status.CLOSING;
        ch.endsAt = endsAt;
        _record(ch, s);
        emit ChannelClosing(s.channelId, s.sequence, endsAt);
    }

    /// @notice Replace the closing state with a newer one, within the period (A11).
    function challenge(State calldata s, bytes calldata sigA, bytes calldata sigB) external {
        Channel storage ch = _channels[s.channelId];
        _requireStatus(s.channelId, ch, Status.CLOSING);
        if (block.timestamp >= ch.endsAt) revert ChallengePeriodOver(ch.endsAt);
        if (s.sequence <= ch.sequence) revert StaleState(s.sequence, ch.sequence);
        _checkState(ch, s, sigA, sigB);
        _record(ch, s);
        emit ChannelChallenged(s.channelId, s.sequence);
    }

    /// @notice After the period: pay the closing state's balances (A12).
    function conclude(bytes32 channelId, Htlc[] calldata htlcs) external {
        Channel storage ch = _channels[channelId];
        _requireStatus(channelId, ch, Status.CLOSING);
        if (block.timestamp < ch.endsAt) revert ChallengePeriodRunning(ch.endsAt);
        _requireHtlcs(ch, htlcs);
        ch.status = Status.CONCLUDED;
        emit ChannelConcluded(channelId, ch.sequence, ch.balanceA, ch.balanceB);
        _send(ch.a, ch.balanceA);
        _send(ch.b, ch.balanceB);
    }

    // --- HTLCs -----------------------------------------------------------------------------------

    /// @notice Reveal an HTLC's preimage by its expiry; paid to its receiver once CONCLUDED (A14).
    function claimHtlc(bytes32 channelId, Htlc[] calldata htlcs, uint256 index, bytes32 preimage) external {
        Channel storage ch = _channels[channelId];
        bool concluded = ch.status == Status.CONCLUDED;
        if (!concluded && ch.status != Status.CLOSING) revert WrongStatus(channelId, ch.status);
        Htlc calldata h = _htlcAt(ch, htlcs, index);
        if (sha256(abi.encodePacked(preimage)) != h.paymentHash) revert WrongPreimage(h.paymentHash);
        uint64 revealed = _revealedAt[channelId][h.paymentHash];
        if (revealed == 0) {
            if (block.timestamp > h.expiry) revert HtlcExpired(h.expiry);
            _revealedAt[channelId][h.paymentHash] = uint64(block.timestamp);
        } else if (revealed > h.expiry) {
            revert HtlcExpired(h.expiry);
        } else if (!concluded) {
            revert PreimageAlreadyRevealed(h.paymentHash);
        }
        if (!concluded) {
            emit HtlcClaimed(channelId, index, h.paymentHash, preimage, 0);
            return;
        }
        _settle(channelId, index);
        emit HtlcClaimed(channelId, index, h.paymentHash, preimage, h.amount);
        _send(h.fromA ? ch.b : ch.a, h.amount);
    }

    /// @notice After its expiry, an HTLC whose preimage was not revealed goes back to its offerer (A15).
    function refundHtlc(bytes32 channelId, Htlc[] calldata htlcs, uint256 index) external {
        Channel storage ch = _channels[channelId];
        _requireStatus(channelId, ch, Status.CONCLUDED);
        Htlc calldata h = _htlcAt(ch, htlcs, index);
        if (block.timestamp <= h.expiry) revert HtlcNotExpired(h.expiry);
        uint64 revealed = _revealedAt[channelId][h.paymentHash];
        if (revealed != 0 && revealed <= h.expiry) revert PreimageRevealed(h.paymentHash, revealed);
        _settle(channelId, index);
        emit HtlcRefunded(channelId, index, h.paymentHash, h.amount);
        _send(h.fromA ? ch.a : ch.b, h.amount);
    }

    // --- views -----------------------------------------------------------------------------------

    /// @notice A channel's participants, funding, status and closing state.
    function channel(bytes32 channelId) external view returns (ChannelView memory v) {
        Channel storage ch = _channels[channelId];
        v = ChannelView(ch.a, ch.b, ch.amountA, ch.amountB, ch.status, ch.sequence, ch.openedAt, ch.endsAt,
            ch.balanceA, ch.balanceB, ch.htlcsHash);
    }

    /// @notice The id `open(a, b, nonce, ...)` gives a channel here (A1).
    function channelIdOf(address a, address b, uint64 nonce) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), a, b, nonce));
    }

    /// @notice The EIP-712 digest both parties sign for `s` (A5).
    function stateDigest(State calldata s) public view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), _hashState(s)));
    }

    /// @notice The EIP-712 domain separator (A5).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _deployChainId ? _domainSeparator : _buildDomainSeparator();
    }

    /// @notice keccak256(abi.encode(htlcs)): what a closing state's HTLCs are kept as.
    function htlcsHash(Htlc[] calldata htlcs) public pure returns (bytes32) {
        return keccak256(abi.encode(htlcs));
    }

    /// @notice When the preimage of `paymentHash` was first revealed on `channelId` (0: never).
    function revealedAt(bytes32 channelId, bytes32 paymentHash) external view returns (uint64) {
        return _revealedAt[channelId][paymentHash];
    }

    /// @notice Whether HTLC `index` of `channelId`'s closing state was claimed or refunded (A16).
    function htlcSettled(bytes32 channelId, uint256 index) external view returns (bool) {
        return _settled[channelId][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    // --- internals -------------------------------------------------------------------------------

    function _requireStatus(bytes32 channelId, Channel storage ch, Status status) private view {
        if (ch.status != status) revert WrongStatus(channelId, ch.status);
    }

    /// A7 (or A8 for sequence 0); A9's rule that a final state has no HTLC.
    function _checkState(Channel storage ch, State calldata s, bytes calldata sigA, bytes calldata sigB)
        private
        view
    {
        uint256 count = s.htlcs.length;
        if (s.sequence == 0) {
            if (s.balanceA != ch.amountA || s.balanceB != ch.amountB || count != 0) revert NotFundingState();
            return; // A8: the funding state is signed by no one
        }
        if (count > MAX_HTLCS) revert TooManyHtlcs(count);
        if (s.sequence == FINAL_SEQUENCE && count != 0) revert HtlcsPending(count);
        uint256 left = uint256(ch.amountA) + ch.amountB;
        if (s.balanceA > left) revert FundsNotConserved(s.channelId);
        left -= s.balanceA;
        if (s.balanceB > left) revert FundsNotConserved(s.channelId);
        left -= s.balanceB;
        for (uint256 i = 0; i < count; ++i) {
            uint256 amount = s.htlcs[i].amount;
            if (amount == 0) revert ZeroHtlcAmount(i);
            if (amount > left) revert FundsNotConserved(s.channelId);
            left -= amount;
        }
        if (left != 0) revert FundsNotConserved(s.channelId);
        bytes32 digest = stateDigest(s);
        _requireSigner(digest, sigA, ch.a);
        _requireSigner(digest, sigB, ch.b);
    }

    /// A6: 65 bytes, v in {27, 28}, low s, recovering to `expected`.
    function _requireSigner(bytes32 digest, bytes calldata sig, address expected) private pure {
        if (sig.length != 65) revert SignatureLength(sig.length);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v != 27 && v != 28) revert SignatureV(v);
        if (uint256(s) > HALF_N) revert SignatureHighS();
        address recovered = ecrecover(digest, v, r, s);
        if (recovered != expected) revert WrongSigner(expected, recovered);
    }

    /// Records a valid state as the closing one (A10, A11); balances fit in 128 bits (A2, A7).
    function _record(Channel storage ch, State calldata s) private {
        ch.sequence = s.sequence;
        ch.balanceA = uint128(s.balanceA);
        ch.balanceB = uint128(s.balanceB);
        bytes32 hash = keccak256(abi.encode(s.htlcs));
        if (ch.htlcsHash != hash) ch.htlcsHash = hash; // a challenge often keeps the same HTLCs
    }

    /// `htlcs` are the closing state's (A12, A14, A15).
    function _requireHtlcs(Channel storage ch, Htlc[] calldata htlcs) private view {
        bytes32 supplied = keccak256(abi.encode(htlcs));
        if (supplied != ch.htlcsHash) revert HtlcsMismatch(supplied, ch.htlcsHash);
    }

    function _htlcAt(Channel storage ch, Htlc[] calldata htlcs, uint256 index)
        private
        view
        returns (Htlc calldata)
    {
        _requireHtlcs(ch, htlcs);
        if (index >= htlcs.length) revert HtlcIndexOutOfRange(index, htlcs.length);
        return htlcs[index];
    }

    /// A16.
    function _settle(bytes32 channelId, uint256 index) private {
        uint256 bit = 1 << (index & 0xff);
        uint256 word = _settled[channelId][index >> 8];
        if (word & bit != 0) revert HtlcSettled(index);
        _settled[channelId][index >> 8] = word | bit;
    }

    /// A17: push with PAY_GAS and no return data; credit on failure.
    function _send(address to, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        assembly ("memory-safe") {
            ok := call(PAY_GAS, to, amount, 0, 0, 0, 0)
        }
        if (!ok) _pay(to, amount);
    }

    function _hashState(State calldata s) private pure returns (bytes32) {
        uint256 count = s.htlcs.length;
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            Htlc calldata h = s.htlcs[i];
            hashes[i] = keccak256(abi.encode(HTLC_TYPEHASH, h.fromA, h.amount, h.paymentHash, h.expiry));
        }
        return keccak256(abi.encode(
            STATE_TYPEHASH, s.channelId, s.sequence, s.balanceA, s.balanceB, keccak256(abi.encodePacked(hashes))
        ));
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }
}
