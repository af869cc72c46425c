{#- Values whose length is not `length` fail; nulls pass.
    GX's expect_column_value_lengths_to_equal, as the mesh's contracts use it. -#}
{% test length_equals(model, column_name, length) %}
select {{ column_name }}
from {{ model }}
where length({{ column_name }}) <> {{ length }}
{% endtest %}
