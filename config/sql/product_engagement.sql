-- Product usage per user from Segment's tracks table, with the user's plan.
select u.id as user_id,
       u.plan,
       count(t.id) as events_90_days,
       count(t.id) filter (where t.event = 'Report Created') as reports_created,
       max(t.timestamp) as last_seen_at
from segment.users u
left join segment.tracks t on t.user_id = u.id
group by u.id, u.plan
