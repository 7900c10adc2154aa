-- Take erased cases out of routing: offers and assignments (freeing the agent's capacity),
-- waiting requests and queue places, timers, acknowledgements and recorded decisions.
-- Atomic on the tenant's routing slot.
--
-- KEYS: as route.lua. ARGV: 1 queue key stem, 2 JSON {cases[]}, 3 "1" to erase, "0" to report.
-- Returns the number of routing entries (hash fields, set and queue members) found.
local stem, apply = ARGV[1], ARGV[3] == '1'
local ids = cjson.decode(ARGV[2]).cases
if type(ids) ~= 'table' then ids = {} end
local erased, found = {}, 0
for _, id in ipairs(ids) do erased[id] = true end

for _, id in ipairs(ids) do
  local held = redis.call('HGET', KEYS[4], id) or redis.call('HGET', KEYS[3], id)
  if held and apply then
    local a = cjson.decode(held)
    local slot = a.agent .. '|' .. a.channel
    if tonumber(redis.call('HGET', KEYS[2], slot) or '0') > 0 then
      redis.call('HINCRBY', KEYS[2], slot, -1)
    end
  end
  local request = redis.call('HGET', KEYS[5], id)
  if request then
    local q = cjson.decode(request).queue_id
    if type(q) == 'string' and redis.call('ZSCORE', stem .. q, id) then
      found = found + 1
      if apply then redis.call('ZREM', stem .. q, id) end
    end
  end
  -- 3 offers, 4 assigned, 5 waiting, 9 the recorded decision and 10 the announced cause.
  for _, k in ipairs({3, 4, 5, 9, 10}) do
    if KEYS[k] and redis.call('HEXISTS', KEYS[k], id) == 1 then
      found = found + 1
      if apply then redis.call('HDEL', KEYS[k], id) end
    end
  end
end

-- Timers are "kind|case_id", acknowledgements "case_id|opened_ms".
for _, member in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  if erased[string.match(member, '^[^|]*|(.*)$')] then
    found = found + 1
    if apply then redis.call('ZREM', KEYS[6], member) end
  end
end
local cursor = '0'
repeat
  local page = redis.call('SSCAN', KEYS[7], cursor, 'COUNT', 1000)
  cursor = page[1]
  for _, member in ipairs(page[2]) do
    if erased[string.match(member, '^(.*)|[^|]*$')] then
      found = found + 1
      if apply then redis.call('SREM', KEYS[7], member) end
    end
  end
until cursor == '0'
return found
