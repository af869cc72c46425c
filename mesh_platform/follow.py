"""The automation condition of every product built from other products (and of the BigQuery
ports that copy them): run when an upstream publishes, once no upstream is missing or running
and every upstream's blocking checks passed.

It is Dagster's `eager()` with one change. `eager()` is "an upstream updated SINCE this asset
was last handled", where handled includes this asset's own update; when both happen in the same
tick (customer_360 built from the previous versions while an upstream publishes a new one, as
in a team's concurrent runs), SINCE is false and the new upstream version is never followed.
Here an update of this asset resets the condition only in a tick where no upstream updated, so
such an upstream version is followed at the next tick (at worst one extra run, when the asset
happened to be built from it already)."""

from __future__ import annotations

import dagster as dg

_AC = dg.AutomationCondition


def follows_inputs() -> dg.AutomationCondition:
    updated = _AC.newly_missing() | _AC.any_deps_updated()
    handled = _AC.newly_requested() | (_AC.newly_updated() & ~_AC.any_deps_updated()) | _AC.initial_evaluation()
    eager = (
        _AC.in_latest_time_window()
        & updated.since(handled)
        & ~_AC.any_deps_missing()
        & ~_AC.any_deps_in_progress()
        & ~_AC.in_progress()
    ).with_label("eager (same-tick upstream updates kept)")
    return eager & _AC.all_deps_blocking_checks_passed()
