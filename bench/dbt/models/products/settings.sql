-- preferences/settings (domains/preferences/products/settings.py): one row per customer who
-- ever set a preference, with the current value of each.
with latest as (
    select customer_id, field, value, event_ts
    from {{ ref('stg_preference_events') }}
    -- events arrive out of order: the latest per customer and field wins
    qualify row_number() over (partition by customer_id, field order by event_ts desc, event_id desc) = 1
)
select customer_id,
       any_value(case when field = 'channel' then value ->> '$' end) as channel,
       any_value(case when field = 'language' then value ->> '$' end) as language,
       coalesce(any_value(case when field = 'marketing_opt_in' then (value ->> '$')::boolean end),
                false) as marketing_opt_in,
       coalesce(any_value(case when field = 'interests' then value::varchar[] end),
                []::varchar[]) as interests,
       max(event_ts) as updated_at
from latest
group by customer_id
