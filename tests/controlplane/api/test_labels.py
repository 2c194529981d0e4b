"""Label selectors, with cases from Kubernetes' labels/selector_test.go."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.labels import (
    Operator,
    Requirement,
    Selector,
    SelectorError,
    parse_selector,
    validate_label_key,
    validate_label_value,
)
from controlplane.api.meta import LabelSelector, LabelSelectorRequirement

NAME_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# -- parsing ----------------------------------------------------------------------------

# (input, canonical string) -- TestSelectorParse, TestSetSelectorParser
GOOD = [
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("", ""),
    ("   ", ""),
    ("x!=a,y=b", "x!=a,y=b"),
    ("x=", "x="),
    ("x= ", "x="),
    ("x=,z= ", "x=,z="),
    ("!x", "!x"),
    ("x>1", "x>1"),
    ("x>1,z<5", "x>1,z<5"),
    ("x==a", "x=a"),
    ("x=a,a=x", "a=x,x=a"),
    ("\rx", "x"),
    ("this-is-a-dns.domain.com/key-with-dash", "this-is-a-dns.domain.com/key-with-dash"),
    (
        "this-is-another-dns.domain.com/key-with-dash in (so,what)",
        "this-is-another-dns.domain.com/key-with-dash in (so,what)",
    ),
    (
        "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
        "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
    ),
    ("foo  in\t (abc)", "foo in (abc)"),
    ("x notin\n (abc)", "x notin (abc)"),
    ("x  notin\t\t\t(abc,def)", "x notin (abc,def)"),
    ("x in (def,abc,def)", "x in (abc,def)"),
    ("x in (abc,)", "x in (,abc)"),
    ("x in ()", "x in ()"),
    ("x notin ( )", "x notin ()"),
    ("x notin (, a)", "x notin (,a)"),
    ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
    ("x notin (abc,def),bar,z in (),w", "bar,w,x notin (abc,def),z in ()"),
    ("x,y in (a)", "x,y in (a)"),
    ("x,y", "x,y"),
    ("a ", "a"),
    ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
    ("notin=in", "notin=in"),
    ("in in (in)", "in in (in)"),
    ("z,z!=a", "z!=a,z"),  # by key, then operator (=, !=, in, notin, exists, !, >, <)
    ("a=b,c!=d,e in (f,g),!h,i", "a=b,c!=d,e in (f,g),!h,i"),
]


@pytest.mark.parametrize(("text", "canonical"), GOOD)
def test_parse_and_print(text: str, canonical: str) -> None:
    selector = parse_selector(text)
    assert str(selector) == canonical
    assert parse_selector(canonical) == selector


def test_parse_builds_sorted_requirements() -> None:
    selector = parse_selector("x notin (abc,,def),bar,z in (),w")
    assert selector.requirements == (
        Requirement("bar", Operator.EXISTS),
        Requirement("w", Operator.EXISTS),
        Requirement("x", Operator.NOT_IN, ("", "abc", "def")),
        Requirement("z", Operator.IN, ("",)),
    )
    assert parse_selector("") is Selector.everything()
    assert parse_selector("") == Selector()


def _bad(text: str, detail: str) -> tuple[str, str]:
    return text, f'invalid label selector "{text}": {detail}'


BAD = [
    _bad("x=a||y=b", f'invalid value "a||y" for key "x": {VALUE_MESSAGE}'),
    _bad("x==a==b", 'expected "," or end of string, found "=="'),
    _bad("!x=a", 'expected "," or end of string, found "="'),
    _bad("x<a", 'value "a" for "<" must be an integer'),
    _bad("x>1.5", 'value "1.5" for ">" must be an integer'),
    _bad("x,,y", 'expected a requirement after ",", found ","'),
    _bad(",x,y", 'expected a key, found ","'),
    _bad(
        "x nott in (y)", 'expected an operator (=, ==, !=, in, notin, >, <) after "x", found "nott"'
    ),
    _bad("a in (xyz),", 'expected a requirement after ",", found end of string'),
    _bad("a in (xyz)b notin ()", 'expected "," or end of string, found "b"'),
    _bad("a in (xyz abc)", 'expected "," or ")" in the list after "in", found "abc"'),
    _bad("a notin(", 'expected a value, "," or ")" in the list after "notin", found end of string'),
    _bad("a (", 'expected an operator (=, ==, !=, in, notin, >, <) after "a", found "("'),
    _bad("(", 'expected a key, found "("'),
    _bad("a in b", 'expected "(" after "in", found "b"'),
    _bad("a in", 'expected "(" after "in", found end of string'),
    _bad("a in (b,=)", 'expected a value, "," or ")" in the list after "in", found "="'),
    _bad("!", 'expected a key after "!", found end of string'),
    _bad("!!a", 'expected a key after "!", found "!"'),
    _bad("a=b=c", 'expected "," or end of string, found "="'),
    _bad("a=(b)", 'expected a value after "=", found "("'),
    _bad("a!b", 'expected an operator (=, ==, !=, in, notin, >, <) after "a", found "!"'),
    _bad("-a=b", f'invalid key "-a": name part {NAME_MESSAGE}'),
    _bad("a=-b", f'invalid value "-b" for key "a": {VALUE_MESSAGE}'),
    _bad("a in (b,-c)", f'invalid value "-c" for key "a": {VALUE_MESSAGE}'),
    _bad(
        "Example.com/a",
        'invalid key "Example.com/a": prefix part a lowercase RFC 1123 '
        "subdomain must consist of lower case alphanumeric characters, '-' or '.', "
        "and must start and end with an alphanumeric character",
    ),
    _bad("a" * 64, f'invalid key "{"a" * 64}": name part must be no more than 63 characters'),
    _bad(
        "a=" + "b" * 64,
        f'invalid value "{"b" * 64}" for key "a": must be no more than 63 characters',
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=exactly(message)) as info:
        parse_selector(text)
    assert info.value.field == ""
    assert isinstance(info.value, ValueError)


# -- matching ---------------------------------------------------------------------------

MATCHES = [
    ("", {"x": "y"}, True),
    ("", {}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x>1", {"x": "2"}, True),
    ("x<1", {"x": "0"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False),
    ("x<1", {"x": "2"}, False),
    ("foo=bar", {"foo": "bar", "baz": "blah"}, True),
    ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=blah", {"foo": "bar", "baz": "blah"}, False),
    ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
    # TestRequirementSelectorMatching
    ("x in (foo),y notin (alpha)", {"x": "foo", "y": "baz"}, True),
    ("x in (foo),y in (alpha)", {"x": "foo", "y": "baz"}, False),
    ("x notin (),y", {"y": ""}, True),
    ("!x,y", {"y": ""}, True),
    ("x notin (),!y", {"y": ""}, False),
    ("x in ()", {"y": "baz"}, False),
    ("x in ()", {"x": ""}, True),
    ("x=", {"x": ""}, True),
    ("x=", {}, False),
    ("x!=", {}, True),
    ("z>1", {"z": "2"}, True),
    ("z>1", {"z": "v2"}, False),
    ("z>1", {}, False),
    ("z<1", {"z": "-5"}, True),
    ("z>1", {"z": "1_0"}, False),  # Go's ParseInt, not Python's int()
    ("z>1", {"z": "99999999999999999999"}, False),  # out of int64 range
    ("z notin (a)", {}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHES)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


def test_everything_and_nothing() -> None:
    everything, nothing = Selector.everything(), Selector.nothing()
    assert everything.matches({"x": "y"}) and everything.matches({})
    assert everything.empty
    assert not nothing.matches({}) and not nothing.matches({"x": "y"})
    assert not nothing.empty
    assert str(nothing) == ""  # like Kubernetes; it does not round-trip
    assert nothing != everything


def test_requires_exact_match() -> None:
    selector = parse_selector("a=b,c in (d),e in (f,g),h!=i,j")
    assert selector.requires_exact_match("a") == "b"
    assert selector.requires_exact_match("c") == "d"
    assert selector.requires_exact_match("e") is None
    assert selector.requires_exact_match("h") is None
    assert selector.requires_exact_match("j") is None
    assert selector.requires_exact_match("zz") is None
    assert parse_selector("a,a=x").requires_exact_match("a") == "x"
    assert parse_selector("a=").requires_exact_match("a") == ""


# -- structured selectors ---------------------------------------------------------------


def expr(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=values)


def test_from_label_selector() -> None:
    assert Selector.from_label_selector(None) is Selector.nothing()
    assert Selector.from_label_selector(LabelSelector()) is Selector.everything()
    selector = Selector.from_label_selector(
        LabelSelector(
            match_labels={"app": "web"},
            match_expressions=[
                expr("tier", "In", "front", "back"),
                expr("env", "NotIn", "dev"),
                expr("canary", "DoesNotExist"),
                expr("team", "Exists"),
            ],
        )
    )
    assert str(selector) == "app=web,!canary,env notin (dev),team,tier in (back,front)"
    assert selector == parse_selector(str(selector))
    assert selector.matches({"app": "web", "tier": "front", "team": "a"})
    assert not selector.matches({"app": "web", "tier": "front", "team": "a", "canary": "1"})
    assert not selector.matches({"app": "web", "tier": "front", "team": "a", "env": "dev"})
    assert not selector.matches({"app": "web", "tier": "middle", "team": "a"})
    assert selector.requires_exact_match("app") == "web"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            LabelSelector(match_expressions=[expr("a", "Equals", "b")]),
            'matchExpressions[0].operator: "Equals" is not a valid label selector operator'
            " (In, NotIn, Exists, DoesNotExist)",
        ),
        (
            LabelSelector(match_expressions=[expr("a", "Exists"), expr("b", "in", "c")]),
            'matchExpressions[1].operator: "in" is not a valid label selector operator'
            " (In, NotIn, Exists, DoesNotExist)",
        ),
        (
            LabelSelector(match_expressions=[expr("a", "In")]),
            "matchExpressions[0].values: must be specified when operator is In or NotIn",
        ),
        (
            LabelSelector(match_expressions=[expr("a", "NotIn")]),
            "matchExpressions[0].values: must be specified when operator is In or NotIn",
        ),
        (
            LabelSelector(match_expressions=[expr("a", "Exists", "b")]),
            "matchExpressions[0].values: may not be specified when operator is Exists or"
            " DoesNotExist",
        ),
        (
            LabelSelector(match_expressions=[expr("a", "DoesNotExist", "b")]),
            "matchExpressions[0].values: may not be specified when operator is Exists or"
            " DoesNotExist",
        ),
        (
            LabelSelector(match_expressions=[expr("-a", "Exists")]),
            f'matchExpressions[0].key: invalid key "-a": name part {NAME_MESSAGE}',
        ),
        (
            LabelSelector(match_expressions=[expr("a", "In", "ok", "not ok")]),
            f'matchExpressions[0].values[1]: invalid value "not ok": {VALUE_MESSAGE}',
        ),
        (
            LabelSelector(match_labels={"-a": "b"}),
            f'matchLabels[-a]: invalid key "-a": name part {NAME_MESSAGE}',
        ),
        (
            LabelSelector(match_labels={"a": "b c"}),
            f'matchLabels[a]: invalid value "b c": {VALUE_MESSAGE}',
        ),
    ],
)
def test_from_label_selector_rejects(selector: LabelSelector, message: str) -> None:
    with pytest.raises(SelectorError, match=exactly(message)) as info:
        Selector.from_label_selector(selector)
    assert message.startswith(info.value.field + ": ")
    assert message == f"{info.value.field}: {info.value.detail}"


def test_from_map() -> None:
    assert Selector.from_map({}) is Selector.everything()
    selector = Selector.from_map({"foo": "bar", "baz": "blah"})
    assert str(selector) == "baz=blah,foo=bar"
    assert selector.matches({"foo": "bar", "baz": "blah", "x": "y"})
    assert not selector.matches({"foo": "bar"})
    assert selector.requires_exact_match("foo") == "bar"
    with pytest.raises(SelectorError, match=exactly(f'[a]: invalid value "=b": {VALUE_MESSAGE}')):
        Selector.from_map({"a": "=b"})


def test_requirement_create() -> None:
    assert Requirement.create("x", "in", ["b", "a", "b"]).values == ("a", "b")
    assert Requirement.create("x", "==", ["a"]) == Requirement("x", Operator.EQUALS, ("a",))
    assert Requirement.create("1foo", Operator.IN, ["bar"]).key == "1foo"
    assert str(Requirement.create("y", ">", ["1"])) == "y>1"
    cases = [
        (("x", "in", []), "values: values set can't be empty for 'in'"),
        (("x", "notin", []), "values: values set can't be empty for 'notin'"),
        (("x", "=", ["a", "b"]), "values: exactly one value is required for '='"),
        (("x", "exists", ["a"]), "values: values set must be empty for exists and does not exist"),
        (("foo", ">", ["bar"]), "values[0]: value \"bar\" for '>' must be an integer"),
        (("x", "<", ["1", "2"]), "values: exactly one value is required for '<'"),
        (
            ("a" * 254, "exists", []),
            'key: invalid key "' + "a" * 254 + '": name part must be no more than 63 characters',
        ),
        (("x", "~", []), 'operator: "~" is not a valid label selector operator'),
    ]
    for (key, op, values), message in cases:
        with pytest.raises(SelectorError, match=exactly(f"spec.{message}")):
            Requirement.create(key, op, values, field="spec")


# -- key / value validation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("a", None),
        ("a" * 63, None),
        ("app.kubernetes.io/name", None),
        ("k8s.io/A_b-c.D", None),
        ("1234", None),
        ("a" * 64, "name part must be no more than 63 characters"),
        ("", "name part must be non-empty"),
        ("-a", f"name part {NAME_MESSAGE}"),
        ("a_", f"name part {NAME_MESSAGE}"),
        ("/a", "prefix part must be non-empty"),
        ("a/", "name part must be non-empty"),
        (
            "a/b/c",
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character, with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "a_b/c",
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character",
        ),
        (
            "x" * 254 + "/" + "y" * 64,
            "prefix part must be no more than 253 characters; "
            "name part must be no more than 63 characters",
        ),
        ("a\n", f"name part {NAME_MESSAGE}"),
        ("é", f"name part {NAME_MESSAGE}"),
    ],
)
def test_validate_label_key(key: str, message: str | None) -> None:
    assert validate_label_key(key) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", None),
        ("a", None),
        ("MyValue", None),
        ("my_value", None),
        ("12345", None),
        ("a" * 63, None),
        ("a" * 64, "must be no more than 63 characters"),
        ("-a", VALUE_MESSAGE),
        ("a b", VALUE_MESSAGE),
        ("a/b", VALUE_MESSAGE),
        ("-" * 64, f"must be no more than 63 characters; {VALUE_MESSAGE}"),
    ],
)
def test_validate_label_value(value: str, message: str | None) -> None:
    assert validate_label_value(value) == message


# -- properties -------------------------------------------------------------------------

KEYS = ["a", "b", "in", "notin", "app", "x.y", "A_1", "example.com/a", "k8s.io/in"]
VALUES = ["", "a", "b", "in", "notin", "0", "1", "7", "12", "1_0", "v2", "X.y-z"]
NUMBERS = ["0", "1", "5", "12", "+3", "-4"]

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    op = draw(st.sampled_from(list(Operator)))
    key = draw(keys)
    if op in (Operator.IN, Operator.NOT_IN):
        chosen: list[str] = draw(st.lists(values, min_size=1, max_size=4))
    elif op in (Operator.EQUALS, Operator.NOT_EQUALS):
        chosen = [draw(values)]
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        chosen = [draw(st.sampled_from(["0", "1", "5", "12"]))]
    else:
        chosen = []
    return Requirement.create(key, op, chosen)


selectors = st.builds(Selector, st.lists(requirements(), max_size=5))
label_sets = st.dictionaries(keys, values, max_size=len(KEYS))


@given(selectors)
def test_string_form_round_trips(selector: Selector) -> None:
    text = str(selector)
    assert parse_selector(text) == selector
    assert str(parse_selector(text)) == text


def _naive_matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    for r in selector.requirements:
        present = r.key in labels
        value = labels.get(r.key, "")
        if r.operator in (Operator.EQUALS, Operator.IN):
            ok = present and value in r.values
        elif r.operator in (Operator.NOT_EQUALS, Operator.NOT_IN):
            ok = not present or value not in r.values
        elif r.operator is Operator.EXISTS:
            ok = present
        elif r.operator is Operator.DOES_NOT_EXIST:
            ok = not present
        else:
            if not (present and value.isascii() and value.isdigit()):
                ok = False
            elif r.operator is Operator.GREATER_THAN:
                ok = int(value) > int(r.values[0])
            else:
                ok = int(value) < int(r.values[0])
        if not ok:
            return False
    return True


@given(selectors, label_sets)
def test_matches_agrees_with_naive_reference(selector: Selector, labels: dict[str, str]) -> None:
    assert selector.matches(labels) is _naive_matches(selector, labels)
    for requirement in selector.requirements:
        alone = Selector([requirement])
        assert requirement.matches(labels) is alone.matches(labels)


@given(selectors, label_sets)
def test_requires_exact_match_is_implied(selector: Selector, labels: dict[str, str]) -> None:
    if selector.matches(labels):
        for key in KEYS:
            pinned = selector.requires_exact_match(key)
            if pinned is not None:
                assert labels[key] == pinned
