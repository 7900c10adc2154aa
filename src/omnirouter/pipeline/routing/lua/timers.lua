-- Claim the timers that are due, with a lease: a claimed timer fires again after the lease
-- unless its handler replaced or removed it, so a worker that dies mid-way loses nothing.
--
-- KEYS: as route.lua. ARGV: 1 now (ms), 2 lease (ms), 3 limit.
local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[6], tonumber(ARGV[1]) + tonumber(ARGV[2]), member)
end
return due
