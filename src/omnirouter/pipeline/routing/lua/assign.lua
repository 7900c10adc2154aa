-- Assign a case straight to an agent (a transfer to a named colleague), atomically.
--
-- KEYS: as route.lua. ARGV: 1 queue key stem, 2 JSON {case_id, agent, channel, queue, now}.
-- Returns JSON {previous} (the agent who held the case before, or "").
local stem = ARGV[1]
local r = cjson.decode(ARGV[2])
local previous = ''
local raw = redis.call('HGET', KEYS[4], r.case_id) or redis.call('HGET', KEYS[3], r.case_id)
if raw then
  local a = cjson.decode(raw)
  previous = a.agent
  local slot = a.agent .. '|' .. a.channel
  if tonumber(redis.call('HGET', KEYS[2], slot) or '0') > 0 then
    redis.call('HINCRBY', KEYS[2], slot, -1)
  end
end
local request = redis.call('HGET', KEYS[5], r.case_id)
if request then
  local q = cjson.decode(request).queue_id
  if q and q ~= cjson.null then redis.call('ZREM', stem .. q, r.case_id) end
end
redis.call('HDEL', KEYS[3], r.case_id)
redis.call('HDEL', KEYS[5], r.case_id)
for _, kind in ipairs({'offer', 'sticky', 'escalate', 'sla', 'open'}) do
  redis.call('ZREM', KEYS[6], kind .. '|' .. r.case_id)
end
redis.call('HSET', KEYS[4], r.case_id, cjson.encode({agent = r.agent, channel = r.channel,
  since = r.now, queue = r.queue}))
redis.call('HINCRBY', KEYS[2], r.agent .. '|' .. r.channel, 1)
return cjson.encode({previous = previous})
