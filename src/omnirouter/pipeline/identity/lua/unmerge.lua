-- Split a merged customer back along its recorded merge history, atomically.
--
-- KEYS: as resolve.lua. ARGV: 1 per-customer key stem, 2 JSON {survivor, absorbed ("" = the
-- latest merge), now}.
-- Returns the JSON of {survivor, restored_id, restored[], merge}; errors name what is wrong.
local stem = ARGV[1]
local req = cjson.decode(ARGV[2])
local survivor = req.survivor

if redis.call('EXISTS', stem .. survivor) == 0 then
  return redis.error_reply('UNKNOWN customer ' .. survivor .. ' does not exist')
end
local into = redis.call('HGET', stem .. survivor, 'merged_into')
if into then
  return redis.error_reply('MERGED customer ' .. survivor .. ' was itself merged into ' .. into ..
    '; split it from ' .. into .. ' first')
end
local merges = redis.call('LRANGE', stem .. survivor .. ':merges', 0, -1)
local index, record = nil, nil
for i = #merges, 1, -1 do
  local r = cjson.decode(merges[i])
  if req.absorbed == '' or r.absorbed == req.absorbed then index, record = i, r; break end
end
if not record then
  local what = req.absorbed == '' and 'any customer' or req.absorbed
  return redis.error_reply('NOMERGE no recorded merge of ' .. what .. ' into ' .. survivor)
end

local absorbed = record.absorbed
local restored = {}
local moved = record.moved
if type(moved) ~= 'table' then moved = {} end
for _, addr in ipairs(moved) do
  -- Only identifiers still on the survivor go back; one moved on since stays where it is.
  if redis.call('HGET', KEYS[1], addr) == survivor then
    redis.call('HSET', KEYS[1], addr, absorbed)
    redis.call('SMOVE', stem .. survivor .. ':ids', stem .. absorbed .. ':ids', addr)
    restored[#restored + 1] = addr
  end
end
redis.call('HDEL', KEYS[3], absorbed)
redis.call('HSET', stem .. absorbed, 'status', 'active', 'split_at_ms', req.now)
redis.call('HDEL', stem .. absorbed, 'merged_into', 'merged_at_ms')
redis.call('LREM', stem .. survivor .. ':merges', 1, merges[index])
local a, b = survivor, absorbed
if b < a then a, b = b, a end
redis.call('SADD', KEYS[7], a .. '|' .. b)
return cjson.encode({survivor = survivor, restored_id = absorbed, restored = restored,
                     merge = record})
