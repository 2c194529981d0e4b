"""Name lookups on the simulated network: resolv.conf search lists, ndots, absolute
names, bad syntax, the resolver hook, and names from inside a sandbox."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from runtime_world import World

from runtime.cri import ContainerConfig
from runtime.network import (
    NameNotFound,
    Network,
    check_name,
    search_candidates,
)
from runtime.programs import ProgramContext

SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")


class FakeDNS:
    """A resolver from a table, recording every query."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.queries: list[str] = []

    def __call__(self, fqdn: str) -> list[str]:
        self.queries.append(fqdn)
        try:
            return self.records[fqdn]
        except KeyError:
            raise NameNotFound(f"name not found: {fqdn!r}") from None


def network_with(records: dict[str, list[str]]) -> tuple[Network, FakeDNS]:
    net = Network(random.Random(0))
    dns = FakeDNS(records)
    net.set_resolver(dns)
    return net, dns


# ----- the search list and ndots -----


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "web",
            [
                "web.default.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web",
            ],
        ),
        (
            "web.prod",
            [
                "web.prod.default.svc.cluster.local",
                "web.prod.svc.cluster.local",
                "web.prod.cluster.local",
                "web.prod",
            ],
        ),
        # four dots: still fewer than ndots:5, so the search list comes first
        (
            "web.prod.svc.cluster.local",
            [f"web.prod.svc.cluster.local.{d}" for d in SEARCH] + ["web.prod.svc.cluster.local"],
        ),
        # five dots: as it is first, then the search list
        ("a.b.c.d.e.f", ["a.b.c.d.e.f", *(f"a.b.c.d.e.f.{d}" for d in SEARCH)]),
        # a trailing dot: absolute, tried alone
        ("web.prod.svc.cluster.local.", ["web.prod.svc.cluster.local"]),
        ("WEB.Prod.", ["web.prod"]),  # case-insensitive
    ],
)
def test_search_candidates_follow_resolv_conf(name: str, expected: list[str]) -> None:
    assert search_candidates(name, SEARCH) == expected


def test_search_candidates_skip_bad_domains_and_overlong_names() -> None:
    long_label = "a" * 63
    long_domain = ".".join([long_label] * 3) + ".abcd"  # 196 characters
    name = "b" * 60  # with the long domain: 257 characters, over 253
    assert search_candidates(name, ["bad..domain", long_domain, "ok.local"]) == [
        f"{name}.ok.local",
        name,
    ]
    assert search_candidates("web", ()) == ["web"]
    assert search_candidates("web", ["Cluster.Local."]) == ["web.cluster.local", "web"]


def test_short_names_resolve_through_the_search_list_in_order() -> None:
    net, dns = network_with(
        {
            "web.default.svc.cluster.local": ["10.96.0.10"],
            "web.prod.svc.cluster.local": ["10.96.0.20"],
        }
    )
    assert net.lookup("web", search=SEARCH) == ["10.96.0.10"]
    assert dns.queries == ["web.default.svc.cluster.local"]  # the first hit wins
    dns.queries.clear()
    assert net.lookup("web.prod", search=SEARCH) == ["10.96.0.20"]
    assert dns.queries == [
        "web.prod.default.svc.cluster.local",
        "web.prod.svc.cluster.local",
    ]
    dns.queries.clear()
    assert net.lookup("web.prod.svc.cluster.local", search=SEARCH) == ["10.96.0.20"]
    assert dns.queries[-1] == "web.prod.svc.cluster.local"
    assert len(dns.queries) == 4  # three search domains first: fewer than 5 dots


def test_names_with_five_dots_are_tried_as_they_are_first() -> None:
    net, dns = network_with({"a.b.c.d.e.f": ["10.0.0.1"], "a.b.c.d.e.f.cluster.local": ["9.9.9.9"]})
    assert net.lookup("a.b.c.d.e.f", search=SEARCH) == ["10.0.0.1"]
    assert dns.queries == ["a.b.c.d.e.f"]


def test_absolute_names_skip_the_search_list() -> None:
    net, dns = network_with({"web.default.svc.cluster.local": ["10.96.0.10"]})
    with pytest.raises(NameNotFound, match=r"^name not found: 'web\.'$"):
        net.lookup("web.", search=SEARCH)
    assert dns.queries == ["web"]
    assert net.lookup("Web.Default.SVC.cluster.local.", search=SEARCH) == ["10.96.0.10"]


def test_an_empty_answer_falls_through_to_the_next_candidate() -> None:
    net, _ = network_with(
        {"web.default.svc.cluster.local": [], "web.svc.cluster.local": ["1.2.3.4"]}
    )
    assert net.lookup("web", search=SEARCH) == ["1.2.3.4"]
    net2, _ = network_with({"web.default.svc.cluster.local": []})
    with pytest.raises(NameNotFound, match=r"^name not found: 'web'$"):
        net2.lookup("web", search=SEARCH)


def test_ip_literals_need_no_resolver() -> None:
    net = Network(random.Random(0))
    assert net.lookup("10.244.0.7") == ["10.244.0.7"]
    assert net.lookup("10.96.0.1", search=SEARCH) == ["10.96.0.1"]
    with pytest.raises(NameNotFound, match=r"^name not found: 'web' \(no resolver set\)$"):
        net.lookup("web", search=SEARCH)


def test_set_resolver_none_removes_it() -> None:
    net, _ = network_with({"web": ["10.0.0.1"]})
    assert net.lookup("web") == ["10.0.0.1"]
    net.set_resolver(None)
    with pytest.raises(NameNotFound, match=r"no resolver set"):
        net.lookup("web")


def test_errors_other_than_name_not_found_propagate() -> None:
    net = Network(random.Random(0))

    def broken(fqdn: str) -> list[str]:
        raise KeyError(fqdn)

    net.set_resolver(broken)
    with pytest.raises(KeyError):
        net.lookup("web")


# ----- bad syntax: a typed error, never a crash, and no query sent -----


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", r"^invalid name '': empty$"),
        (".", r"^invalid name '\.': empty$"),
        ("web..prod", r"^invalid name 'web\.\.prod': empty label$"),
        (".web", r"^invalid name '\.web': empty label$"),
        ("web..", r"^invalid name 'web\.\.': empty label$"),
        (
            "a" * 64 + ".local",
            r"^invalid name 'a{64}\.local': label 'a{64}' longer than 63 characters$",
        ),
        (
            ".".join(["a" * 63] * 4) + ".b",
            r"^invalid name '.*': longer than 253 characters$",
        ),
        (
            "web_1",
            r"^invalid name 'web_1': label 'web_1' must be letters, digits and '-', "
            r"starting and ending with a letter or digit$",
        ),
        ("-web", r"^invalid name '-web': label '-web' must be"),
        ("web-", r"^invalid name 'web-': label 'web-' must be"),
        ("we b", r"^invalid name 'we b': label 'we b' must be"),
        ("wéb", r"^invalid name 'wéb': label 'wéb' must be"),
        ("web/80", r"^invalid name 'web/80': label 'web/80' must be"),
    ],
)
def test_bad_names_are_name_not_found(name: str, message: str) -> None:
    net, dns = network_with({})
    with pytest.raises(NameNotFound, match=message):
        net.lookup(name, search=SEARCH)
    assert dns.queries == []


def test_check_name_accepts_host_names() -> None:
    assert check_name("Web-1.Prod.") == "web-1.prod"
    assert check_name("0abc") == "0abc"
    assert check_name(".".join(["a" * 63] * 3) + "." + "b" * 61) is not None  # 253
    with pytest.raises(NameNotFound, match=r"^invalid name 1: not a string$"):
        check_name(1)  # type: ignore[arg-type]
    net = Network(random.Random(0))
    with pytest.raises(NameNotFound, match=r"^invalid name b'abcd': not a string$"):
        net.lookup(b"abcd")  # type: ignore[arg-type]  # not taken for a packed address


# ----- one address out of several -----


def test_resolve_one_picks_with_the_seeded_rng() -> None:
    pods = ["10.244.0.2", "10.244.0.3", "10.244.1.2"]

    def picks(seed: int) -> list[str]:
        net = Network(random.Random(seed))
        net.set_resolver(FakeDNS({"db.default.svc.cluster.local": pods}))
        return [net.resolve_one("db", search=SEARCH) for _ in range(300)]

    first = picks(1)
    assert first == picks(1)  # same seed, same picks
    assert first != picks(2)
    assert set(first) == set(pods)
    assert all(first.count(ip) > 70 for ip in pods)


def test_resolve_one_with_one_answer_leaves_the_rng_alone() -> None:
    rng = random.Random(5)
    net = Network(rng)
    net.set_resolver(FakeDNS({"web": ["10.0.0.1"]}))
    before = rng.getstate()
    assert net.resolve_one("web") == "10.0.0.1"
    assert net.resolve_one("10.0.0.9") == "10.0.0.9"
    assert rng.getstate() == before


# ----- from inside a sandbox -----


async def test_sandboxes_keep_their_search_list(world: World) -> None:
    box = await world.a.create_sandbox("pod", {}, dns_search=SEARCH)
    assert box.dns_search == SEARCH
    assert world.a.list_sandboxes()[0].dns_search == SEARCH
    plain = await world.a.create_sandbox("other", {})
    assert plain.dns_search == ()


async def test_programs_request_services_by_name(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def client(ctx: ProgramContext) -> int:
        ctx.log(" ".join(ctx.lookup("web")))
        ctx.log((await ctx.request("web", 80, b"ping")).decode())
        ctx.log((await ctx.request(ctx.env["SERVER"], 80, b"ip")).decode())  # IPs still work
        try:
            await ctx.request("nope", 80, b"x")
        except NameNotFound as exc:
            ctx.log(f"error: {exc}")
        try:
            await ctx.request("bad..name", 80, b"x")
        except NameNotFound as exc:
            ctx.log(f"error: {exc}")
        return 0

    world.registry.add("client", program=client)
    await world.start(world.a, "nginx", ports=(80,), sandbox="web-0")
    server_ip = world.a.list_sandboxes()[0].ip
    dns = FakeDNS({"web.default.svc.cluster.local": [server_ip]})
    world.network.set_resolver(dns)

    await world.b.pull_image("client")
    box = await world.b.create_sandbox("client-0", {}, dns_search=SEARCH)
    cid = await world.b.create_container(
        box.id, ContainerConfig(name="main", image="client", env={"SERVER": server_ip})
    )
    exits = world.b.exits()
    await world.b.start_container(cid)
    event = await exits.receive()
    assert (event.container_id, event.exit_code) == (cid, 0)
    assert world.b.logs(cid) == [
        server_ip,
        "web-0/main",
        "web-0/main",
        "error: name not found: 'nope'",
        "error: invalid name 'bad..name': empty label",
    ]
    assert dns.queries[:2] == ["web.default.svc.cluster.local"] * 2
    assert dns.queries[2:] == [f"nope.{d}" for d in SEARCH] + ["nope"]


async def test_without_a_search_list_short_names_do_not_resolve(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def client(ctx: ProgramContext) -> int:
        try:
            await ctx.request("web", 80, b"ping")
        except NameNotFound:
            return 3
        return 0

    world.registry.add("client", program=client)
    world.network.set_resolver(FakeDNS({"web.default.svc.cluster.local": ["10.244.0.2"]}))
    exits = world.b.exits()
    await world.start(world.b, "client")  # a sandbox made without dns_search
    event = await exits.receive()
    assert event.exit_code == 3
