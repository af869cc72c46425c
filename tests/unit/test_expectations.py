"""The SQL forms of GX expectations give Great Expectations' own answers, and an expectation
without a SQL form still runs, in GX."""

import duckdb
import pandas as pd
import pytest

from mesh_platform.contracts import load_contract
from mesh_platform.expectations import compile_expectation, evaluate
from mesh_platform.quality import OUTPUT, audit

# Nulls, duplicates, boundary values and near-misses for every expectation below.
FRAME = pd.DataFrame({
    "s": ["a@x.io", "b@x.io", "B@x.io", None, "a@x.io", " c@x.io", "d@x", "e@y.co"],
    "n": [1, 5, 10, None, 0, 10, 3, 7],
    "code": ["DE", "FR", "F", None, "USA", "DE", "", "NL"],
})
REGEX = r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"
CASES = [
    ("expect_column_values_to_not_be_null", {"column": "s"}),
    ("expect_column_values_to_not_be_null", {"column": "s", "mostly": 0.8}),
    ("expect_column_values_to_not_be_null", {"column": "s", "mostly": 0.9}),
    ("expect_column_values_to_be_unique", {"column": "s"}),
    ("expect_column_values_to_be_unique", {"column": "code", "mostly": 0.7}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["DE", "FR", "NL"]}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["DE", "FR", "NL", "F", "USA", ""]}),
    ("expect_column_values_to_not_be_in_set", {"column": "code", "value_set": ["USA"]}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 1}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 10}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 10, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "strict_min": True, "mostly": 0.8}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": REGEX}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": "@", "mostly": 0.5}),
    ("expect_column_values_to_not_match_regex", {"column": "s", "regex": "^ "}),
    ("expect_column_value_lengths_to_equal", {"column": "code", "value": 2}),
    ("expect_column_value_lengths_to_be_between", {"column": "code", "min_value": 1, "max_value": 3}),
    ("expect_table_row_count_to_be_between", {"min_value": 1}),
    ("expect_table_row_count_to_be_between", {"min_value": 9, "max_value": None}),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 8, "strict_max": True}),
    ("expect_table_row_count_to_equal", {"value": 8}),
]


@pytest.fixture(scope="module")
def gx_results():
    """Great Expectations itself, on the pandas frame: the reference."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name="t").add_dataframe_asset(name="t")
        .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": FRAME})
    )
    results = []
    for expectation, kwargs in CASES:
        cls = getattr(gx.expectations, "".join(p.capitalize() for p in expectation.split("_")))
        results.append(batch.validate(cls(**kwargs), result_format="SUMMARY"))
    return results


def test_sql_forms_agree_with_great_expectations(gx_results):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {OUTPUT} AS SELECT * FROM FRAME")
    compiled = [compile_expectation(e, k, OUTPUT) for e, k in CASES]
    assert all(compiled), [e for (e, _), c in zip(CASES, compiled, strict=True) if c is None]
    ours = evaluate(con, OUTPUT, compiled)
    for (expectation, kwargs), gx_result, result in zip(CASES, gx_results, ours, strict=True):
        case = f"{expectation} {kwargs}"
        assert result.success == gx_result.success, case
        for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent"):
            if gx_result.result.get(key) is not None:
                assert result.metadata[key] == pytest.approx(gx_result.result[key]), f"{case}: {key}"
    # The cases are not all trivially true or false: the comparison above means something.
    assert {r.success for r in ours} == {True, False}


def test_expectations_without_a_sql_form_run_in_great_expectations(tmp_path):
    assert compile_expectation("expect_column_mean_to_be_between", {"column": "n", "min_value": 1}, OUTPUT) is None
    assert compile_expectation("expect_column_values_to_be_between", {"column": "n", "min_value": 1, "parse_strings_as_datetimes": True}, OUTPUT) is None
    path = tmp_path / "t.odcs.yaml"
    path.write_text("""
apiVersion: v3.1.0
kind: DataContract
id: t
version: 1.0.0
domain: d
team: {name: t}
schema:
  - name: t
    properties:
      - name: n
        logicalType: integer
        physicalType: BIGINT
        quality:
          - {name: mean_in_range, type: custom, engine: greatExpectations, implementation: {type: expect_column_mean_to_be_between, kwargs: {min_value: 0, max_value: 5}}}
          - {name: mean_too_high, type: custom, engine: greatExpectations, implementation: {type: expect_column_mean_to_be_between, kwargs: {min_value: 6}}}
          - {name: positive, type: custom, engine: greatExpectations, implementation: {type: expect_column_values_to_be_between, kwargs: {min_value: 1}}}
""")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {OUTPUT} AS SELECT unnest([1, 2, 3, 9, NULL])::BIGINT AS n")
    schema, in_range, too_high, positive = audit(con, load_contract(path), {"n": "BIGINT"})
    assert schema.passed
    # mean of 1, 2, 3, 9 is 3.75: GX's observed value, which only GX computed here
    assert (in_range.passed, in_range.metadata["observed_value"]) == (True, 3.75)
    assert (too_high.passed, too_high.metadata["observed_value"]) == (False, 3.75)
    assert (positive.passed, positive.metadata["unexpected_count"]) == (True, 0)
