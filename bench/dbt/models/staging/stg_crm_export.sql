-- The CRM export as its source contract types it; updated_at in UTC.
select customer_id, first_name, last_name, email, country, segment, signup_date,
       timezone('UTC', updated_at) as updated_at
from {{ source('landing', 'crm_export') }}
