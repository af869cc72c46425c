{#- Rows where `expression` is false fail the test (a null result passes, as in SQL checks).
    On a column: `<column> <expression>`, e.g. ">= 0". dbt_utils' test of the same name,
    written here: the project installs no packages at run time. -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not ({{ column_name ~ ' ' if column_name is not none }}{{ expression }})
{% endtest %}
