-- Create or update an agent and their presence, atomically with their idle clock.
--
-- KEYS: as route.lua. ARGV: 1 JSON {agent_id, presence (or ''), profile (or null), now}.
-- Returns the agent's JSON.
local r = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], r.agent_id)
local a
if raw then a = cjson.decode(raw) else
  a = {agent_id = r.agent_id, presence = 'offline', skills = {}, languages = {},
       capacity = {}, idle_since = r.now}
end
if type(r.profile) == 'table' then
  for _, field in ipairs({'name', 'skills', 'languages', 'capacity'}) do
    if r.profile[field] ~= nil then a[field] = r.profile[field] end
  end
end
if r.presence ~= '' and r.presence ~= a.presence then
  if r.presence == 'available' then a.idle_since = r.now end
  a.presence = r.presence
end
local encoded = cjson.encode(a)
redis.call('HSET', KEYS[1], r.agent_id, encoded)
return encoded
