{{ config(alias=var('customer_traits_alias', 'customer_traits'), tags=['after_dbt']) }}
select 'u' || g as user_id, g * 10 as lifetime_value, g % 2 = 0 as is_vip
from generate_series(1, {{ var('customers', 3) }}) as g
