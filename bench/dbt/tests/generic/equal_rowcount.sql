{#- Fails when the model and `compare_model` differ in row count, one row saying by how much.
    dbt_utils' test of the same name, written here. -#}
{% test equal_rowcount(model, compare_model) %}
select difference
from (select (select count(*) from {{ model }}) - (select count(*) from {{ compare_model }}) as difference)
where difference <> 0
{% endtest %}
