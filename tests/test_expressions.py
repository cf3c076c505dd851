"""The safe expression language: parsing, errors, evaluation, vectorised masks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailored import expressions
from tailored.errors import InvalidDataError
from tailored.expressions import (
    KEYWORDS,
    MAX_DEPTH,
    MAX_NUMBER_LENGTH,
    OBJECT_COST,
    PYTHON_COST,
    VECTOR_COST,
    Binary,
    Call,
    Compare,
    Expression,
    ExpressionError,
    ListLiteral,
    Literal,
    Name,
    Node,
    Signature,
    Unary,
    column_kind,
    normalise,
    parse,
    to_text,
)

# ---- parsing --------------------------------------------------------------------------


def test_precedence_follows_the_grammar() -> None:
    tree = parse("a or b and not c == 1 + 2 * -d").root
    assert tree == Binary("or", Name(("a",)), Binary(
        "and", Name(("b",)), Unary("not", Compare(
            "==", Name(("c",)), Binary("+", Literal(1), Binary(
                "*", Literal(2), Unary("-", Name(("d",)))))))))


def test_arithmetic_is_left_associative() -> None:
    assert parse("8 - 4 - 2").evaluate() == 2
    assert parse("8 / 4 / 2").evaluate() == 1.0
    assert parse("(8 - 4) * 2 + 1").evaluate() == 9


def test_literals() -> None:
    assert parse('["a", \'b\', 1.5, 2, true, false, null, []]').evaluate() == (
        "a", "b", 1.5, 2, True, False, None, ())
    assert parse(r'"say \"hi\"\n" + ' + r"'it\'s'").evaluate() == 'say "hi"\nit\'s'
    assert parse("1e3 + .5").evaluate() == 1000.5


def test_dotted_names_and_calls() -> None:
    expression = parse('lower(user.city) == "berlin" and len(item.tags) > 1')
    assert expression.names == {"user.city", "item.tags"}
    assert isinstance(expression.root, Binary)
    assert expression.root.left == Compare("==", Call("lower", (Name(("user", "city")),)),
                                           Literal("berlin"))


@pytest.mark.parametrize(("text", "message", "column"), [
    ("price > 10)", "unexpected token ')'", 11),
    ("price >", "unexpected end of expression", 8),
    ("(price > 1", "expected ')' to close the '(' at column 1", 11),
    ("a < b < c", "comparisons cannot be chained", 7),
    ("'open", "unterminated string", 1),
    ("a $ b", "unexpected character '$'", 3),
    ("a ! b", "write 'not' for negation", 3),
    ("system('rm')", "unknown function 'system'", 1),
    ("__import__('os')", "unknown function '__import__'", 1),
    ("user.lower(x)", "'user.lower' is not a function", 11),
    ("lower(a, b)", "lower() takes at most 1 argument(s), got 2", 10),
    ("lower()", "lower() needs 1 argument(s)", 1),
    ("lower(txt=1)", "lower() has no parameter 'txt'", 7),
    ("min(a=1)", "min() takes no keyword arguments", 5),
    ("user.", "expected a name after '.'", 6),
    ("user.in", "expected a name after '.', found token 'in'", 6),
    ("a not b", "unexpected token 'not'", 3),
    ("1e999", "too large", 1),
    ('"\\q"', "unknown escape", 2),
    ("", "empty expression", 1),
    ("a = 1", "unexpected token '='", 3),
])
def test_errors_name_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    error = caught.value
    assert message in str(error)
    assert error.column == column
    assert f"column {column}" in str(error)
    lines = str(error).splitlines()
    assert lines[-1] == "  " + " " * (column - 1) + "^"  # the caret sits under the spot


def test_an_expression_error_is_invalid_data() -> None:
    assert issubclass(ExpressionError, InvalidDataError)
    assert issubclass(ExpressionError, ValueError)


def test_errors_on_later_lines_give_the_line() -> None:
    with pytest.raises(ExpressionError, match="at line 2, column 5") as caught:
        parse("a == 1 and\nb ==")
    assert caught.value.line == 2
    assert str(caught.value).splitlines()[1] == "  b =="


def test_depth_is_limited() -> None:
    parse("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1))
    with pytest.raises(ExpressionError, match="nests more than"):
        parse("(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5))
    with pytest.raises(ExpressionError, match="nests more than"):
        parse(" + ".join(["1"] * (MAX_DEPTH + 5)))  # left-nested, not recursive parsing
    with pytest.raises(ExpressionError, match="longer than"):
        parse("1" + " " * 20_000)


@pytest.mark.parametrize(("text", "reason", "column"), [
    ("price < " + "1" * 400, "number of 400 characters is too long", 9),
    ("1" * 5_000 + " > price", "number of 5,000 characters is too long", 1),  # past int()'s
    ("price < 0." + "0" * 40 + "1", "number of 43 characters is too long", 9),
    ("price < 1" + "0" * 29 + "e0", "number of 32 characters is too long", 9),
    ("price > 1e400", "number 1e400 is too large", 9),
    ("price > -2.5E+309", "number 2.5E+309 is too large", 10),
])
def test_numbers_too_long_or_too_large_are_refused_where_they_are(text: str, reason: str,
                                                                  column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    error = caught.value
    assert error.reason == reason and error.column == column
    assert error.hint and error.hint in str(error)  # what to write instead


def test_numbers_up_to_the_limits_are_read() -> None:
    assert parse("9" * MAX_NUMBER_LENGTH).evaluate() == int("9" * MAX_NUMBER_LENGTH)
    assert parse("1.7976931348623157e308 > 1").holds()
    assert parse("1e-400 == 0").holds()  # too small for a float is zero, not an error


def test_numbers_beyond_a_float_are_null_not_errors() -> None:
    huge = " * ".join(["999999999999999999999999999999"] * 11)  # about 1e330
    assert parse(huge).evaluate() is None
    assert parse(f"{huge} == null").holds()
    assert parse("1e300 * 1e300 == null").holds()
    frame = pd.DataFrame({"price": [1.0, 2.0]})
    assert parse(f"price < {huge}").mask(frame).tolist() == [False, False]
    assert parse(f"min(price, {huge}) == null").mask(frame).tolist() == [True, True]
    # A caller's integer too large for a float is null as well.
    assert normalise(10**400) is None and normalise(-(10**300)) == -(10**300)
    assert parse("price < user.limit").mask(frame, {"user": {"limit": 10**400}}).tolist() == [
        False, False]


def test_caller_functions_are_checked_at_parse_time() -> None:
    recent = Signature("recent", ("event", "days"))
    expression = parse('recent("view", days=7) > 2', functions={"recent": recent})
    assert expression.holds(functions={"recent": lambda event=None, days=None: 3})
    with pytest.raises(ExpressionError, match="no parameter 'day'"):
        parse("recent(day=7)", functions={"recent": recent})
    with pytest.raises(ExpressionError, match="got 'event' twice"):
        parse('recent("view", event="x")', functions={"recent": recent})
    with pytest.raises(ExpressionError, match="positional argument after a keyword"):
        parse('recent(days=1, "view")', functions={"recent": recent})


# ---- evaluation semantics -------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("user.age < 30", False),
    ("user.age >= 30", False),                 # a missing value compares false either way
    ('user.city != "Berlin"', False),
    ("user.age == null", True),                # ... unless compared with the literal null
    ("user.age != null", False),
    ("null == user.age", True),
    ("not user.age > 30", True),
    ("user.age + 1 == null", True),            # arithmetic with null is null
    ('"x" in user.tags', False),
    ('"x" not in user.tags', False),
])
def test_missing_names_are_null(text: str, expected: bool) -> None:
    assert parse(text).holds({"user": {}}) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('"Drama" in item.categories', True),
    ('"Western" in item.categories', False),
    ('"Western" not in item.categories', True),
    ('"amb" in item.title', True),              # substring of a string
    ("3 in item.categories", False),
    ('item.title in ["Drama", "Rambo"]', True),
    ("item.price in [10, 20.0]", True),         # 20 == 20.0
    ('item.price == "20"', False),              # types differ
    ('item.price != "20"', True),
    ('item.price < "30"', False),               # ordering across types is false
    ('item.title < "Z"', True),
    ("item.price / 0 == null", True),
    ("item.price * 2 > 39.5", True),
    ('"a" + "b" == "ab"', True),
    ('"a" * 2 == null', True),
    ("len(item.categories) == 2", True),
    ('upper(item.title) == "RAMBO"', True),
    ("abs(-3) == 3 and min(3, 1, 2) == 1 and max(1, 4) == 4", True),
    ("true and 1 and \"x\" and [1]", True),
    ("0 or \"\" or [] or null or false", False),
    ("true == 1", False),
])
def test_semantics(text: str, expected: bool) -> None:
    names = {"item": {"categories": ["Drama", "Action"], "title": "Rambo", "price": 20}}
    assert parse(text).holds(names) is expected


def test_names_may_be_dotted_keys_or_nested_mappings() -> None:
    expression = parse('context.device == "mobile" and user.location == "Berlin"')
    assert expression.holds({"context.device": "mobile", "user": {"location": "Berlin"}})
    assert not expression.holds({"context.device": "desktop", "user.location": "Berlin"})


def test_numpy_values_are_accepted() -> None:
    names = {"n": np.int64(3), "x": np.float32(0.5), "tags": np.array(["a", "b"]),
             "nan": float("nan"), "flag": np.bool_(True)}
    assert parse('n == 3 and x < 1 and "b" in tags and nan == null and flag').holds(names)


def test_equal_trees_are_equal_expressions() -> None:
    assert parse("((a + b))  ==  c") == parse("a + b == c")
    assert parse("a + (b + c)") != parse("a + b + c")
    assert str(parse("(a + (b + c)) * -(d)")) == "(a + (b + c)) * -d"


# ---- vectorised masks -----------------------------------------------------------------


@pytest.fixture
def catalog() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ["a", "b", "c", "d"],
        "category": ["shoes", "shoes", "hats", None],
        "price": [80.0, 120.0, 20.0, np.nan],
        "stock": [1, 0, 5, 2],
        "categories": [["Drama", "Action"], ["Drama"], [], ["Comedy"]],
        "sale": [True, False, False, True],
    })


@pytest.mark.parametrize(("text", "expected"), [
    ('category == "shoes" and price < 100', [True, False, False, False]),
    ('item.category == "shoes" and item.price < 100', [True, False, False, False]),
    ("price >= 20", [True, True, True, False]),
    ('category != "hats"', [True, True, False, False]),
    ("price == null", [False, False, False, True]),
    ('"Drama" in categories', [True, True, False, False]),
    ('"Drama" not in categories', [False, False, True, True]),
    ('category in ["hats", "caps"]', [False, False, True, False]),
    ("stock in [0, 2]", [False, True, False, True]),
    ("sale or stock > 4", [True, False, True, True]),
    ("not sale", [False, True, True, False]),
    ("price * stock > 50", [True, False, True, False]),
    ("price < user.budget", [True, False, True, False]),
    ("category == user.favourite", [False, False, True, False]),
    ("true", [True, True, True, True]),
    ("unknown_column == null", [True, True, True, True]),
    ('len(categories) == 1 and lower(category) == "shoes"', [False, True, False, False]),
])
def test_masks(catalog: pd.DataFrame, text: str, expected: list[bool]) -> None:
    mask = parse(text).mask(catalog, {"user": {"budget": 100, "favourite": "hats"}})
    assert mask.dtype == bool and mask.tolist() == expected


def test_mask_on_an_empty_frame(catalog: pd.DataFrame) -> None:
    assert parse("price > 1").mask(catalog.iloc[:0]).shape == (0,)


# What evaluates one value in Python: a mask that calls these once per row is not vectorised.
_PER_VALUE = ("_compare", "_arithmetic", "_call", "_negate", "truthy", "normalise")


def _count_per_value_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = dict.fromkeys(_PER_VALUE, 0)
    for name in _PER_VALUE:
        real = getattr(expressions, name)

        def counted(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(expressions, name, counted)
    return calls


def test_masks_on_a_large_catalog_are_vectorised(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 200_000
    rng = np.random.default_rng(0)
    catalog = pd.DataFrame({"category": rng.choice(["shoes", "hats", "bags"], rows),
                            "price": rng.uniform(1, 300, rows)})
    catalog.loc[rng.choice(rows, 1_000, replace=False), "price"] = np.nan
    expression = parse('category == "shoes" and price < 100 and category in ["shoes", "x"] '
                       "and not price * 2 >= 150")
    with monkeypatch.context() as patched:
        calls = _count_per_value_calls(patched)
        mask = expression.mask(catalog)
        per_value = dict(calls)
    # Numeric comparisons and arithmetic, string equality, `in [...]` and the boolean
    # operators all run as numpy operations: not one value is evaluated in Python.
    assert per_value == dict.fromkeys(_PER_VALUE, 0)
    expected = (catalog["category"] == "shoes") & (catalog["price"] < 75)  # NaN compares false
    np.testing.assert_array_equal(mask, expected.to_numpy())
    # And the same as evaluating each row, on a sample of them.
    for position in rng.choice(rows, 300, replace=False):
        row = catalog.iloc[position].to_dict()
        assert mask[position] == expression.holds(row), row

    # The counting sees a mask that does fall back to Python per row.
    with monkeypatch.context() as patched:
        calls = _count_per_value_calls(patched)
        expression = parse('lower(category) == "shoes"')
        np.testing.assert_array_equal(expression.mask(catalog.iloc[:1_000]),
                                      (catalog["category"].iloc[:1_000] == "shoes").to_numpy())
        assert calls["_call"] == 1_000


# ---- what a mask costs ----------------------------------------------------------------


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {str(column): column_kind(frame[column]) for column in frame.columns}


def test_the_kind_of_a_column_is_how_a_mask_reads_it(catalog: pd.DataFrame) -> None:
    assert _kinds(catalog) == {
        "item_id": "text", "category": "text", "price": "number", "stock": "number",
        "categories": "object", "sale": "bool"}
    assert column_kind(pd.Series([True, None])) == "object"  # bools with nulls
    assert column_kind(pd.Series([], dtype=object)) == "text"


def test_the_cost_charges_python_per_row_far_above_numpy(catalog: pd.DataFrame) -> None:
    kinds = _kinds(catalog)
    vectorised = parse('category == "shoes" and price < 100 and category in ["shoes", "x"] '
                       "and not price * 2 >= 150")
    per_row = vectorised.cost(1, kinds)
    assert 0 < per_row < PYTHON_COST / 2  # numpy only: not one Python call per row
    assert vectorised.cost(100_000, kinds) == pytest.approx(100_000 * per_row)
    # lower() and len() call Python on each row, and so does comparing what they give.
    assert parse("len(lower(item_id)) > 0").cost(1, kinds) == pytest.approx(
        OBJECT_COST + 3 * PYTHON_COST + VECTOR_COST)
    repeated = parse(" and ".join(["len(lower(item_id)) > 0"] * 64))
    assert repeated.cost(10_000, kinds) > 64 * 3 * PYTHON_COST * 10_000
    # Reading a list column converts each row in Python; testing membership in it too.
    assert parse('"Drama" in categories').cost(1, kinds) == pytest.approx(
        2 * PYTHON_COST + VECTOR_COST)
    assert parse("price < context.budget").cost(1, kinds) >= PYTHON_COST  # may not be a number
    assert parse('context.device == "mobile"').cost(1_000_000, kinds) == 0
    # Without kinds, any name may be a column that needs Python per row.
    assert vectorised.cost(1) > PYTHON_COST


def _count_python_rows(patched: pytest.MonkeyPatch) -> list[int]:
    """Rows a mask evaluates in Python, summed over its operations."""
    rows = [0]
    rowwise, truth, from_values = (expressions._Frame.rowwise, expressions._truth,
                                   expressions._from_values)

    def counted_rowwise(self: Any, function: Any, *operands: Any) -> Any:
        if any(isinstance(operand, expressions._Column) for operand in operands):
            rows[0] += self.rows
        return rowwise(self, function, *operands)

    def counted_truth(operand: Any, count: int) -> Any:
        if isinstance(operand, expressions._Column) and operand.kind not in ("bool", "number"):
            rows[0] += count
        return truth(operand, count)

    def counted_from_values(values: list[Any], force_object: bool = False) -> Any:
        if force_object:  # a column read value by value
            rows[0] += len(values)
        return from_values(values, force_object)

    patched.setattr(expressions._Frame, "rowwise", counted_rowwise)
    patched.setattr(expressions, "_truth", counted_truth)
    patched.setattr(expressions, "_from_values", counted_from_values)
    return rows


# ---- properties -----------------------------------------------------------------------

_TOKENS = st.sampled_from(
    ["a", "user.age", "item.tags", "1", "2.5", '"x"', "'y'", "true", "null", "and", "or",
     "not", "in", "==", "!=", "<", ">=", "+", "-", "*", "/", "(", ")", "[", "]", ",", ".",
     "lower", "len", "min", "=", " ", "\n", "\\", '"', "!", "1e999", "9" * 4_400])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_TOKENS, max_size=25).map("".join),
                 st.lists(_TOKENS, max_size=25).map(" ".join)))
def test_parse_raises_only_expression_errors(text: str) -> None:
    try:
        expression = parse(text)
    except ExpressionError as error:
        assert error.column >= 1 and error.line >= 1
        return
    assert isinstance(expression, Expression)
    expression.evaluate({"a": 1, "user": {"age": 30}, "item": {"tags": ["x"]}})


_IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS)
_LITERALS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=0, max_value=10**20),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False), st.text(max_size=8),
).map(Literal)
_NAMES = st.lists(_IDENTIFIER, min_size=1, max_size=3).map(lambda path: Name(tuple(path)))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.lists(children, max_size=3).map(lambda items: ListLiteral(tuple(items))),
        st.tuples(st.sampled_from(["not", "-"]), children).map(lambda t: Unary(*t)),
        st.tuples(st.sampled_from(["+", "-", "*", "/", "and", "or"]), children, children)
        .map(lambda t: Binary(*t)),
        st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
                  children, children).map(lambda t: Compare(*t)),
        children.map(lambda c: Call("lower", (c,))),
        st.lists(children, min_size=1, max_size=3).map(lambda a: Call("max", tuple(a))),
        st.tuples(children, children).map(
            lambda t: Call("recent", (t[0],), (("days", t[1]),))),
    )


_TREES = st.recursive(st.one_of(_LITERALS, _NAMES), _extend, max_leaves=20)
_RECENT = {"recent": Signature("recent", ("event", "days"))}


@settings(max_examples=300, deadline=None)
@given(_TREES)
def test_printing_and_parsing_again_gives_the_same_tree(tree: Node) -> None:
    text = to_text(tree)
    again = parse(text, functions=_RECENT)
    assert again.root == tree, text
    assert str(again) == text


_FRAME_NAMES = st.sampled_from(["price", "item.price", "category", "item.tags", "stock",
                                "user.budget", "missing"]).map(
    lambda dotted: Name(tuple(dotted.split("."))))
_FRAME_LITERALS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                            st.sampled_from([0.5, 2.0]),
                            st.sampled_from(["a", "b", "", "A"])).map(Literal)


def _frame_extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.lists(children, max_size=3).map(lambda items: ListLiteral(tuple(items))),
        st.tuples(st.sampled_from(["not", "-"]), children).map(lambda t: Unary(*t)),
        st.tuples(st.sampled_from(["+", "-", "*", "/", "and", "or"]), children, children)
        .map(lambda t: Binary(*t)),
        st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
                  children, children).map(lambda t: Compare(*t)),
        children.map(lambda c: Call("lower", (c,))),
        children.map(lambda c: Call("len", (c,))),
    )


_FRAME_TREES = st.recursive(st.one_of(_FRAME_LITERALS, _FRAME_NAMES), _frame_extend,
                            max_leaves=8)
_ROWS = st.lists(st.fixed_dictionaries({
    "price": st.one_of(st.none(), st.sampled_from([0.0, 0.5, 2.0, -1.0])),
    "category": st.one_of(st.none(), st.sampled_from(["a", "b", "A", ""])),
    "tags": st.lists(st.sampled_from(["a", "b"]), max_size=2),
    "stock": st.integers(0, 2),
}), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FRAME_TREES, _ROWS)
def test_a_mask_agrees_with_evaluating_each_row(tree: Node, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows)
    expression = parse(to_text(tree))
    extra = {"user": {"budget": 1}}
    mask = expression.mask(frame, extra)
    for position, row in enumerate(rows):
        price = row["price"]
        names = {**row, "price": math.nan if price is None else price, **extra,
                 "item": {**row}}
        assert mask[position] == expression.holds(names), (str(expression), row)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FRAME_TREES, _ROWS)
def test_the_cost_is_never_below_the_python_work_of_a_mask(tree: Node,
                                                            rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows)
    expression = parse(to_text(tree))
    with pytest.MonkeyPatch.context() as patched:
        python_rows = _count_python_rows(patched)
        expression.mask(frame, {"user": {"budget": 1}})
    kinds = _kinds(frame)
    spent = python_rows[0] * PYTHON_COST
    assert expression.cost(len(frame), kinds) >= spent, str(expression)
    assert expression.cost(len(frame)) >= spent, str(expression)
