from mesh_platform import product


@product(sources=["crm_export"])
def segments(ctx):
    ctx.source("crm_export").to_view("crm_export")
    return ctx.sql(
        """
        SELECT segment, count(*) AS customers
        FROM (
            SELECT lower(trim(segment)) AS segment
            FROM crm_export
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, email) = 1
        )
        GROUP BY segment
        """
    )
