"""Which locations' runs of a refresh are independent (mesh_platform.location_waves.waves)."""

from __future__ import annotations

import dagster as dg

from mesh_platform.location_waves import waves


def key(s: str) -> dg.AssetKey:
    return dg.AssetKey(s.split("/"))


HISTORY, SETTINGS, PROFILES, INSIGHTS, C360 = map(key, [
    "orders/history", "preferences/settings", "customer/profiles", "customer/insights", "federation/customer_360"])
READS = {INSIGHTS: {HISTORY, SETTINGS}, C360: {PROFILES, HISTORY, SETTINGS}}
ORDER = ["orders", "preferences", "customer", "federation"]


def test_a_location_waits_only_for_the_locations_its_selected_products_read():
    # Every product: customer's insights read orders and preferences, federation reads all three.
    every = {"orders": [HISTORY], "preferences": [SETTINGS], "customer": [PROFILES, INSIGHTS], "federation": [C360]}
    assert waves(ORDER, every, READS) == [["orders", "preferences"], ["customer"], ["federation"]]
    # Without insights, customer reads nothing built in this refresh.
    no_insights = {**every, "customer": [PROFILES]}
    assert waves(ORDER, no_insights, READS) == [["orders", "preferences", "customer"], ["federation"]]
    # history and what reads it: insights and customer_360 read only history here.
    downstream = {"orders": [HISTORY], "customer": [INSIGHTS], "federation": [C360]}
    assert waves(["orders", "customer", "federation"], downstream, READS) == [["orders"], ["customer", "federation"]]
    # A product read from its published snapshot (not in the refresh) does not order anything.
    assert waves(["customer", "federation"], {"customer": [INSIGHTS], "federation": [C360]}, READS) == [
        ["customer", "federation"]]


def test_locations_reading_each_other_run_one_after_the_other():
    a, b = key("a/one"), key("b/two")
    assert waves(["a", "b"], {"a": [a], "b": [b]}, {a: {b}, b: {a}}) == [["a"], ["b"]]
