"""Property-based tests of the manifest schema (hypothesis): valid entries pass and round-trip,
every kind of bad field is caught and named, arbitrary JSON never crashes the reader, and the
selection does not depend on manifest order."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import registry
from helpers.registry import ManifestError
from helpers.selection import Constraints, select_variant

SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])  # no .hypothesis/ folder

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
positive_ints = st.integers(min_value=1, max_value=2**63 - 1)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
latencies = st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False).filter(lambda x: x > 0)
dtypes = st.sampled_from(["float32", "float16", "int8", "uint8", "int16", "int32", "int64"])
rel_paths = st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True).filter(lambda p: p not in ("..", ".")),
                     min_size=1, max_size=3).map("/".join)


@st.composite
def valid_variants(draw, name=None):
    return {
        "name": name or draw(names),
        "technique": draw(st.text(min_size=1, max_size=12)),
        "path": draw(rel_paths),
        "size_bytes": draw(positive_ints),
        "gzip_bytes": draw(positive_ints),
        "params": draw(st.none() | st.integers(min_value=0, max_value=10**12)),
        "sparsity": draw(st.none() | fractions),
        "accuracy": draw(fractions),
        "latency_ms": draw(st.dictionaries(st.integers(1, 64).map(str), latencies, min_size=1, max_size=4)),
        "input": {"shape": draw(st.lists(st.integers(1, 4096), min_size=1, max_size=4)), "dtype": draw(dtypes),
                  "scale": draw(st.floats(0, 10, allow_nan=False)), "zero_point": draw(st.integers(-128, 255))},
        "sha256": draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
        **draw(st.fixed_dictionaries({}, optional={"peak_memory_bytes": st.integers(0, 2**40), "notes": st.text(max_size=20)})),
    }


@SETTINGS
@given(valid_variants())
def test_valid_variants_pass_and_round_trip_as_strict_json(entry):
    assert registry.variant_problem(entry) is None
    doc = {"schema_version": 1, "dataset": "digits", "variants": [entry]}
    text = registry.dumps_manifest(doc)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == doc
    assert registry.validate_manifest(json.loads(text)) == doc


# (field, a bad value, the word the reason must contain)
BAD_VALUES = st.one_of(
    st.tuples(st.just("size_bytes"), st.one_of(st.integers(max_value=0), st.floats(), st.booleans(), st.text(), st.none()), st.just("size_bytes")),
    st.tuples(st.just("gzip_bytes"), st.one_of(st.integers(max_value=0), st.integers(min_value=2**63), st.just("1")), st.just("gzip_bytes")),
    st.tuples(st.just("accuracy"), st.one_of(st.floats(min_value=1.0, exclude_min=True), st.floats(max_value=0.0, exclude_max=True),
                                              st.just(math.nan), st.text(), st.none()), st.just("accuracy")),
    st.tuples(st.just("sparsity"), st.floats(min_value=1.0, exclude_min=True), st.just("sparsity")),
    st.tuples(st.just("latency_ms"), st.one_of(
        st.just({}), st.dictionaries(st.integers(1, 8).map(str), st.floats(max_value=0.0) | st.just(math.nan) | st.just(math.inf), min_size=1),
        st.dictionaries(st.sampled_from(["0", "one", "-1", "1.5", ""]), latencies, min_size=1), st.lists(latencies)), st.just("latency_ms")),
    st.tuples(st.just("input"), st.one_of(
        st.fixed_dictionaries({"shape": st.text() | st.lists(st.integers(max_value=0), min_size=1) | st.just([]), "dtype": dtypes}),
        st.fixed_dictionaries({"shape": st.just([1, 8, 8, 1]), "dtype": st.text().filter(lambda t: t not in registry._DTYPES)}),
        st.just({"dtype": "float32"})), st.just("input")),
    st.tuples(st.just("sha256"), st.text().filter(lambda t: not (len(t) == 64 and all(c in "0123456789abcdefABCDEF" for c in t))), st.just("sha256")),
    st.tuples(st.just("path"), st.sampled_from(["/abs/x.tflite", "../x.tflite", "a/../../x", "C:/x.tflite", "a\\b.tflite", ""]), st.just("path")),
    st.tuples(st.just("name"), st.sampled_from(["", "a b", "-x", "../x", "é"]), st.just("name")),
    st.tuples(st.just("peak_memory_bytes"), st.one_of(st.dictionaries(st.text(), st.integers()), st.text(), st.integers(max_value=-1),
                                                       st.floats(), st.booleans()), st.just("peak_memory_bytes")),
)


@SETTINGS
@given(valid_variants(), BAD_VALUES)
def test_each_bad_field_is_caught_and_named(entry, bad):
    field, value, word = bad
    broken = {**entry, field: value}
    reason = registry.variant_problem(broken)
    assert reason is not None and word in reason, (field, value, reason)
    with pytest.raises(ManifestError, match=word):
        registry.validate_variant(broken)


@SETTINGS
@given(valid_variants(), st.sampled_from(registry.REQUIRED))
def test_each_missing_required_key_is_named(entry, key):
    reason = registry.variant_problem({k: v for k, v in entry.items() if k != key})
    assert reason is not None and key in reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(json_values, st.lists(json_values, max_size=3))
def test_arbitrary_json_never_crashes_the_reader(top, variants):
    assert registry.variant_problem(top) is None or isinstance(registry.variant_problem(top), str)
    for doc in (top, {"dataset": "digits", "variants": variants}, {"dataset": "digits", "variants": variants, "schema_version": top}):
        try:
            kept, bad = registry.split_variants(doc)
        except ManifestError as exc:
            assert "\n" not in str(exc)
        else:
            assert len(kept["variants"]) + len(bad) == len(doc["variants"])


@SETTINGS
@given(st.lists(valid_variants(), min_size=1, max_size=6, unique_by=lambda v: v["name"]), st.randoms(use_true_random=False),
       st.sampled_from(["best_accuracy", "fastest"]), st.integers(1, 4))
def test_the_choice_does_not_depend_on_manifest_order(entries, rnd, objective, threads):
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    c = Constraints(threads=threads)
    assert select_variant(entries, c, objective).name == select_variant(shuffled, c, objective).name
