-- Preference events as their source contract types them; event_ts in UTC.
select event_id, customer_id, timezone('UTC', event_ts) as event_ts, field, value
from {{ source('landing', 'preference_events') }}
