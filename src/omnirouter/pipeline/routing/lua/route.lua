-- Offer a case to the first candidate with presence and capacity, or queue it; atomically.
--
-- KEYS: 1 agents 2 load 3 offers 4 assigned 5 waiting 6 timers 7 acks 8 stats 9 routed
--   10 announced
-- ARGV: 1 queue key stem, 2 JSON {case_id, cause, repeatable, replay_only, channel, request,
--   candidates[], capacities{}, offer_expires, queue, previous_queue, score,
--   timers[[kind, due]], clear_timers[kind], ack_key, now}
-- Returns JSON {state: offered|queued|assigned|stale, agent, ack (first ack of this episode),
--   already (nothing new to announce), replay (this cause's decision, made before)}.
-- A case already offered or assigned is left alone: no case is ever assigned twice.
local stem = ARGV[1]
local r = cjson.decode(ARGV[2])
local case_id = r.case_id

local assigned = redis.call('HGET', KEYS[4], case_id)
if assigned then
  return cjson.encode({state = 'assigned', agent = cjson.decode(assigned).agent, ack = false})
end
-- A repeatable cause (a stream event) again: its batch was redelivered after a crash. Unless
-- its announcement is known to be on Kafka, hand back the decision made then, to be announced
-- again with the same event ids, instead of deciding anew.
local previous = r.repeatable and redis.call('HGET', KEYS[9], case_id)
if previous then
  local p = cjson.decode(previous)
  if p.cause == r.cause then
    if redis.call('HGET', KEYS[10], case_id) == r.cause then
      return cjson.encode({state = p.state, agent = p.agent, ack = false, already = true})
    end
    p.replay = true
    return cjson.encode(p)
  end
end
if r.replay_only then
  return cjson.encode({state = 'stale', agent = '', ack = false, already = true})
end
local offer = redis.call('HGET', KEYS[3], case_id)
if offer then
  return cjson.encode({state = 'offered', agent = cjson.decode(offer).agent, ack = false,
                       already = true})
end

for _, kind in ipairs(r.clear_timers) do redis.call('ZREM', KEYS[6], kind .. '|' .. case_id) end
if r.previous_queue ~= '' and r.previous_queue ~= r.queue then
  redis.call('ZREM', stem .. r.previous_queue, case_id)
end
redis.call('HSET', KEYS[5], case_id, r.request)

for _, agent in ipairs(r.candidates) do
  local raw = redis.call('HGET', KEYS[1], agent)
  if raw then
    local a = cjson.decode(raw)
    local slot = agent .. '|' .. r.channel
    local used = tonumber(redis.call('HGET', KEYS[2], slot) or '0')
    if a.presence == 'available' and used < (r.capacities[agent] or 0) then
      redis.call('HINCRBY', KEYS[2], slot, 1)
      redis.call('HSET', KEYS[3], case_id, cjson.encode({agent = agent, channel = r.channel,
        expires = r.offer_expires, queue = r.queue, offered_at = r.now}))
      redis.call('ZADD', KEYS[6], r.offer_expires, 'offer|' .. case_id)
      redis.call('ZREM', stem .. r.queue, case_id)
      local decided = cjson.encode({state = 'offered', agent = agent, ack = false,
                                    cause = r.cause})
      redis.call('HSET', KEYS[9], case_id, decided)
      return decided
    end
  end
end

redis.call('ZADD', stem .. r.queue, r.score, case_id)
for _, t in ipairs(r.timers) do redis.call('ZADD', KEYS[6], t[2], t[1] .. '|' .. case_id) end
local ack = false
if r.ack_key ~= '' then ack = redis.call('SADD', KEYS[7], r.ack_key) == 1 end
local decided = cjson.encode({state = 'queued', agent = '', ack = ack, cause = r.cause})
redis.call('HSET', KEYS[9], case_id, decided)
return decided
