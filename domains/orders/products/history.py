from mesh_platform import product

# Each order with its value (the sum of its lines).
PRICED = """
    SELECT o.customer_id, o.order_id, o.order_ts, o.status, coalesce(v.amount, 0)::DECIMAL(18,2) AS amount
    FROM {orders} AS o
    LEFT JOIN (SELECT order_id, sum(quantity * unit_price) AS amount FROM {lines} GROUP BY order_id) AS v
    USING (order_id)
"""

# Each customer's history, from their priced orders.
SUMMARY = """
    WITH ranked AS (
        SELECT *, row_number() OVER (
            PARTITION BY customer_id ORDER BY order_ts DESC, order_id DESC) AS recency,
                  {{'order_id': order_id, 'ordered_at': order_ts, 'status': status, 'amount': amount}} AS summary
        FROM {priced}
    )
    SELECT customer_id,
           count(*)::BIGINT AS order_count,
           count(*) FILTER (WHERE status = 'completed')::BIGINT AS completed_order_count,
           coalesce(sum(amount) FILTER (WHERE status = 'completed'), 0)::DECIMAL(18,2) AS lifetime_value,
           min(order_ts) AS first_order_at,
           max(order_ts) AS last_order_at,
           -- The five latest orders, newest first, picked by rank: an ordered list() aggregate
           -- would hold every order in memory at once, where this spills to disk when it must.
           list_filter([any_value(summary) FILTER (WHERE recency = 1), any_value(summary) FILTER (WHERE recency = 2),
                        any_value(summary) FILTER (WHERE recency = 3), any_value(summary) FILTER (WHERE recency = 4),
                        any_value(summary) FILTER (WHERE recency = 5)],
                       lambda o: o IS NOT NULL) AS recent_orders
    FROM ranked
    GROUP BY customer_id
"""


@product(sources=["orders", "order_lines"])
def history(ctx):
    ctx.source("orders").to_view("orders")
    ctx.source("order_lines").to_view("order_lines")
    buckets = ctx.buckets("orders", "order_lines")
    if buckets == 1:
        return ctx.sql(SUMMARY.format(priced=f"({PRICED.format(orders='orders', lines='order_lines')})"))
    # More than the step's memory holds at once (about 10M customers within 1 GB): DuckDB cannot
    # spill the GROUP BY of 100M orders or the window over them. Orders and their lines are
    # split by order and priced a bucket at a time, then split by customer and summed up a
    # bucket at a time: each customer's orders all land in one bucket.
    ctx.stage("orders_by_order", "SELECT customer_id, order_id, order_ts, status FROM orders",
              bucket_by="order_id", buckets=buckets)
    ctx.stage("lines_by_order", "SELECT order_id, quantity, unit_price FROM order_lines",
              bucket_by="order_id", buckets=buckets)
    for b in range(buckets):
        ctx.stage("priced", PRICED.format(orders=f"(SELECT * FROM orders_by_order WHERE mesh_bucket = {b})",
                                          lines=f"(SELECT * FROM lines_by_order WHERE mesh_bucket = {b})"),
                  bucket_by="customer_id", buckets=buckets)
    for b in range(buckets):
        ctx.stage("summed", SUMMARY.format(priced=f"(SELECT * EXCLUDE (mesh_bucket) FROM priced WHERE mesh_bucket = {b})"))
    return ctx.sql("SELECT * EXCLUDE (mesh_bucket) FROM summed")
