-- A case leaves routing (resolved, closed, or handed elsewhere): free the agent, forget the case.
--
-- KEYS: as route.lua. ARGV: 1 queue key stem, 2 JSON {case_id, now}.
-- Returns JSON {agent, handled_s, queue}.
local stem = ARGV[1]
local r = cjson.decode(ARGV[2])
local agent, handled, queue = '', 0, ''
local raw = redis.call('HGET', KEYS[4], r.case_id) or redis.call('HGET', KEYS[3], r.case_id)
if raw then
  local a = cjson.decode(raw)
  agent, queue = a.agent, a.queue or ''
  local slot = a.agent .. '|' .. a.channel
  if tonumber(redis.call('HGET', KEYS[2], slot) or '0') > 0 then
    redis.call('HINCRBY', KEYS[2], slot, -1)
  end
  if a.since then
    handled = math.max(0, (r.now - a.since) / 1000)
    local stats = cjson.decode(redis.call('HGET', KEYS[8], queue) or '{"avg_handle_s":0,"n":0}')
    -- Exponentially weighted: recent handling times count most.
    if stats.n == 0 then stats.avg_handle_s = handled
    else stats.avg_handle_s = stats.avg_handle_s * 0.8 + handled * 0.2 end
    stats.n = stats.n + 1
    redis.call('HSET', KEYS[8], queue, cjson.encode(stats))
  end
  local agent_raw = redis.call('HGET', KEYS[1], a.agent)
  if agent_raw then
    local state = cjson.decode(agent_raw)
    state.idle_since = r.now
    redis.call('HSET', KEYS[1], a.agent, cjson.encode(state))
  end
end
local request = redis.call('HGET', KEYS[5], r.case_id)
if request then
  local q = cjson.decode(request).queue_id
  if q and q ~= cjson.null then redis.call('ZREM', stem .. q, r.case_id) end
end
redis.call('HDEL', KEYS[3], r.case_id)
redis.call('HDEL', KEYS[4], r.case_id)
redis.call('HDEL', KEYS[5], r.case_id)
redis.call('HDEL', KEYS[9], r.case_id)
redis.call('HDEL', KEYS[10], r.case_id)
for _, kind in ipairs({'offer', 'sticky', 'escalate', 'sla', 'open'}) do
  redis.call('ZREM', KEYS[6], kind .. '|' .. r.case_id)
end
return cjson.encode({agent = agent, handled_s = handled, queue = queue})
