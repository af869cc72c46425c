-- orders/history (domains/orders/products/history.py): one row per customer who ever ordered.
with order_value as (
    select order_id, sum(quantity * unit_price) as amount
    from {{ ref('stg_order_lines') }}
    group by order_id
), priced as (
    select o.customer_id, o.order_id, o.order_ts, o.status,
           coalesce(v.amount, 0)::decimal(18, 2) as amount
    from {{ ref('stg_orders') }} o
    left join order_value v using (order_id)
), ranked as (
    select *,
           row_number() over (partition by customer_id order by order_ts desc, order_id desc) as recency,
           {'order_id': order_id, 'ordered_at': order_ts, 'status': status, 'amount': amount} as summary
    from priced
)
select customer_id,
       count(*)::bigint as order_count,
       count(*) filter (where status = 'completed')::bigint as completed_order_count,
       coalesce(sum(amount) filter (where status = 'completed'), 0)::decimal(18, 2) as lifetime_value,
       min(order_ts) as first_order_at,
       max(order_ts) as last_order_at,
       -- The five latest orders, newest first, picked by rank: an ordered list() aggregate
       -- would hold every order in memory at once, where this spills to disk when it must.
       list_filter([any_value(summary) filter (where recency = 1), any_value(summary) filter (where recency = 2),
                    any_value(summary) filter (where recency = 3), any_value(summary) filter (where recency = 4),
                    any_value(summary) filter (where recency = 5)],
                   lambda o: o is not null) as recent_orders
from ranked
group by customer_id
