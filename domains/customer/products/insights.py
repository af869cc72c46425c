from mesh_platform import product

# Lifetime value (completed orders) at which each value tier starts; below the first: none.
VALUE_TIERS = [("platinum", 5000), ("gold", 2500), ("silver", 1000), ("bronze", 0.01)]
ACTIVE_DAYS, LAPSING_DAYS = 90, 365  # recency bands of the lifecycle stage
DAYS_PER_MONTH = 30.4375


@product(inputs=["customer/profiles", "orders/history", "preferences/settings"])
def insights(ctx):
    ctx.product("customer/profiles").to_view("profiles")
    ctx.product("orders/history").to_view("history")
    ctx.product("preferences/settings").to_view("settings")
    tiers = " ".join(f"WHEN ltv >= {low} THEN '{name}'" for name, low in VALUE_TIERS)
    # Recency is counted to a fixed reference date, the day of the latest order in the orders
    # extract, never to the wall clock: the same data give the same product on any day.
    return ctx.sql(
        f"""
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
               CASE {tiers} ELSE 'none' END AS value_tier,
               ltv AS lifetime_value,
               order_count,
               -- orders placed per month since the first one (a month at least)
               round(order_count / greatest(1.0, coalesce(tenure, 0) / {DAYS_PER_MONTH}), 2)::DECIMAL(10,2)
                   AS orders_per_month,
               first_order_at, last_order_at,
               recency AS days_since_last_order,
               CASE WHEN NOT ordered THEN 'prospect'
                    WHEN recency <= {ACTIVE_DAYS} THEN 'active'
                    WHEN recency <= {LAPSING_DAYS} THEN 'lapsing'
                    ELSE 'lapsed' END AS lifecycle_stage,
               channel AS preferred_channel,
               opt_in AS marketing_opt_in,
               opt_in AND coalesce(channel, 'email') <> 'none' AND email IS NOT NULL AS contactable,
               as_of_date
        FROM joined
        """
    )
