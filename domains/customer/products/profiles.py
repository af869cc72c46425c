from mesh_platform import product


@product(sources=["crm_export"])
def profiles(ctx):
    ctx.source("crm_export").to_view("crm_export")
    return ctx.sql(
        """
        SELECT customer_id,
               trim(first_name) AS first_name,
               trim(last_name) AS last_name,
               lower(trim(email)) AS email,
               nullif(upper(trim(country)), '') AS country,
               lower(trim(segment)) AS segment,
               signup_date,
               updated_at
        FROM crm_export
        -- the CRM exports a customer once per update: the latest record wins
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, email) = 1
        """
    )
