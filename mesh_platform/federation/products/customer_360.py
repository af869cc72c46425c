from mesh_platform import product


@product(inputs=["customer/profiles", "orders/history", "preferences/settings"])
def customer_360(ctx):
    ctx.product("customer/profiles").to_view("profiles")
    ctx.product("orders/history").to_view("history")
    ctx.product("preferences/settings").to_view("settings")
    # Left joins: a 360 view that silently dropped customers would mislead its consumers.
    return ctx.sql(
        """
        SELECT p.customer_id,
               {'first_name': p.first_name, 'last_name': p.last_name, 'email': p.email,
                'country': p.country, 'segment': p.segment, 'signup_date': p.signup_date,
                'updated_at': p.updated_at} AS profile,
               {'order_count': coalesce(h.order_count, 0),
                'completed_order_count': coalesce(h.completed_order_count, 0),
                'lifetime_value': coalesce(h.lifetime_value, 0)::DECIMAL(18,2),
                'first_order_at': h.first_order_at,
                'last_order_at': h.last_order_at,
                'recent_orders': coalesce(h.recent_orders, [])} AS order_history,
               CASE WHEN s.customer_id IS NOT NULL THEN
                   {'channel': s.channel, 'language': s.language,
                    'marketing_opt_in': s.marketing_opt_in, 'interests': s.interests,
                    'updated_at': s.updated_at}
               END AS preferences
        FROM profiles p
        LEFT JOIN history h USING (customer_id)
        LEFT JOIN settings s USING (customer_id)
        """
    )
