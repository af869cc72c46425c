{#- Fails unless the model has more than `value` rows (the contracts' rowCount rules). -#}
{% test row_count_greater_than(model, value=0) %}
select row_count
from (select count(*) as row_count from {{ model }})
where row_count <= {{ value }}
{% endtest %}
