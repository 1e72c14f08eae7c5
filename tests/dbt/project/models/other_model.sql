select 'u1' as user_id, 1 as n
