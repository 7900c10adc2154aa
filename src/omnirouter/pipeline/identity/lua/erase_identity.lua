-- Erase a customer from identity: the canonical customer and every customer merged into it,
-- their identifiers, merge history and operator splits. Atomic on the tenant's identity slot.
--
-- KEYS: as resolve.lua. ARGV: 1 per-customer key stem, 2 customer_id (any id of the person:
-- a merged-away id leads to its survivor), 3 "1" to erase, "0" to only report what would go.
-- Returns JSON {found, root, customers[], addresses[], merges, splits, keys (per-customer keys
-- that exist)}. The addresses go back
-- to the caller (to clean the keys named after them) and are never published.
local stem, asked, apply = ARGV[1], ARGV[2], ARGV[3] == '1'

local root, hops = asked, 0
while true do
  local nxt = redis.call('HGET', KEYS[3], root)
  if not nxt then break end
  root = nxt
  hops = hops + 1
  if hops > 10000 then error('alias loop at ' .. root) end
end
if redis.call('EXISTS', stem .. root) == 0 then
  return cjson.encode({found = false})
end

-- The person: the root and, transitively, everyone its merge history absorbed.
local group, customers, merges = {[root] = true}, {root}, 0
local candidates, seen_addr = {}, {}
local function candidate(addr)
  if type(addr) == 'string' and not seen_addr[addr] then
    seen_addr[addr] = true
    candidates[#candidates + 1] = addr
  end
end
local i = 1
while i <= #customers do
  local c = customers[i]
  i = i + 1
  for _, addr in ipairs(redis.call('SMEMBERS', stem .. c .. ':ids')) do candidate(addr) end
  for _, raw in ipairs(redis.call('LRANGE', stem .. c .. ':merges', 0, -1)) do
    merges = merges + 1
    local r = cjson.decode(raw)
    for _, list in ipairs({r.moved, r.linking}) do
      if type(list) == 'table' then for _, addr in ipairs(list) do candidate(addr) end end
    end
    if type(r.absorbed) == 'string' and not group[r.absorbed] then
      group[r.absorbed] = true
      customers[#customers + 1] = r.absorbed
    end
  end
end

-- Only identifiers still owned by the person go: one an unmerge gave back to someone else
-- belongs to that customer now.
local addresses = {}
for _, addr in ipairs(candidates) do
  local owner = redis.call('HGET', KEYS[1], addr)
  if owner and group[owner] then addresses[#addresses + 1] = addr end
end
table.sort(addresses)

local splits = {}
for _, pair in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local a, b = string.match(pair, '^(.*)|(.*)$')
  if group[a] or group[b] then splits[#splits + 1] = pair end
end

local keys = 0
for _, c in ipairs(customers) do
  keys = keys + redis.call('EXISTS', stem .. c, stem .. c .. ':ids', stem .. c .. ':merges')
end

if apply then
  for _, addr in ipairs(addresses) do
    redis.call('HDEL', KEYS[1], addr)
    redis.call('HDEL', KEYS[2], addr)
  end
  for _, c in ipairs(customers) do
    redis.call('HDEL', KEYS[3], c)
    redis.call('DEL', stem .. c, stem .. c .. ':ids', stem .. c .. ':merges')
  end
  for _, pair in ipairs(splits) do redis.call('SREM', KEYS[7], pair) end
end
return cjson.encode({found = true, root = root, customers = customers, addresses = addresses,
                     merges = merges, splits = #splits, keys = keys})
