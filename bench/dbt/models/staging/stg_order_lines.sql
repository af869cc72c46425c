-- Order lines as their source contract types them.
select cast(order_id as varchar) as order_id,
       cast(line_no as integer) as line_no,
       cast(sku as varchar) as sku,
       cast(quantity as integer) as quantity,
       cast(unit_price as decimal(10, 2)) as unit_price
from {{ source('landing', 'order_lines') }}
