-- Account traits from Salesforce, with seat counts from the product.
-- An account trait returns group_id; user_id (optional) becomes the group call's userId.
select a.id as group_id,
       min(o.owner_user) as user_id,
       a.name,
       a.industry,
       a.annual_revenue,
       count(distinct s.id) as seats,
       count(distinct l.id) filter (where l.status in ('open', 'working')) as open_leads,
       a.created_date as customer_since
from salesforce.accounts a
left join segment.users s on s.account_id = a.id
left join salesforce.leads l on l.account_id = a.id
left join (select account_id, min(id) as owner_user from segment.users group by 1) o on o.account_id = a.id
group by a.id, a.name, a.industry, a.annual_revenue, a.created_date
