-- Orders as their source contract types them (order_ts TIMESTAMP, UTC).
select cast(order_id as varchar) as order_id,
       cast(customer_id as varchar) as customer_id,
       cast(order_ts as timestamp) as order_ts,
       cast(status as varchar) as status
from {{ source('landing', 'orders') }}
