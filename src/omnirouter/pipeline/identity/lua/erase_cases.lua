-- Erase one customer's cases, timeline, profile and everything else kept on its hash slot.
--
-- KEYS: as apply.lua (every per-customer key). ARGV: 1 "1" to erase, "0" to only report;
-- 2 how long (seconds) the erased marker stays.
-- Returns JSON {cases[] (case ids), entries[] (timeline entry ids), events[] (event ids applied
-- to the customer), keys (how many of its keys exist)}.
local apply = ARGV[1] == '1'
local entries = {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local ok, entry = pcall(cjson.decode, raw)
  entries[#entries + 1] = (ok and type(entry) == 'table' and entry.entry_id) or raw
end
local result = {
  cases = redis.call('HKEYS', KEYS[2]),
  entries = entries,
  events = redis.call('ZRANGE', KEYS[4], 0, -1),
  keys = redis.call('EXISTS', unpack(KEYS)),
}
if apply then
  redis.call('DEL', unpack(KEYS))
  -- The only trace: no data, the customer id in the key name only, for a bounded time. An
  -- event already resolved to this customer and applied after the erasure (it was in flight,
  -- or the case worker lagged) finds it and is refused instead of recreating the customer.
  redis.call('HSET', KEYS[1], 'erased', '1')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return cjson.encode(result)
