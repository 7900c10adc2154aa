-- Hand a merged-away customer's case state to the survivor: mark it folded (events that still
-- arrive for it are redirected) and return everything the survivor takes over. Idempotent.
--
-- KEYS: as apply.lua, of the absorbed customer. ARGV[1]: the survivor's customer_id.
local function hash(key)
  local flat = redis.call('HGETALL', key)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end
redis.call('HSET', KEYS[1], 'folded_into', ARGV[1])
return cjson.encode({
  cases = hash(KEYS[2]),
  open_case = redis.call('HGET', KEYS[1], 'open_case') or '',
  timeline = redis.call('LRANGE', KEYS[3], 0, -1),
  threads = hash(KEYS[5]),
  profile = hash(KEYS[6]),
  contacts = redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES'),
  agents = redis.call('ZRANGE', KEYS[8], 0, -1, 'WITHSCORES'),
})
