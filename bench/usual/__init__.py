"""The benchmark's idiomatic baseline: the mesh's four products built "the usual way", as the
Dagster and Great Expectations tutorials teach it. Pandas assets stored by the DuckDB pandas I/O
manager (definitions.py), blocking asset checks running Great Expectations suites on the
stored DataFrames, and a runner (`python -m bench.usual`) that executes the job as Dagster does
and records each step's duration from the run's event log."""
