-- customer/profiles (domains/customer/products/profiles.py): one row per customer, cleaned.
select customer_id,
       trim(first_name) as first_name,
       trim(last_name) as last_name,
       lower(trim(email)) as email,
       nullif(upper(trim(country)), '') as country,
       lower(trim(segment)) as segment,
       signup_date,
       updated_at
from {{ ref('stg_crm_export') }}
-- the CRM exports a customer once per update: the latest record wins
qualify row_number() over (partition by customer_id order by updated_at desc, email) = 1
