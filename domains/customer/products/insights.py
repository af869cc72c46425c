from mesh_platform import product


@product(inputs=["customer/profiles", "orders/history", "preferences/settings"])
def insights(ctx):
    ctx.product("customer/profiles").to_view("profiles")
    ctx.product("orders/history").to_view("history")
    ctx.product("preferences/settings").to_view("settings")
    # Recency is counted to a fixed reference date, the day of the latest order in the orders
    # extract, never to the wall clock: the same data give the same product on any day.
    # One literal query (no f-string): the platform reads which input columns it uses to tell a
    # producer's breaking change from a harmless one.
    return ctx.sql(
        """
        WITH as_of AS (SELECT max(last_order_at)::DATE AS as_of_date FROM history),
        joined AS (
            SELECT p.customer_id, p.email, p.country, p.segment,
                   h.customer_id IS NOT NULL AS ordered,
                   coalesce(h.order_count, 0)::BIGINT AS order_count,
                   coalesce(h.lifetime_value, 0)::DECIMAL(18,2) AS ltv,
                   h.first_order_at, h.last_order_at,
                   date_diff('day', h.last_order_at::DATE, a.as_of_date)::INTEGER AS recency,
                   date_diff('day', h.first_order_at::DATE, a.as_of_date) AS tenure,
                   s.channel, coalesce(s.marketing_opt_in, false) AS opt_in,
                   a.as_of_date
            FROM profiles p
            CROSS JOIN as_of a
            LEFT JOIN history h USING (customer_id)
            LEFT JOIN settings s USING (customer_id)
        )
        SELECT customer_id, email, country, segment,
               -- value tier: where lifetime value (completed orders) reaches each threshold
               CASE WHEN ltv >= 5000 THEN 'platinum' WHEN ltv >= 2500 THEN 'gold'
                    WHEN ltv >= 1000 THEN 'silver' WHEN ltv >= 0.01 THEN 'bronze' ELSE 'none' END AS value_tier,
               ltv AS lifetime_value,
               order_count,
               -- orders placed per month since the first one (a month at least)
               round(order_count / greatest(1.0, coalesce(tenure, 0) / 30.4375), 2)::DECIMAL(10,2)
                   AS orders_per_month,
               first_order_at, last_order_at,
               recency AS days_since_last_order,
               CASE WHEN NOT ordered THEN 'prospect'
                    WHEN recency <= 90 THEN 'active'
                    WHEN recency <= 365 THEN 'lapsing'
                    ELSE 'lapsed' END AS lifecycle_stage,
               channel AS preferred_channel,
               opt_in AS marketing_opt_in,
               opt_in AND coalesce(channel, 'email') <> 'none' AND email IS NOT NULL AS contactable,
               as_of_date
        FROM joined
        """
    )
