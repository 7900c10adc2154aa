-- Resolve a batch of events to customers, atomically, in one round trip.
--
-- KEYS: 1 owner(HASH addr->customer) 2 joins(HASH addr->n) 3 alias(HASH absorbed->survivor)
--       4 seq(STRING) 5 processed stem: HASH buckets "<stem>:<n>" event_id->result, one per
--       time slice, expired by Redis itself 6 (unused, kept for the key order)
--       7 split(SET "a|b") 8 reviews(HASH) 9 reviews_open(ZSET)
-- ARGV: 1 per-customer key stem (same hash tag as KEYS)
--       2 JSON {now, bucket_ms, buckets, max_ids, limits{kind:n}, events[{id, new, review,
--         hint, ids[[addr, kind]]}]}
-- Returns {results[], replayed[]}: one JSON result per event, and 1 where the event_id had
-- already been resolved (the stored result is returned and nothing changes).
local stem = ARGV[1]
local req = cjson.decode(ARGV[2])
local now = req.now

local function root(c)
  local hops = 0
  while true do
    local nxt = redis.call('HGET', KEYS[3], c)
    if not nxt then return c end
    c = nxt
    hops = hops + 1
    if hops > 10000 then error('alias loop at ' .. c) end
  end
end

local function exists(c) return redis.call('EXISTS', stem .. c) == 1 end
local function seq_of(c) return tonumber(redis.call('HGET', stem .. c, 'seq') or '0') end
local function limit_for(kind)
  local l = req.limits[kind]
  if l == nil or l == cjson.null then return 1e15 end
  return l
end
local function pair_key(a, b) if b < a then a, b = b, a end return a .. '|' .. b end

local function attach(c, ids, res)
  local key = stem .. c .. ':ids'
  local count = redis.call('SCARD', key)
  for _, id in ipairs(ids) do
    if count >= req.max_ids then
      res.not_attached[#res.not_attached + 1] = {id[1], 'customer ' .. c .. ' already has ' ..
        count .. ' identifiers (limit ' .. req.max_ids .. ')'}
    else
      redis.call('HSET', KEYS[1], id[1], c)
      redis.call('SADD', key, id[1])
      res.attached[#res.attached + 1] = id[1]
      count = count + 1
    end
  end
end

local function create(c, event_id)
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', stem .. c, 'seq', seq, 'status', 'active', 'created_at_ms', now,
    'created_by', event_id)
end

local function resolve_one(ev)
  local res = {customer_id = '', is_new = false, merges = {}, reviews = {}, attached = {},
               not_attached = {}, notes = {}}
  local customers, seen, known, unknown = {}, {}, {}, {}
  local function add(c)
    if not seen[c] then seen[c] = true; customers[#customers + 1] = c end
  end
  if ev.hint ~= '' then
    local c = root(ev.hint)
    if exists(c) then add(c) else
      res.notes[#res.notes + 1] = 'customer_id ' .. ev.hint .. ' is unknown; ignored'
    end
  end
  for _, id in ipairs(ev.ids) do
    local owner = redis.call('HGET', KEYS[1], id[1])
    if owner then
      local c = root(owner)
      known[#known + 1] = {id[1], id[2], c}
      add(c)
    else
      unknown[#unknown + 1] = id
    end
  end

  if #customers == 0 then
    -- A replay after the processed entry expired finds the customer it created then.
    local c = ev.new
    if exists(c) then c = root(c) else create(c, ev.id); res.is_new = true end
    res.customer_id = c
    attach(c, unknown, res)
    return res
  end

  if #customers == 1 then
    res.customer_id = customers[1]
    attach(customers[1], unknown, res)
    return res
  end

  -- Two or more known customers: one person, unless a guardrail says a person must decide.
  local primary = customers[1]
  local ordered = {}
  for i, c in ipairs(customers) do ordered[i] = c end
  table.sort(ordered, function(a, b)
    local sa, sb = seq_of(a), seq_of(b)
    if sa == sb then return a < b end
    return sa < sb
  end)
  local survivor = ordered[1]
  local k = #ordered
  local block = nil
  for i = 1, k do
    for j = i + 1, k do
      if not block and redis.call('SISMEMBER', KEYS[7], pair_key(ordered[i], ordered[j])) == 1 then
        block = {'operator_split', 'an operator split ' .. ordered[i] .. ' and ' .. ordered[j] ..
          '; merging them again needs a person'}
      end
    end
  end
  if not block then
    for _, t in ipairs(known) do
      local joins = tonumber(redis.call('HGET', KEYS[2], t[1]) or '1')
      local limit = limit_for(t[2])
      if joins + k - 1 > limit then
        block = {'max_customers_per_identifier', t[1] .. ' would join ' .. (joins + k - 1) ..
          ' customers (limit for ' .. t[2] .. ' is ' .. limit .. ')'}
        break
      end
    end
  end
  if not block then
    local total = 0
    for _, c in ipairs(ordered) do total = total + redis.call('SCARD', stem .. c .. ':ids') end
    if total > req.max_ids then
      block = {'max_identifiers_per_customer', 'the merged customer would have ' .. total ..
        ' identifiers (limit ' .. req.max_ids .. ')'}
    end
  end

  if block then
    -- Attribute the event to the sender's customer; new identifiers wait for the review.
    local addrs = {}
    for _, id in ipairs(ev.ids) do addrs[#addrs + 1] = id[1] end
    local review = {review_id = ev.review, customer_ids = ordered, resolved_to = primary,
                    guardrail = block[1], reason = block[2], identifiers = addrs,
                    event_id = ev.id, created_at_ms = now}
    redis.call('HSET', KEYS[8], ev.review, cjson.encode(review))
    redis.call('ZADD', KEYS[9], now, ev.review)
    res.reviews[1] = review
    res.customer_id = primary
    for _, id in ipairs(unknown) do
      res.not_attached[#res.not_attached + 1] = {id[1], 'held for merge review ' .. ev.review}
    end
    return res
  end

  for idx = 2, k do
    local absorbed = ordered[idx]
    local moved = redis.call('SMEMBERS', stem .. absorbed .. ':ids')
    table.sort(moved)
    for _, addr in ipairs(moved) do redis.call('HSET', KEYS[1], addr, survivor) end
    if #moved > 0 then redis.call('SADD', stem .. survivor .. ':ids', unpack(moved)) end
    redis.call('DEL', stem .. absorbed .. ':ids')
    redis.call('HSET', KEYS[3], absorbed, survivor)
    redis.call('HSET', stem .. absorbed, 'status', 'merged', 'merged_into', survivor,
      'merged_at_ms', now)
    local linking = {}
    for _, t in ipairs(known) do
      if t[3] == absorbed then linking[#linking + 1] = t[1] end
    end
    local record = {survivor = survivor, absorbed = absorbed, moved = moved, linking = linking,
                    event_id = ev.id, at_ms = now}
    redis.call('RPUSH', stem .. survivor .. ':merges', cjson.encode(record))
    res.merges[#res.merges + 1] = record
  end
  for _, t in ipairs(known) do
    local joins = tonumber(redis.call('HGET', KEYS[2], t[1]) or '1')
    redis.call('HSET', KEYS[2], t[1], joins + k - 1)
  end
  res.customer_id = survivor
  attach(survivor, unknown, res)
  return res
end

-- Processed event ids live in time-sliced hashes that Redis expires whole: no per-entry
-- bookkeeping, and memory bounded by the window, not by the traffic's history. Each slice is
-- asked about the whole batch at once (one HMGET per slice, not one HGET per event and slice).
local current = math.floor(now / req.bucket_ms)
local ids = {}
for i, ev in ipairs(req.events) do ids[i] = ev.id end
local stored_of = {}
if #ids > 0 then
  for b = current, current - req.buckets, -1 do
    -- In slices: Lua's unpack() stops at a few thousand values.
    for first = 1, #ids, 1000 do
      local last = math.min(first + 999, #ids)
      local hits = redis.call('HMGET', KEYS[5] .. ':' .. b, unpack(ids, first, last))
      for j = first, last do
        -- The newest slice first, as a lookup slice by slice would find it.
        if not stored_of[j] and hits[j - first + 1] then stored_of[j] = hits[j - first + 1] end
      end
    end
  end
end

local results, replayed, resolved_here = {}, {}, {}
local wrote = false
for i, ev in ipairs(req.events) do
  -- An id twice in one batch: the second finds what the first stored.
  local stored = resolved_here[ev.id] or stored_of[i]
  if stored then
    results[i] = stored
    replayed[i] = 1
  else
    local encoded = cjson.encode(resolve_one(ev))
    redis.call('HSET', KEYS[5] .. ':' .. current, ev.id, encoded)
    resolved_here[ev.id] = encoded
    results[i] = encoded
    replayed[i] = 0
    wrote = true
  end
end
if wrote then
  redis.call('PEXPIRE', KEYS[5] .. ':' .. current, req.bucket_ms * (req.buckets + 2))
end
return {results, replayed}
