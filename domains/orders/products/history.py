from mesh_platform import product


@product(sources=["orders", "order_lines"])
def history(ctx):
    ctx.source("orders").to_view("orders")
    ctx.source("order_lines").to_view("order_lines")
    return ctx.sql(
        """
        WITH order_value AS (
            SELECT order_id, sum(quantity * unit_price) AS amount
            FROM order_lines GROUP BY order_id
        ), priced AS (
            SELECT o.customer_id, o.order_id, o.order_ts, o.status,
                   coalesce(v.amount, 0)::DECIMAL(18,2) AS amount
            FROM orders o LEFT JOIN order_value v USING (order_id)
        ), ranked AS (
            SELECT *, row_number() OVER (
                PARTITION BY customer_id ORDER BY order_ts DESC, order_id DESC) AS recency,
                      {'order_id': order_id, 'ordered_at': order_ts, 'status': status, 'amount': amount} AS summary
            FROM priced
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
    )
