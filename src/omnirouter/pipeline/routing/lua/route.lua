-- Offer a case to the first candidate with presence and capacity, or queue it; atomically.
--
-- KEYS: 1 agents 2 load 3 offers 4 assigned 5 waiting 6 timers 7 acks 8 stats
-- ARGV: 1 queue key stem, 2 JSON {case_id, channel, request, candidates[], capacities{},
--   offer_expires, queue, previous_queue, score, timers[[kind, due]], clear_timers[kind],
--   ack_key, now}
-- Returns JSON {state: offered|queued|assigned, agent, ack (first ack of this episode)}.
-- A case already offered or assigned is left alone: no case is ever assigned twice.
local stem = ARGV[1]
local r = cjson.decode(ARGV[2])
local case_id = r.case_id

local assigned = redis.call('HGET', KEYS[4], case_id)
if assigned then
  return cjson.encode({state = 'assigned', agent = cjson.decode(assigned).agent, ack = false})
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
      return cjson.encode({state = 'offered', agent = agent, ack = false})
    end
  end
end

redis.call('ZADD', stem .. r.queue, r.score, case_id)
for _, t in ipairs(r.timers) do redis.call('ZADD', KEYS[6], t[2], t[1] .. '|' .. case_id) end
local ack = false
if r.ack_key ~= '' then ack = redis.call('SADD', KEYS[7], r.ack_key) == 1 end
return cjson.encode({state = 'queued', agent = '', ack = ack})
