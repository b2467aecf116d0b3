"""Multi-hop routing (services.channels._routing): announcements verified (R1-R4), routes over
hand-built graphs (fees, expiries, limits, open breakers, cycles, max_hops) and, on small random
graphs, every route found valid and none cheaper than brute force finds (R6-R10)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ChannelRefused, Domain, Reason, channel_id, payment_hash
from services.channels._routing import (
    MAX_HOPS,
    Announcement,
    ChannelPolicy,
    Graph,
    Route,
    find_route,
)
from services.l1 import LocalSigner

DOMAIN = Domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
NOW = 1_700_000_000
FINAL = 600
KEYS = {name: (i + 1).to_bytes(32, "big") for i, name in enumerate("ABCDEFGHIJXYZ")}
NODE = {name: LocalSigner(key).address for name, key in KEYS.items()}
_nonces = itertools.count()


def policy(base: int = 0, ppm: int = 0, delta: int = 40, *, htlc_min: int = 1, htlc_max: int = 10**30) -> ChannelPolicy:
    return ChannelPolicy(base, ppm, delta, htlc_min, htlc_max)


def announcement(x: str, y: str, terms: ChannelPolicy, *, capacity: int = 10**24, timestamp: int = NOW,
                 nonce: int | None = None) -> Announcement:
    """x's direction of the channel (A = x, B = y), signed by x."""
    a, b = NODE[x], NODE[y]
    nonce = next(_nonces) if nonce is None else nonce
    cid = channel_id(DOMAIN.chain_id, DOMAIN.adjudicator, a, b, nonce)
    return Announcement(cid, a, b, nonce, True, capacity, terms, timestamp).signed(DOMAIN, KEYS[x])


def reverse(ann: Announcement, terms: ChannelPolicy, *, capacity: int = 10**24, timestamp: int = NOW) -> Announcement:
    """The other direction of ``ann``'s channel, signed by its B."""
    key = next(k for n, k in KEYS.items() if NODE[n] == ann.b)
    return replace(ann, from_a=False, capacity=capacity, policy=terms, timestamp=timestamp,
                   signature=b"").signed(DOMAIN, key)


def graph(*anns: Announcement) -> Graph:
    g = Graph(DOMAIN)
    for ann in anns:
        assert g.add(ann)
    return g


def path(route: Route) -> str:
    names = {addr: name for name, addr in NODE.items()}
    return "".join([names[route.source], *(names[h.receiver] for h in route.hops)])


def route(g: Graph, source: str, target: str, amount: int, **kwargs: object) -> Route | None:
    return find_route(g, NODE[source], NODE[target], amount, final_expiry_delta_s=FINAL, now=NOW, **kwargs)  # type: ignore[arg-type]


# --- Announcements (R1-R4) ---------------------------------------------------------------------


def test_a_signed_announcement_is_kept_and_the_newest_of_a_direction_wins() -> None:
    first = announcement("A", "B", policy(5))
    g = graph(first)
    assert g.direction(first.channel_id, True) == first
    newer = replace(first, policy=policy(7), timestamp=NOW + 1, signature=b"").signed(DOMAIN, KEYS["A"])
    older = replace(first, policy=policy(9), timestamp=NOW - 1, signature=b"").signed(DOMAIN, KEYS["A"])
    assert g.add(newer)
    assert not g.add(older)
    assert not g.add(newer)  # equal timestamp: ignored
    assert g.direction(first.channel_id, True) == newer
    assert g.direction(first.channel_id, False) is None
    back = reverse(first, policy(1))
    assert g.add(back)
    assert list(g.announcements()) == [newer, back]


def test_a_removed_channel_stays_removed() -> None:
    ann = announcement("A", "B", policy())
    g = graph(ann, reverse(ann, policy()))
    assert route(g, "A", "B", 10) is not None
    assert g.remove_channel(ann.channel_id)
    assert route(g, "A", "B", 10) is None and route(g, "B", "A", 10) is None
    assert not g.add(replace(ann, timestamp=NOW + 5, signature=b"").signed(DOMAIN, KEYS["A"]))
    assert list(g.announcements()) == []
    assert not g.remove_channel(ann.channel_id)


def test_an_announcement_signed_by_someone_outside_the_channel_is_refused() -> None:
    ann = announcement("A", "B", policy())
    forged = replace(ann, signature=b"").signed(DOMAIN, KEYS["C"])
    with pytest.raises(ChannelRefused) as refused:
        Graph(DOMAIN).add(forged)
    assert refused.value.reason is Reason.NOT_A_PARTICIPANT


def test_a_participant_cannot_announce_its_peers_direction() -> None:
    ann = announcement("A", "B", policy())
    by_b = replace(ann, signature=b"").signed(DOMAIN, KEYS["B"])  # B setting A's fees
    with pytest.raises(ChannelRefused) as refused:
        Graph(DOMAIN).add(by_b)
    assert refused.value.reason is Reason.SIGNER_MISMATCH


def test_a_channel_announced_between_other_nodes_under_a_real_id_is_refused() -> None:
    real = announcement("A", "B", policy())
    # C claims A's and B's channel is C's and B's: the id does not hash from these participants.
    forged = replace(real, a=NODE["C"], signature=b"").signed(DOMAIN, KEYS["C"])
    with pytest.raises(ChannelRefused) as refused:
        Graph(DOMAIN).add(forged)
    assert refused.value.reason is Reason.CHANNEL_MISMATCH


def test_an_announcement_from_another_network_is_refused() -> None:
    other = Domain(1, DOMAIN.adjudicator)
    ann = announcement("A", "B", policy())
    with pytest.raises(ChannelRefused) as refused:
        Graph(other).add(ann)  # the id is another chain's
    assert refused.value.reason is Reason.CHANNEL_MISMATCH
    # Same fields, id recomputed for the other chain: the signature is over this chain's digest.
    moved = replace(ann, channel_id=channel_id(1, DOMAIN.adjudicator, ann.a, ann.b, ann.nonce))
    with pytest.raises(ChannelRefused) as refused:
        Graph(other).add(moved)
    assert refused.value.reason is Reason.NOT_A_PARTICIPANT


def test_a_tampered_or_malformed_signature_is_refused() -> None:
    ann = announcement("A", "B", policy(5))
    cheaper = replace(ann, policy=policy(0))  # fee lowered after signing
    with pytest.raises(ChannelRefused) as refused:
        Graph(DOMAIN).add(cheaper)
    assert refused.value.reason is Reason.NOT_A_PARTICIPANT
    for bad in (b"", ann.signature[:64] + b"\x1d"):
        with pytest.raises(ChannelRefused) as refused:
            Graph(DOMAIN).add(replace(ann, signature=bad))
        assert refused.value.reason is Reason.INVALID_SIGNATURE


def test_the_signed_bytes_bind_the_chain_and_the_adjudicator() -> None:
    ann = announcement("A", "B", policy())
    elsewhere = (Domain(DOMAIN.chain_id, bytes(20)), Domain(1, DOMAIN.adjudicator))
    assert len({ann.digest(DOMAIN), *(ann.digest(d) for d in elsewhere)}) == 3


@pytest.mark.parametrize("fields", [
    {"expiry_delta_s": 0}, {"htlc_min": 0}, {"htlc_min": 10, "htlc_max": 9}, {"max_htlcs": 0},
    {"max_htlcs": 484}, {"fee_ppm": -1}, {"fee_base_wei": True}, {"fee_ppm": 2**64},
])
def test_a_policy_out_of_range_is_refused(fields: dict[str, int]) -> None:
    base = {"fee_base_wei": 0, "fee_ppm": 0, "expiry_delta_s": 1, "htlc_min": 1, "htlc_max": 10}
    with pytest.raises(ChannelRefused) as refused:
        ChannelPolicy(**(base | fields))
    assert refused.value.reason is Reason.FIELD_OUT_OF_RANGE


def test_an_announcement_out_of_range_is_refused() -> None:
    ann = announcement("A", "B", policy())
    for fields in ({"a": ann.b}, {"capacity": -1}, {"nonce": 2**64}, {"from_a": 1}, {"channel_id": b"x"}):
        with pytest.raises(ChannelRefused) as refused:
            replace(ann, **fields)
        assert refused.value.reason is Reason.FIELD_OUT_OF_RANGE


# --- Routes over hand-built graphs (R5-R10) ----------------------------------------------------


def test_the_cheap_long_route_wins_over_the_short_expensive_one() -> None:
    g = graph(
        announcement("A", "B", policy(100)),
        announcement("B", "C", policy(1_000)),  # B charges 1000 to reach C directly
        announcement("B", "D", policy(10)),
        announcement("D", "E", policy(10)),
        announcement("E", "C", policy(10)),
    )
    found = route(g, "A", "C", 5_000)
    assert found is not None
    assert path(found) == "ABDEC"
    assert found.total_fee == 30  # B's, D's and E's; A's own channel charges nothing
    assert found.total_amount == 5_030 and found.amount == 5_000


def test_fees_compound_from_the_end_and_ppm_rounds_up() -> None:
    g = graph(
        announcement("A", "B", policy(999, 999)),  # the source's own: never charged
        announcement("B", "C", policy(3, 1)),
        announcement("C", "D", policy(7, 333_333)),
    )
    found = route(g, "A", "D", 1_000_001)
    assert found is not None
    # C forwards 1_000_001 to D: 7 + ceil(1_000_001 * 333_333 / 1e6) = 7 + 333_334 (333_333.33 up).
    to_c = 1_000_001 + 7 + 333_334
    # B forwards to_c: 3 + ceil(to_c * 1 / 1e6) = 3 + 2 (1.33 up).
    to_b = to_c + 3 + 2
    assert [h.amount for h in found.hops] == [to_b, to_c, 1_000_001]
    assert found.total_fee == to_b - 1_000_001
    assert policy(0, 1).fee(1) == 1 and policy(0, 1).fee(0) == 0 and policy(0, 10**6).fee(5) == 5
    assert policy(0, 500_000).fee(3) == 2  # 1.5 up


def test_expiries_decrease_along_the_route_by_each_delta() -> None:
    g = graph(
        announcement("A", "B", policy(delta=1_000)),  # the source's own delta is not added
        announcement("B", "C", policy(delta=144)),
        announcement("C", "D", policy(delta=40)),
    )
    found = route(g, "A", "D", 50)
    assert found is not None
    assert [h.expiry for h in found.hops] == [NOW + FINAL + 40 + 144, NOW + FINAL + 40, NOW + FINAL]
    assert found.first_expiry == NOW + FINAL + 184 and found.final_expiry == NOW + FINAL
    for up, down in itertools.pairwise(found.hops):
        assert up.expiry - down.expiry == down.policy.expiry_delta_s > 0
    assert [h.from_a for h in found.hops] == [True, True, True]


def test_a_hop_offers_the_htlc_of_its_direction() -> None:
    ann = announcement("B", "A", policy())  # A is the channel's B: A sends B -> A's direction
    g = graph(ann, reverse(ann, policy()))
    found = route(g, "A", "B", 9)
    assert found is not None
    (hop,) = found.hops
    assert not hop.from_a and hop.channel_id == ann.channel_id
    h = payment_hash(bytes(32))
    htlc = hop.htlc(h)
    assert (htlc.from_a, htlc.amount, htlc.payment_hash, htlc.expiry) == (False, 9, h, NOW + FINAL)


@pytest.mark.parametrize("limit", ["capacity", "htlc_max", "htlc_min"])
def test_channels_whose_limits_the_amount_breaks_are_routed_around(limit: str) -> None:
    cheap = {
        "capacity": announcement("B", "C", policy(0), capacity=999),
        "htlc_max": announcement("B", "C", policy(0, htlc_max=999)),
        "htlc_min": announcement("B", "C", policy(0, htlc_min=1_001)),
    }[limit]
    g = graph(announcement("A", "B", policy()), cheap, announcement("B", "D", policy(50)),
              announcement("D", "C", policy(50)))
    found = route(g, "A", "C", 1_000)
    assert found is not None and path(found) == "ABDC"
    ok = route(g, "A", "C", 999 if limit != "htlc_min" else 1_001)
    assert ok is not None and path(ok) == "ABC"


def test_the_source_channel_capacity_counts_the_fees() -> None:
    # A's channel carries 1_000 + B's fee 10: a capacity of 1_009 is not enough.
    g = graph(announcement("A", "B", policy(), capacity=1_009), announcement("B", "C", policy(10)))
    assert route(g, "A", "C", 1_000) is None
    assert route(g, "A", "C", 999) is not None


def test_a_node_whose_breaker_is_open_is_routed_around() -> None:
    g = graph(
        announcement("A", "B", policy()),
        announcement("B", "C", policy(1)),  # cheap, through C
        announcement("C", "D", policy(1)),
        announcement("B", "E", policy(50)),
        announcement("E", "D", policy(50)),
    )
    assert path(route(g, "A", "D", 100) or pytest.fail("no route")) == "ABCD"
    g.mark_unavailable(NODE["C"])
    assert path(route(g, "A", "D", 100) or pytest.fail("no route")) == "ABED"
    g.mark_unavailable(NODE["E"])
    assert route(g, "A", "D", 100) is None
    g.mark_unavailable(NODE["D"])
    g.mark_available(NODE["C"])
    assert route(g, "A", "D", 100) is None  # the target itself is unreachable
    g.mark_available(NODE["D"])
    assert path(route(g, "A", "D", 100) or pytest.fail("no route")) == "ABCD"


def test_excluded_channels_and_nodes_are_not_used() -> None:
    bc = announcement("B", "C", policy(1))
    g = graph(announcement("A", "B", policy()), bc, announcement("B", "E", policy(50)),
              announcement("E", "C", policy(50)))
    assert path(route(g, "A", "C", 10, exclude=[bc.channel_id]) or pytest.fail("no route")) == "ABEC"
    assert route(g, "A", "C", 10, exclude=[bc.channel_id, NODE["E"]]) is None
    with pytest.raises(ValueError):
        route(g, "A", "C", 10, exclude=[b"short"])


def test_no_route_is_none() -> None:
    ab = announcement("A", "B", policy())
    g = graph(ab, announcement("C", "D", policy()))
    assert route(g, "A", "D", 1) is None
    assert route(g, "B", "A", 1) is None  # a direction never announced is not used
    assert route(Graph(DOMAIN), "A", "B", 1) is None


def test_cycles_do_not_loop() -> None:
    anns = [announcement(x, y, policy(1)) for x, y in ("AB", "BC", "CA", "CB", "BA")]
    g = graph(*anns, announcement("C", "D", policy(1)), announcement("D", "B", policy(1)))
    found = route(g, "A", "D", 10)
    assert found is not None and path(found) == "ABCD"
    assert route(g, "A", "E", 10) is None


def test_max_hops_bounds_the_route() -> None:
    g = graph(
        announcement("A", "B", policy()),
        announcement("B", "C", policy(1)),
        announcement("C", "D", policy(1)),
        announcement("D", "E", policy(1)),
        announcement("B", "E", policy(100)),
    )
    assert path(route(g, "A", "E", 10) or pytest.fail("no route")) == "ABCDE"
    assert path(route(g, "A", "E", 10, max_hops=3) or pytest.fail("no route")) == "ABE"
    assert route(g, "A", "E", 10, max_hops=1) is None
    with pytest.raises(ChannelRefused):
        route(g, "A", "E", 10, max_hops=MAX_HOPS + 1)


def test_ties_go_to_fewer_hops_then_the_earlier_expiry() -> None:
    g = graph(
        announcement("A", "B", policy()),
        announcement("B", "C", policy(2, delta=10)),
        announcement("B", "D", policy(1, delta=10)),
        announcement("D", "C", policy(1, delta=10)),
    )
    assert path(route(g, "A", "C", 10) or pytest.fail("no route")) == "ABC"  # same fee, fewer hops
    slow = announcement("B", "C", policy(2, delta=500))
    fast = announcement("B", "C", policy(2, delta=20))
    g2 = graph(announcement("A", "B", policy()), slow, fast)
    found = route(g2, "A", "C", 10)
    assert found is not None and found.hops[1].channel_id == fast.channel_id


def test_upstream_of_a_failed_hop_is_every_hop_before_it_nearest_first() -> None:
    g = graph(*(announcement(x, y, policy(1)) for x, y in ("AB", "BC", "CD", "DE")))
    found = route(g, "A", "E", 10)
    assert found is not None
    hops = found.hops
    assert found.upstream_of(0) == ()
    assert found.upstream_of(2) == (hops[1], hops[0])
    assert found.upstream_of(3) == (hops[2], hops[1], hops[0])
    for bad in (-1, 4):
        with pytest.raises(IndexError):
            found.upstream_of(bad)


def test_a_route_that_does_not_conserve_its_amounts_cannot_be_built() -> None:
    g = graph(announcement("A", "B", policy()), announcement("B", "C", policy(5)))
    found = route(g, "A", "C", 10)
    assert found is not None
    first, last = found.hops
    for broken in ((replace(first, amount=first.amount - 1), last), (replace(first, expiry=first.expiry - 1), last),
                   (last, first), ()):
        with pytest.raises(ValueError):
            Route(broken)


def test_a_route_needs_distinct_ends() -> None:
    with pytest.raises(ValueError):
        route(graph(announcement("A", "B", policy())), "A", "A", 1)


# --- Random graphs against brute force (R6-R10) ------------------------------------------------


@dataclass(frozen=True)
class Edge:
    x: int
    y: int
    base: int
    ppm: int
    delta: int
    capacity: int
    htlc_min: int
    htlc_max: int


NAMES = "ABCDE"


def edges(max_min: int) -> st.SearchStrategy[list[Edge]]:
    @st.composite
    def edge(draw: st.DrawFn) -> Edge:
        # Drawn to be valid (a filter here starves Hypothesis): y differs from x, min <= max.
        x = draw(st.integers(0, 4))
        y = (x + draw(st.integers(1, 4))) % 5
        htlc_min = draw(st.integers(1, max_min))
        return Edge(x, y, draw(st.integers(0, 30)), draw(st.integers(0, 100_000)), draw(st.integers(1, 100)),
                    draw(st.integers(200, 3_000)), htlc_min, htlc_min + draw(st.integers(200, 3_000)))

    return st.lists(edge(), min_size=8, max_size=20)


Ends = tuple[list[int], bool]
#: A payment's source and target: two distinct nodes, and whether a channel between them is kept
#: (without one, every route has hops to compare).
ENDS = st.tuples(st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True), st.booleans())


#: The nodes whose breaker is open (the source among them is ignored: it is this node).
BREAKERS_OPEN = st.sets(st.integers(0, 4), min_size=1, max_size=2)


def build(es: list[Edge], ends: Ends) -> tuple[Graph, list[Announcement], bytes, bytes]:
    (s, t), direct = ends
    es = [e for e in es if direct or (e.x, e.y) != (s, t)]
    anns = [announcement(NAMES[e.x], NAMES[e.y], policy(e.base, e.ppm, e.delta, htlc_min=e.htlc_min,
                                                          htlc_max=e.htlc_max), capacity=e.capacity)
            for e in es]
    return graph(*anns), anns, NODE[NAMES[s]], NODE[NAMES[t]]


def cost(anns: tuple[Announcement, ...], amount: int) -> tuple[int, int, int] | None:
    """R6-R8 along ``anns`` computed independently: (amount sent, hops, first expiry) or None."""
    carried, expiry = amount, NOW + FINAL
    for i in range(len(anns) - 1, -1, -1):
        ann = anns[i]
        p = ann.policy
        if not (p.htlc_min <= carried <= p.htlc_max and carried <= ann.capacity):
            return None
        if i:
            fee = p.fee_base_wei + (carried * p.fee_ppm + 999_999) // 1_000_000
            carried, expiry = carried + fee, expiry + p.expiry_delta_s
    return carried, len(anns), expiry


def brute_force(anns: list[Announcement], source: bytes, target: bytes, amount: int,
                max_hops: int, down: frozenset[bytes] = frozenset()) -> tuple[int, int, int] | None:
    """The cheapest of every simple path of at most ``max_hops`` avoiding ``down`` (R8-R10)."""
    best: tuple[int, int, int] | None = None

    def walk(node: bytes, seen: frozenset[bytes], so_far: tuple[Announcement, ...]) -> None:
        nonlocal best
        if node == target:
            c = cost(so_far, amount)
            if c is not None and (best is None or c < best):
                best = c
            return
        if len(so_far) == max_hops:
            return
        for ann in anns:
            if ann.sender == node and ann.receiver not in seen:
                walk(ann.receiver, seen | {ann.receiver}, (*so_far, ann))

    walk(source, frozenset({source}) | down, ())
    return best


def check_valid(found: Route, anns: list[Announcement], source: bytes, target: bytes, amount: int,
                max_hops: int) -> tuple[int, int, int]:
    assert found.source == source and found.target == target and found.amount == amount
    assert 1 <= len(found.hops) <= max_hops
    used = []
    for i, hop in enumerate(found.hops):
        assert found.upstream_of(i) == found.hops[:i][::-1]
        (ann,) = [a for a in anns if a.channel_id == hop.channel_id and a.from_a == hop.from_a]
        assert (hop.sender, hop.receiver, hop.policy) == (ann.sender, ann.receiver, ann.policy)
        used.append(ann)
    # Amounts conserve: each hop forwards the next hop's amount plus that hop's fee.
    for up, down in itertools.pairwise(found.hops):
        assert up.amount == down.amount + down.policy.fee(down.amount)
        assert up.expiry == down.expiry + down.policy.expiry_delta_s
    got = cost(tuple(used), amount)
    assert got == (found.total_amount, len(found.hops), found.first_expiry)
    assert found.total_fee == found.total_amount - amount
    return got


@settings(max_examples=150, deadline=None)
@given(edges(max_min=1), ENDS, st.integers(1, 400), st.integers(1, 5), BREAKERS_OPEN)
def test_every_route_is_valid_and_none_is_cheaper(es: list[Edge], ends: Ends, amount: int, max_hops: int,
                                                  breakers_open: set[int]) -> None:
    """With every htlc_min at most the amount, the search is exact (R10): it finds a route iff
    brute force over every simple path does, and one exactly as cheap (fee, hops, expiry), with
    the nodes whose breaker is open avoided (the source is this node: never avoided)."""
    g, anns, source, target = build(es, ends)
    down = frozenset(NODE[NAMES[i]] for i in breakers_open) - {source}
    for node in down:
        g.mark_unavailable(node)
    found = find_route(g, source, target, amount, final_expiry_delta_s=FINAL, now=NOW, max_hops=max_hops)
    best = brute_force(anns, source, target, amount, max_hops, down)
    if best is None:
        assert found is None
    else:
        assert found is not None
        assert check_valid(found, anns, source, target, amount, max_hops) == best


@settings(max_examples=100, deadline=None)
@given(edges(max_min=3_000), ENDS, st.integers(1, 400))
def test_with_any_htlc_min_every_route_found_is_valid(es: list[Edge], ends: Ends, amount: int) -> None:
    """htlc_min above the amount: a route found still obeys every rule and is no cheaper than
    the cheapest (it may miss one, as lnd's search does: R10)."""
    g, anns, source, target = build(es, ends)
    found = find_route(g, source, target, amount, final_expiry_delta_s=FINAL, now=NOW)
    if found is not None:
        best = brute_force(anns, source, target, amount, MAX_HOPS)
        assert best is not None and check_valid(found, anns, source, target, amount, MAX_HOPS) >= best
