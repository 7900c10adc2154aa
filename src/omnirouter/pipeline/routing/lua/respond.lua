-- An agent accepts or declines an offer, or the offer expires; atomically.
--
-- KEYS: as route.lua. ARGV: 1 queue key stem, 2 JSON {case_id, agent, action, now}.
-- Returns JSON {state, agent, request, error}.
local stem = ARGV[1]
local r = cjson.decode(ARGV[2])
local raw = redis.call('HGET', KEYS[3], r.case_id)
if not raw then
  local assigned = redis.call('HGET', KEYS[4], r.case_id)
  if assigned then
    return cjson.encode({state = 'assigned', agent = cjson.decode(assigned).agent,
                         error = 'case is already assigned'})
  end
  return cjson.encode({state = 'none', error = 'no open offer for this case'})
end
local offer = cjson.decode(raw)
if r.action ~= 'expire' and offer.agent ~= r.agent then
  return cjson.encode({state = 'offered', agent = offer.agent,
                       error = 'the offer is for another agent'})
end
local request = redis.call('HGET', KEYS[5], r.case_id) or ''
if r.action == 'accept' then
  if r.now > offer.expires then
    return cjson.encode({state = 'offered', agent = offer.agent, error = 'the offer has expired'})
  end
  redis.call('HDEL', KEYS[3], r.case_id)
  redis.call('HSET', KEYS[4], r.case_id, cjson.encode({agent = offer.agent,
    channel = offer.channel, since = r.now, queue = offer.queue}))
  redis.call('HDEL', KEYS[5], r.case_id)
  redis.call('ZREM', stem .. offer.queue, r.case_id)
  for _, kind in ipairs({'offer', 'sticky', 'escalate', 'sla', 'open'}) do
    redis.call('ZREM', KEYS[6], kind .. '|' .. r.case_id)
  end
  return cjson.encode({state = 'assigned', agent = offer.agent, request = request,
                       error = ''})
end
-- Declined or expired: the reservation goes back and the case is routed again.
redis.call('HDEL', KEYS[3], r.case_id)
redis.call('HINCRBY', KEYS[2], offer.agent .. '|' .. offer.channel, -1)
redis.call('ZREM', KEYS[6], 'offer|' .. r.case_id)
return cjson.encode({state = 'released', agent = offer.agent, request = request, error = ''})
