"""A small hand-written landing set, and the customer_360 rows it must produce.

The expectations below are worked out by hand from the landing rows, not computed by the mesh.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CRM_CSV = """customer_id,first_name,last_name,email,country,segment,signup_date,updated_at
C001,Anna,Smith, Anna.Smith@Example.COM ,de,consumer,2024-01-10,2024-01-10 09:00:00
C002,Ben,Jones,ben.jones@example.com,,smb,2024-02-01,2024-02-01 10:00:00
C001,Anna,Smith-Lee,ANNA.LEE@example.com,DE,enterprise,2024-01-10,2024-06-01 12:00:00
C003,Cleo,Park,cleo.park@example.com,FR,consumer,2024-03-05,2024-03-05 08:30:00
"""

# (order_id, customer_id, order_ts, status, [(quantity, unit_price), ...])
ORDERS = [
    ("O1", "C001", "2024-02-01 10:00:00", "completed", [(2, "10.00"), (1, "5.50")]),
    ("O2", "C001", "2024-03-01 10:00:00", "cancelled", [(1, "100.00")]),
    ("O3", "C001", "2024-04-01 10:00:00", "refunded", [(1, "40.00")]),
    ("O4", "C001", "2024-05-01 10:00:00", "completed", [(3, "3.00")]),
    ("O5", "C002", "2024-02-15 10:00:00", "completed", [(1, "99.99")]),
    ("O6", "C002", "2024-02-20 10:00:00", "pending", [(1, "20.00")]),
    ("O7", "C999", "2024-02-20 10:00:00", "completed", [(1, "1.00")]),
    ("O8", "C001", "2024-06-01 10:00:00", "shipped", [(1, "7.00")]),
    ("O9", "C001", "2024-07-01 10:00:00", "completed", [(1, "1.25")]),
]

# Out of order on purpose: the stream delivers late events.
EVENTS = [
    ("E1", "C001", "2024-01-11 08:00:00", "channel", "email"),
    ("E2", "C001", "2024-05-01 08:00:00", "channel", "sms"),
    ("E3", "C001", "2024-03-01 08:00:00", "channel", "push"),
    ("E4", "C001", "2024-01-12 08:00:00", "marketing_opt_in", True),
    ("E5", "C001", "2024-01-12 09:00:00", "interests", ["books", "travel"]),
    ("E8", "C003", "2024-04-01 08:00:00", "marketing_opt_in", True),
    ("E6", "C003", "2024-03-06 08:00:00", "language", "fr"),
    ("E7", "C003", "2024-03-07 08:00:00", "marketing_opt_in", False),
]


def write_landing(root: Path, crm_csv: str = CRM_CSV, orders=ORDERS, events=EVENTS) -> Path:
    (root / "customer").mkdir(parents=True, exist_ok=True)
    (root / "customer" / "crm_export.csv").write_text(crm_csv)
    for sub in ("orders/orders", "orders/order_lines", "preferences/events"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for old in (root / sub).iterdir():
            old.unlink()
    pq.write_table(
        pa.table({
            "order_id": [o[0] for o in orders],
            "customer_id": [o[1] for o in orders],
            "order_ts": pa.array([datetime.fromisoformat(o[2]) for o in orders], pa.timestamp("us")),
            "status": [o[3] for o in orders],
        }),
        root / "orders/orders/part-00000.parquet",
    )
    lines = [(o[0], i + 1, f"SKU-{i}", q, Decimal(p)) for o in orders for i, (q, p) in enumerate(o[4])]
    pq.write_table(
        pa.table({
            "order_id": [l[0] for l in lines],
            "line_no": pa.array([l[1] for l in lines], pa.int32()),
            "sku": [l[2] for l in lines],
            "quantity": pa.array([l[3] for l in lines], pa.int32()),
            "unit_price": pa.array([l[4] for l in lines], pa.decimal128(10, 2)),
        }),
        root / "orders/order_lines/part-00000.parquet",
    )
    (root / "preferences/events/part-00000.jsonl").write_text(
        "".join(
            json.dumps({"event_id": e[0], "customer_id": e[1], "event_ts": e[2], "field": e[3], "value": e[4]}) + "\n"
            for e in events
        )
    )
    return root


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _order(order_id, when, status, amount):
    return {"order_id": order_id, "ordered_at": ts(when), "status": status, "amount": Decimal(amount)}


EXPECTED_360 = {
    # Exported twice: the 2024-06-01 record wins (new last name, email, segment).
    "C001": {
        "profile": {
            "first_name": "Anna", "last_name": "Smith-Lee", "email": "anna.lee@example.com",
            "country": "DE", "segment": "enterprise", "signup_date": date(2024, 1, 10),
            "updated_at": ts("2024-06-01 12:00:00"),
        },
        # 6 orders; value counts O1 (25.50), O4 (9.00), O9 (1.25) only.
        "order_history": {
            "order_count": 6, "completed_order_count": 3, "lifetime_value": Decimal("35.75"),
            "first_order_at": ts("2024-02-01 10:00:00"), "last_order_at": ts("2024-07-01 10:00:00"),
            "recent_orders": [
                _order("O9", "2024-07-01 10:00:00", "completed", "1.25"),
                _order("O8", "2024-06-01 10:00:00", "shipped", "7.00"),
                _order("O4", "2024-05-01 10:00:00", "completed", "9.00"),
                _order("O3", "2024-04-01 10:00:00", "refunded", "40.00"),
                _order("O2", "2024-03-01 10:00:00", "cancelled", "100.00"),
            ],
        },
        # channel: E2 (May) beats the late-arriving E3 (March).
        "preferences": {
            "channel": "sms", "language": None, "marketing_opt_in": True,
            "interests": ["books", "travel"], "updated_at": ts("2024-05-01 08:00:00"),
        },
    },
    # Empty country becomes null; the pending order does not count; no preferences at all.
    "C002": {
        "profile": {
            "first_name": "Ben", "last_name": "Jones", "email": "ben.jones@example.com",
            "country": None, "segment": "smb", "signup_date": date(2024, 2, 1),
            "updated_at": ts("2024-02-01 10:00:00"),
        },
        "order_history": {
            "order_count": 2, "completed_order_count": 1, "lifetime_value": Decimal("99.99"),
            "first_order_at": ts("2024-02-15 10:00:00"), "last_order_at": ts("2024-02-20 10:00:00"),
            "recent_orders": [
                _order("O6", "2024-02-20 10:00:00", "pending", "20.00"),
                _order("O5", "2024-02-15 10:00:00", "completed", "99.99"),
            ],
        },
        "preferences": None,
    },
    # No orders: kept, with an empty history.
    "C003": {
        "profile": {
            "first_name": "Cleo", "last_name": "Park", "email": "cleo.park@example.com",
            "country": "FR", "segment": "consumer", "signup_date": date(2024, 3, 5),
            "updated_at": ts("2024-03-05 08:30:00"),
        },
        "order_history": {
            "order_count": 0, "completed_order_count": 0, "lifetime_value": Decimal("0.00"),
            "first_order_at": None, "last_order_at": None, "recent_orders": [],
        },
        # marketing_opt_in: E8 (April, true) beats E7 (March, false).
        "preferences": {
            "channel": None, "language": "fr", "marketing_opt_in": True, "interests": [],
            "updated_at": ts("2024-04-01 08:00:00"),
        },
    },
}

# customer/insights, worked out by hand. The reference date is the day of the latest order in
# orders/history: O9, 2024-07-01 (C999's order is in orders/history too, but older).
AS_OF = date(2024, 7, 1)
EXPECTED_INSIGHTS = {
    # Value 35.75 (bronze). Last order O9 on the reference date: 0 days, active. 6 orders over
    # the 151 days from 2024-02-01 (4.96 months): 1.21 a month. Opted in, channel sms: contactable.
    "C001": {
        "email": "anna.lee@example.com", "country": "DE", "segment": "enterprise", "value_tier": "bronze",
        "lifetime_value": Decimal("35.75"), "order_count": 6, "orders_per_month": Decimal("1.21"),
        "first_order_at": ts("2024-02-01 10:00:00"), "last_order_at": ts("2024-07-01 10:00:00"),
        "days_since_last_order": 0, "lifecycle_stage": "active", "preferred_channel": "sms",
        "marketing_opt_in": True, "contactable": True, "as_of_date": AS_OF,
    },
    # Value 99.99 (bronze). Last order 2024-02-20: 132 days before (lapsing). 2 orders over the
    # 137 days from 2024-02-15 (4.50 months): 0.44 a month. No preference events: not opted in.
    "C002": {
        "email": "ben.jones@example.com", "country": None, "segment": "smb", "value_tier": "bronze",
        "lifetime_value": Decimal("99.99"), "order_count": 2, "orders_per_month": Decimal("0.44"),
        "first_order_at": ts("2024-02-15 10:00:00"), "last_order_at": ts("2024-02-20 10:00:00"),
        "days_since_last_order": 132, "lifecycle_stage": "lapsing", "preferred_channel": None,
        "marketing_opt_in": False, "contactable": False, "as_of_date": AS_OF,
    },
    # Never ordered: a prospect with no value. Opted in (E8) with no channel set: by email.
    "C003": {
        "email": "cleo.park@example.com", "country": "FR", "segment": "consumer", "value_tier": "none",
        "lifetime_value": Decimal("0.00"), "order_count": 0, "orders_per_month": Decimal("0.00"),
        "first_order_at": None, "last_order_at": None,
        "days_since_last_order": None, "lifecycle_stage": "prospect", "preferred_channel": None,
        "marketing_opt_in": True, "contactable": True, "as_of_date": AS_OF,
    },
}
# The mean of days_since_last_order over the customers who ordered: (0 + 132) / 2.
MEAN_RECENCY = 66.0
