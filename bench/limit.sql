-- The limit: the three domain products and customer_360, computed by one hand-written DuckDB
-- script from the same landing files, with the same contract checks as SQL queries (a failed
-- check raises an error and stops the script), each product written to one Parquet file.
-- $landing and $out are filled in by bench/limit.py, which also times each step.

-- step: profiles
CREATE TABLE profiles AS
SELECT customer_id,
       trim(first_name) AS first_name,
       trim(last_name) AS last_name,
       lower(trim(email)) AS email,
       nullif(upper(trim(country)), '') AS country,
       lower(trim(segment)) AS segment,
       signup_date,
       updated_at
FROM read_csv('$landing/customer/crm_export.csv', header = true, columns = {
    'customer_id': 'VARCHAR', 'first_name': 'VARCHAR', 'last_name': 'VARCHAR', 'email': 'VARCHAR',
    'country': 'VARCHAR', 'segment': 'VARCHAR', 'signup_date': 'DATE', 'updated_at': 'TIMESTAMP'})
QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, email) = 1;

SELECT error('profiles: schema ' || s) FROM (
    SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) AS s
    FROM duckdb_columns() WHERE table_name = 'profiles')
WHERE s <> 'customer_id VARCHAR, first_name VARCHAR, last_name VARCHAR, email VARCHAR, country VARCHAR, segment VARCHAR, signup_date DATE, updated_at TIMESTAMP';

SELECT error('profiles: checks failed ' || to_json(c)) FROM (
    SELECT count(*) FILTER (WHERE customer_id IS NULL) AS customer_id_required,
           count(*) FILTER (WHERE segment IS NULL) AS segment_required,
           count(*) FILTER (WHERE signup_date IS NULL) AS signup_date_required,
           count(*) FILTER (WHERE updated_at IS NULL) AS updated_at_required,
           count(*) - count(DISTINCT customer_id) AS customer_id_unique,
           count(*) FILTER (WHERE NOT regexp_matches(email, '^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$')) AS email_is_normalized,
           count(*) FILTER (WHERE length(country) <> 2) AS country_is_iso_code,
           count(*) FILTER (WHERE segment NOT IN ('consumer', 'smb', 'enterprise')) AS segment_is_known,
           (count(*) = 0)::INT AS has_customers
    FROM profiles) AS c
WHERE customer_id_required + segment_required + signup_date_required + updated_at_required
    + customer_id_unique + email_is_normalized + country_is_iso_code + segment_is_known + has_customers > 0;

COPY profiles TO '$out/profiles.parquet';

-- step: history
CREATE TABLE history AS
WITH order_value AS (
    SELECT order_id, sum(quantity * unit_price) AS amount
    FROM read_parquet('$landing/orders/order_lines/*.parquet') GROUP BY order_id
), priced AS (
    SELECT o.customer_id, o.order_id, o.order_ts, o.status,
           coalesce(v.amount, 0)::DECIMAL(18,2) AS amount
    FROM read_parquet('$landing/orders/orders/*.parquet') o LEFT JOIN order_value v USING (order_id)
), ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY customer_id ORDER BY order_ts DESC, order_id DESC) AS recency,
              {'order_id': order_id, 'ordered_at': order_ts, 'status': status, 'amount': amount} AS summary
    FROM priced
)
SELECT customer_id,
       count(*)::BIGINT AS order_count,
       count(*) FILTER (WHERE status = 'completed')::BIGINT AS completed_order_count,
       coalesce(sum(amount) FILTER (WHERE status = 'completed'), 0)::DECIMAL(18,2) AS lifetime_value,
       min(order_ts) AS first_order_at,
       max(order_ts) AS last_order_at,
       -- The five latest orders, newest first, picked by rank: an ordered list() aggregate
       -- would hold every order in memory at once, where this spills to disk when it must.
       list_filter([any_value(summary) FILTER (WHERE recency = 1), any_value(summary) FILTER (WHERE recency = 2),
                    any_value(summary) FILTER (WHERE recency = 3), any_value(summary) FILTER (WHERE recency = 4),
                    any_value(summary) FILTER (WHERE recency = 5)],
                   lambda o: o IS NOT NULL) AS recent_orders
FROM ranked
GROUP BY customer_id;

SELECT error('history: schema ' || s) FROM (
    SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) AS s
    FROM duckdb_columns() WHERE table_name = 'history')
WHERE s <> 'customer_id VARCHAR, order_count BIGINT, completed_order_count BIGINT, lifetime_value DECIMAL(18,2), first_order_at TIMESTAMP, last_order_at TIMESTAMP, recent_orders STRUCT(order_id VARCHAR, ordered_at TIMESTAMP, status VARCHAR, amount DECIMAL(18,2))[]';

SELECT error('history: checks failed ' || to_json(c)) FROM (
    SELECT count(*) FILTER (WHERE customer_id IS NULL) AS customer_id_required,
           count(*) FILTER (WHERE order_count IS NULL OR completed_order_count IS NULL
                            OR lifetime_value IS NULL OR first_order_at IS NULL
                            OR last_order_at IS NULL OR recent_orders IS NULL) AS columns_required,
           count(*) - count(DISTINCT customer_id) AS customer_id_unique,
           count(*) FILTER (WHERE order_count < 1) AS order_count_positive,
           count(*) FILTER (WHERE lifetime_value < 0) AS lifetime_value_not_negative,
           count(*) FILTER (WHERE first_order_at > last_order_at) AS first_before_last,
           (count(*) = 0)::INT AS has_customers
    FROM history) AS c
WHERE customer_id_required + columns_required + customer_id_unique + order_count_positive
    + lifetime_value_not_negative + first_before_last + has_customers > 0;

COPY history TO '$out/history.parquet';

-- step: settings
CREATE TABLE settings AS
WITH latest AS (
    SELECT customer_id, field, value, event_ts
    FROM read_json('$landing/preferences/events/*.jsonl', format = 'newline_delimited', columns = {
        'event_id': 'VARCHAR', 'customer_id': 'VARCHAR', 'event_ts': 'TIMESTAMP', 'field': 'VARCHAR',
        'value': 'JSON'})
    QUALIFY row_number() OVER (
        PARTITION BY customer_id, field ORDER BY event_ts DESC, event_id DESC) = 1
)
SELECT customer_id,
       any_value(CASE WHEN field = 'channel' THEN value ->> '$$' END) AS channel,
       any_value(CASE WHEN field = 'language' THEN value ->> '$$' END) AS language,
       coalesce(any_value(CASE WHEN field = 'marketing_opt_in' THEN (value ->> '$$')::BOOLEAN END),
                false) AS marketing_opt_in,
       coalesce(any_value(CASE WHEN field = 'interests' THEN value::VARCHAR[] END),
                []::VARCHAR[]) AS interests,
       max(event_ts) AS updated_at
FROM latest
GROUP BY customer_id;

SELECT error('settings: schema ' || s) FROM (
    SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) AS s
    FROM duckdb_columns() WHERE table_name = 'settings')
WHERE s <> 'customer_id VARCHAR, channel VARCHAR, language VARCHAR, marketing_opt_in BOOLEAN, interests VARCHAR[], updated_at TIMESTAMP';

SELECT error('settings: checks failed ' || to_json(c)) FROM (
    SELECT count(*) FILTER (WHERE customer_id IS NULL OR marketing_opt_in IS NULL
                            OR interests IS NULL OR updated_at IS NULL) AS columns_required,
           count(*) - count(DISTINCT customer_id) AS customer_id_unique,
           count(*) FILTER (WHERE channel NOT IN ('email', 'sms', 'push', 'none')) AS channel_is_known,
           (count(*) = 0)::INT AS has_customers
    FROM settings) AS c
WHERE columns_required + customer_id_unique + channel_is_known + has_customers > 0;

COPY settings TO '$out/settings.parquet';

-- step: customer_360
CREATE TABLE customer_360 AS
SELECT p.customer_id,
       {'first_name': p.first_name, 'last_name': p.last_name, 'email': p.email,
        'country': p.country, 'segment': p.segment, 'signup_date': p.signup_date,
        'updated_at': p.updated_at} AS profile,
       {'order_count': coalesce(h.order_count, 0),
        'completed_order_count': coalesce(h.completed_order_count, 0),
        'lifetime_value': coalesce(h.lifetime_value, 0)::DECIMAL(18,2),
        'first_order_at': h.first_order_at,
        'last_order_at': h.last_order_at,
        'recent_orders': coalesce(h.recent_orders, [])} AS order_history,
       CASE WHEN s.customer_id IS NOT NULL THEN
           {'channel': s.channel, 'language': s.language,
            'marketing_opt_in': s.marketing_opt_in, 'interests': s.interests,
            'updated_at': s.updated_at}
       END AS preferences
FROM profiles p
LEFT JOIN history h USING (customer_id)
LEFT JOIN settings s USING (customer_id);

SELECT error('customer_360: schema ' || s) FROM (
    SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) AS s
    FROM duckdb_columns() WHERE table_name = 'customer_360')
WHERE s <> 'customer_id VARCHAR, profile STRUCT(first_name VARCHAR, last_name VARCHAR, email VARCHAR, country VARCHAR, segment VARCHAR, signup_date DATE, updated_at TIMESTAMP), order_history STRUCT(order_count BIGINT, completed_order_count BIGINT, lifetime_value DECIMAL(18,2), first_order_at TIMESTAMP, last_order_at TIMESTAMP, recent_orders STRUCT(order_id VARCHAR, ordered_at TIMESTAMP, status VARCHAR, amount DECIMAL(18,2))[]), preferences STRUCT(channel VARCHAR, "language" VARCHAR, marketing_opt_in BOOLEAN, interests VARCHAR[], updated_at TIMESTAMP)';

SELECT error('customer_360: checks failed ' || to_json(c)) FROM (
    SELECT count(*) FILTER (WHERE customer_id IS NULL OR profile IS NULL OR order_history IS NULL) AS columns_required,
           count(*) - count(DISTINCT customer_id) AS customer_id_unique,
           count(*) - (SELECT count(*) FROM profiles) AS one_row_per_profile
    FROM customer_360) AS c
WHERE columns_required + customer_id_unique + abs(one_row_per_profile) > 0;

COPY customer_360 TO '$out/customer_360.parquet';
