{#- Values not matching `regex` (DuckDB's regexp_matches; anchor it) fail; nulls pass.
    GX's expect_column_values_to_match_regex, as the mesh's contracts use it. -#}
{% test matches_regex(model, column_name, regex) %}
select {{ column_name }}
from {{ model }}
where not regexp_matches({{ column_name }}, '{{ regex }}')
{% endtest %}
