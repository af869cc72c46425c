-- federation/customer_360 (mesh_platform/federation/products/customer_360.py): everything
-- known about a customer, one row per customer of profiles. Left joins: nobody is dropped.
select p.customer_id,
       {'first_name': p.first_name, 'last_name': p.last_name, 'email': p.email,
        'country': p.country, 'segment': p.segment, 'signup_date': p.signup_date,
        'updated_at': p.updated_at} as profile,
       {'order_count': coalesce(h.order_count, 0),
        'completed_order_count': coalesce(h.completed_order_count, 0),
        'lifetime_value': coalesce(h.lifetime_value, 0)::decimal(18, 2),
        'first_order_at': h.first_order_at,
        'last_order_at': h.last_order_at,
        'recent_orders': coalesce(h.recent_orders, [])} as order_history,
       case when s.customer_id is not null then
           {'channel': s.channel, 'language': s.language,
            'marketing_opt_in': s.marketing_opt_in, 'interests': s.interests,
            'updated_at': s.updated_at}
       end as preferences
from {{ ref('profiles') }} p
left join {{ ref('history') }} h using (customer_id)
left join {{ ref('settings') }} s using (customer_id)
