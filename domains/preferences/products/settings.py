from mesh_platform import product


@product(sources=["preference_events"])
def settings(ctx):
    ctx.source("preference_events").to_view("preference_events")
    return ctx.sql(
        """
        WITH latest AS (
            SELECT customer_id, field, value, event_ts
            FROM preference_events
            -- events arrive out of order: the latest per customer and field wins
            QUALIFY row_number() OVER (
                PARTITION BY customer_id, field ORDER BY event_ts DESC, event_id DESC) = 1
        )
        SELECT customer_id,
               any_value(CASE WHEN field = 'channel' THEN value ->> '$' END) AS channel,
               any_value(CASE WHEN field = 'language' THEN value ->> '$' END) AS language,
               coalesce(any_value(CASE WHEN field = 'marketing_opt_in' THEN (value ->> '$')::BOOLEAN END),
                        false) AS marketing_opt_in,
               coalesce(any_value(CASE WHEN field = 'interests' THEN value::VARCHAR[] END),
                        []::VARCHAR[]) AS interests,
               max(event_ts) AS updated_at
        FROM latest
        GROUP BY customer_id
        """
    )
