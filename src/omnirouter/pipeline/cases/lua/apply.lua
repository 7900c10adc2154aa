-- Apply a customer's events to their cases, timeline, profile and contacts, atomically.
--
-- KEYS (one customer's hash tag): 1 state(HASH) 2 cases(HASH id->JSON) 3 timeline(LIST)
--   4 seen(ZSET event_id by time) 5 threads(HASH Message-ID->case) 6 profile(HASH)
--   7 contacts(ZSET) 8 agents(ZSET) 9 outcomes(HASH event_id->outcome JSON)
-- ARGV[1]: JSON {customer_id, tenant, entries[...]}; ARGV[2]: JSON cfg{...} (the same for every
--   call, encoded once by store.py); see store.py for the fields.
-- Returns {head JSON {folded_into, results[], contacts_in_window}, cases flat [id, doc JSON...],
--   profile flat [field, value...], timeline [entry JSON...] (newest cfg.context_n),
--   agents [id...] (most recent first)}: documents travel as the strings stored, not
--   re-encoded inside one big JSON (the script's CPU is Redis's, which is single-threaded).
--
-- Redis work per call is kept to a fixed handful of commands plus a few per event: the state
-- and profile hashes are read once, and the writes of all entries (timeline, seen, outcomes,
-- contacts, threads, profile, cases) go out as one command per key at the end, or before a
-- fold, which reads those keys itself.
--
-- Two consistency models live here, so mind them when adding code: state (open_case,
-- last_case) and agents are written through at once; timeline, seen, outcomes, contacts and
-- threads are buffered (pending_*) and mirrored for reads in *_here tables; cases in
-- touched/dirty. Code that reads a buffered key from Redis must call flush() first (as
-- apply_fold does) or read its mirror. Redis keeps a script's writes up to an error, so
-- anything written before a step that can fail must be whole on its own.
local req = cjson.decode(ARGV[1])
local cfg = cjson.decode(ARGV[2])
local customer = req.customer_id
local TRAIL_MAX = 200
local OPEN = {new = true, queued = true, offered = true, assigned = true,
              waiting_on_customer = true}

-- open_case, last_case and folded_into, read once; writes go through to Redis and here.
local st = redis.call('HMGET', KEYS[1], 'folded_into', 'open_case', 'last_case', 'erased')
if st[1] then
  return {cjson.encode({folded_into = st[1], results = {}, contacts_in_window = 0}),
          {}, {}, {}, {}}
end
if st[4] then
  -- Erased (erase_cases.lua left only this marker): an event resolved to the customer before
  -- the erasure and applied after it must not bring them back. Each entry is refused.
  local refused = {}
  for i, ev in ipairs(req.entries) do
    refused[i] = {event_id = ev.event_id, type = ev.type, case_id = '', transitions = {},
                  opened = '', reopened = '', moved_cases = {}, replayed = false,
                  error = 'customer ' .. customer .. ' was erased'}
  end
  return {cjson.encode({folded_into = '', results = refused, contacts_in_window = 0}),
          {}, {}, {}, {}}
end
local state = {open_case = st[2], last_case = st[3]}
-- Unchanged values are not written again: every write goes to the AOF and to replicas.
local function state_set(field, value)
  if state[field] == value then return end
  redis.call('HSET', KEYS[1], field, value)
  state[field] = value
end
local function state_del(field)
  if not state[field] then return end
  redis.call('HDEL', KEYS[1], field)
  state[field] = false
end

-- Cases read in this call, and the ones changed (only those are written back: a replay
-- reads a case to re-announce it but leaves it byte-for-byte as it was).
local touched, touched_order, dirty, raw_of = {}, {}, {}, {}
local function get_case(id)
  -- redis.call answers a missing field with false, not nil.
  if not id or id == '' then return nil end
  if touched[id] then return touched[id] end
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then return nil end
  local c = cjson.decode(raw)
  touched[id] = c
  raw_of[id] = raw
  touched_order[#touched_order + 1] = id
  return c
end
local function remember(c)
  if not touched[c.case_id] then touched_order[#touched_order + 1] = c.case_id end
  touched[c.case_id] = c
  dirty[c.case_id] = true
end
local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end
local function add_unique(list, value)
  if value ~= nil and value ~= '' and not contains(list, value) then list[#list + 1] = value end
end
local function arr(t) if type(t) ~= 'table' then return {} end return t end

-- effort.trail, the channel of each contact in time order, is kept as one string
-- "<at>:<channel>,<at>:<channel>,...": as a JSON array of [at, channel] pairs its 200 numbers
-- made decoding and encoding the case document (every call, on Redis's one thread) cost
-- several times all the rest. effort.trail_n counts its steps (counting the commas of a long
-- string costs about as much again). Documents stored before keep the array until touched.
local function trail_step(at, channel) return string.format('%.17g', at) .. ':' .. channel end
local function trail_steps(trail)
  if type(trail) == 'table' then return arr(trail) end
  local steps = {}
  for at, channel in string.gmatch(trail or '', '([^,:]+):([^,]+)') do
    steps[#steps + 1] = {tonumber(at), channel}
  end
  return steps
end
local function trail_text(steps)
  local parts = {}
  for i, step in ipairs(steps) do parts[i] = trail_step(step[1], step[2]) end
  return table.concat(parts, ',')
end

-- One command over a list of arguments, in slices: Lua's unpack() stops at a few thousand
-- values. Slices keep pairs together; read replies are joined in order.
local SLICE = 1000
local function call_list(cmd, key, list)
  if #list <= SLICE then return redis.call(cmd, key, unpack(list)) end
  local replies = {}
  for first = 1, #list, SLICE do
    local reply = redis.call(cmd, key, unpack(list, first, math.min(first + SLICE - 1, #list)))
    if type(reply) == 'table' then
      for _, v in ipairs(reply) do replies[#replies + 1] = v end
    end
  end
  return replies
end

-- Writes held until flush(): one command per key instead of one per entry.
local pending_timeline, pending_seen, pending_outcomes, pending_contacts = {}, {}, {}, {}
local pending_threads, threads_here, seen_here, outcome_here = {}, {}, {}, {}
local function timeline_add(entry)
  pending_timeline[#pending_timeline + 1] = cjson.encode(entry)
end
local function flush()
  if #pending_timeline > 0 then call_list('RPUSH', KEYS[3], pending_timeline) end
  if #pending_seen > 0 then call_list('ZADD', KEYS[4], pending_seen) end
  if #pending_outcomes > 0 then call_list('HSET', KEYS[9], pending_outcomes) end
  if #pending_contacts > 0 then call_list('ZADD', KEYS[7], pending_contacts) end
  if #pending_threads > 0 then call_list('HSET', KEYS[5], pending_threads) end
  pending_timeline, pending_seen, pending_outcomes, pending_contacts = {}, {}, {}, {}
  pending_threads, threads_here = {}, {}
end
local function push2(list, a, b)
  list[#list + 1] = a
  list[#list + 1] = b
end

-- The profile hash, read whole once (the context returns it anyway) and written back once.
local profile, profile_dirty, attrs, ids_list = nil, {}, nil, nil
local function load_profile()
  if profile then return end
  profile = {}
  local flat = redis.call('HGETALL', KEYS[6])
  for i = 1, #flat, 2 do profile[flat[i]] = flat[i + 1] end
end
local function profile_set(field, value)
  if profile[field] ~= value then
    profile[field] = value
    profile_dirty[field] = true
  end
end
local function profile_attrs()
  load_profile()
  if not attrs then attrs = cjson.decode(profile.attributes or '{}') end
  return attrs
end
local function profile_ids()
  load_profile()
  if not ids_list then ids_list = arr(cjson.decode(profile.identifiers or '[]')) end
  return ids_list
end
local function flush_profile()
  local flat = {}
  for field in pairs(profile_dirty) do push2(flat, field, profile[field]) end
  if #flat > 0 then call_list('HSET', KEYS[6], flat) end
  profile_dirty = {}
end

local out
local function transition(case, to, reason, ev)
  local from = case.status
  if from == to then return true end
  dirty[case.case_id] = true
  if from ~= '' and not contains(arr(cfg.transitions[from]), to) then return false end
  case.status = to
  local h = arr(case.history)
  h[#h + 1] = {from = from, to = to, at = ev.at, reason = reason, event_id = ev.event_id}
  case.history = h
  if ev.at > case.updated_at then case.updated_at = ev.at end
  if to == 'resolved' then case.resolved_at = ev.at; case.effort.resolved_at = ev.at end
  if to == 'closed' then case.closed_at = ev.at end
  if OPEN[to] then
    state_set('open_case', case.case_id)
  elseif state.open_case == case.case_id then
    state_del('open_case')
  end
  out.transitions[#out.transitions + 1] = {case_id = case.case_id, from = from, to = to,
                                           reason = reason, at = ev.at}
  timeline_add({entry_id = ev.event_id .. ':' .. case.case_id .. ':' .. to, at = ev.at,
                kind = 'system', case_id = case.case_id, system_type = 'status',
                text = 'Case ' .. case.case_id .. ': ' .. (from == '' and 'opened' or from) ..
                  ' -> ' .. to .. ' (' .. reason .. ')'})
  return true
end

local function open_case(id, ev, reason)
  local c = {case_id = id, customer_id = customer, tenant = req.tenant, status = '',
             opened_at = ev.at, updated_at = ev.at, resolved_at = 0, closed_at = 0,
             channels = {}, subject = '', queue = '', assigned_agent_id = '',
             interaction_count = 0, reopen_count = 0, history = {}, agents = {},
             story = {}, intents = {}, folded = {}, related_case_id = '',
             effort = {contacts = 0, channels = {}, switches = 0, transfers = 0,
                       first_contact_at = ev.at, first_response_at = 0, resolved_at = 0,
                       last_channel = '', trail = '', trail_n = 0}}
  remember(c)
  state_set('last_case', id)
  transition(c, 'new', reason, ev)
  out.opened = id
  return c
end

local function reopen(c, ev)
  c.reopen_count = c.reopen_count + 1
  c.resolved_at = 0
  c.effort.resolved_at = 0
  transition(c, 'new', 'customer wrote again within the reopen window', ev)
  state_set('last_case', c.case_id)
  out.reopened = c.case_id
end

local function note_thread(message_id, case_id)
  if message_id ~= '' then
    push2(pending_threads, message_id, case_id)
    threads_here[message_id] = case_id
  end
end

local function find_case_for_inbound(ev)
  for _, ref in ipairs(arr(ev.refs)) do
    local cid = threads_here[ref] or redis.call('HGET', KEYS[5], ref)
    local tc = get_case(cid)
    if tc then
      if OPEN[tc.status] then return tc end
      if tc.status == 'resolved' and ev.at - tc.resolved_at <= cfg.reopen_ms then
        reopen(tc, ev)
        return tc
      end
      break
    end
  end
  local current = get_case(state.open_case)
  if current then return current end
  local last = get_case(state.last_case)
  if last and last.status == 'resolved' then
    if ev.at - last.resolved_at <= cfg.reopen_ms then
      reopen(last, ev)
      return last
    end
    transition(last, 'closed', 'reopen window passed', ev)
  end
  local c = open_case(ev.case_new, ev, 'first contact on ' .. ev.channel)
  if last then c.related_case_id = last.case_id end
  return c
end

local function update_profile(p, identifiers)
  load_profile()
  for _, field in ipairs({'name', 'language', 'tier'}) do
    if p[field] ~= nil and p[field] ~= '' then profile_set(field, p[field]) end
  end
  local a = profile_attrs()
  local changed = false
  for k, v in pairs(p.attributes or {}) do
    if a[k] ~= v then a[k] = v; changed = true end
  end
  if changed then profile_set('attributes', cjson.encode(a)) end
  local ids = profile_ids()
  local grew = false
  for _, id in ipairs(arr(identifiers)) do
    if not contains(ids, id) then ids[#ids + 1] = id; grew = true end
  end
  if grew then profile_set('identifiers', cjson.encode(ids)) end
end

local function apply_inbound(ev)
  local case = find_case_for_inbound(ev)
  case.interaction_count = case.interaction_count + 1
  local e = case.effort
  e.contacts = e.contacts + 1
  if e.last_channel ~= '' and e.last_channel ~= ev.channel then e.switches = e.switches + 1 end
  e.last_channel = ev.channel
  -- The channel of each contact, in time order: folding a merged customer's case recounts
  -- the switches across both from it.
  local trail, n = e.trail, e.trail_n
  if type(trail) ~= 'string' or type(n) ~= 'number' then
    local steps = trail_steps(trail)
    trail, n = trail_text(steps), #steps
  end
  local step = trail_step(ev.at, ev.channel)
  trail, n = (n == 0 and step or (trail .. ',' .. step)), n + 1
  if n > TRAIL_MAX then
    trail, n = string.sub(trail, string.find(trail, ',', 1, true) + 1), n - 1
  end
  e.trail, e.trail_n = trail, n
  e.channels = arr(e.channels)
  add_unique(e.channels, ev.channel)
  case.channels = arr(case.channels)
  add_unique(case.channels, ev.channel)
  if case.subject == '' and ev.subject ~= '' then case.subject = ev.subject end
  if ev.at > case.updated_at then case.updated_at = ev.at end
  if case.status == 'waiting_on_customer' then
    transition(case, case.assigned_agent_id ~= '' and 'assigned' or 'queued',
      'customer replied', ev)
  end
  if ev.fragment ~= '' then
    local story = arr(case.story)
    story[#story + 1] = {at = ev.at, channel = ev.channel, text = ev.fragment}
    -- Keep how it started (the first two) and how it is going (the latest).
    while #story > cfg.story_max do table.remove(story, 3) end
    case.story = story
  end
  case.intents = arr(case.intents)
  for _, tag in ipairs(arr(ev.intents)) do
    local known = false
    for _, t in ipairs(case.intents) do if t.tag == tag.tag then known = true end end
    if not known then case.intents[#case.intents + 1] = tag end
  end
  note_thread(ev.message_id, case.case_id)
  timeline_add({entry_id = ev.event_id, at = ev.at, kind = 'message', direction = 'inbound',
                channel = ev.channel, case_id = case.case_id, text = ev.text,
                subject = ev.subject, attachments = ev.attachments})
  push2(pending_contacts, ev.at, ev.event_id)
  update_profile(ev.profile, ev.identifiers)
  return case
end

local function apply_outbound(ev)
  local case = get_case(ev.case_id) or get_case(state.open_case) or get_case(state.last_case)
  if ev.kind == 'delivery_status' then
    -- The dispatcher's report on a reply: a system entry, neither a reply nor a response.
    timeline_add({entry_id = ev.event_id, at = ev.at, kind = 'system', system_type = 'delivery',
                  channel = ev.channel, case_id = case and case.case_id or '', text = ev.text,
                  direction = 'outbound'})
    return case
  end
  if case then
    if case.effort.first_response_at == 0 and ev.agent_id ~= '' then
      case.effort.first_response_at = ev.at
    end
    if ev.agent_id ~= '' then
      case.agents = arr(case.agents)
      add_unique(case.agents, ev.agent_id)
      redis.call('ZADD', KEYS[8], ev.at, ev.agent_id)
    end
    if ev.at > case.updated_at then case.updated_at = ev.at end
    if OPEN[case.status] and case.status ~= 'waiting_on_customer' and ev.agent_id ~= '' then
      transition(case, 'waiting_on_customer', 'agent replied', ev)
    end
    note_thread(ev.message_id, case.case_id)
  end
  timeline_add({entry_id = ev.event_id, at = ev.at, kind = 'reply', direction = 'outbound',
                channel = ev.channel, case_id = case and case.case_id or '', text = ev.text,
                subject = ev.subject, agent_id = ev.agent_id, attachments = ev.attachments})
  return case
end

local function apply_status(ev)
  local case = get_case(ev.case_id) or get_case(state.open_case)
  if not case then
    out.error = 'no case ' .. (ev.case_id ~= '' and ev.case_id or 'open') .. ' for ' .. customer
    return nil
  end
  if ev.agent_id ~= '' and ev.agent_id ~= case.assigned_agent_id then
    if case.assigned_agent_id ~= '' then
      case.effort.transfers = case.effort.transfers + 1
      timeline_add({entry_id = ev.event_id .. ':reassign', at = ev.at, kind = 'system',
                    case_id = case.case_id, system_type = 'reassignment',
                    agent_id = ev.agent_id,
                    text = 'Case ' .. case.case_id .. ' transferred from ' ..
                      case.assigned_agent_id .. ' to ' .. ev.agent_id})
    end
    case.assigned_agent_id = ev.agent_id
    case.agents = arr(case.agents)
    add_unique(case.agents, ev.agent_id)
    redis.call('ZADD', KEYS[8], ev.at, ev.agent_id)
  end
  if ev.queue ~= '' then case.queue = ev.queue end
  if ev.to ~= '' and ev.to ~= case.status then
    if case.status == 'resolved' and ev.to == 'new' then
      reopen(case, ev)
    elseif not transition(case, ev.to, ev.reason, ev) then
      out.error = 'case ' .. case.case_id .. ' cannot go from ' .. case.status .. ' to ' .. ev.to
    end
  end
  if ev.at > case.updated_at then case.updated_at = ev.at end
  return case
end

local function apply_fold(ev)
  local x = ev.export
  local absorbed = ev.absorbed_id
  flush()  -- it reads the timeline, seen, threads and contacts as the entries before left them
  -- The cases the entries before changed, too: Redis keeps a script's writes up to an error,
  -- so a fold failing half-way must not leave their timeline and outcomes without their case
  -- (the retry would take them for replays). Still dirty: written again at the end.
  local before = {}
  for _, id in ipairs(touched_order) do
    if dirty[id] then push2(before, id, cjson.encode(touched[id])) end
  end
  if #before > 0 then call_list('HSET', KEYS[2], before) end
  -- Timeline: the absorbed customer's entries join, in time order, without duplicates.
  local merged = {}
  for _, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do merged[#merged + 1] = raw end
  for _, raw in ipairs(arr(x.timeline)) do
    local entry = cjson.decode(raw)
    if not redis.call('ZSCORE', KEYS[4], entry.entry_id) then
      merged[#merged + 1] = raw
      redis.call('ZADD', KEYS[4], entry.at, entry.entry_id)
      seen_here[entry.entry_id] = true
    end
  end
  local decoded = {}
  for i, raw in ipairs(merged) do decoded[i] = {cjson.decode(raw).at or 0, i, raw} end
  table.sort(decoded, function(a, b)
    if a[1] == b[1] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  redis.call('DEL', KEYS[3])
  for _, d in ipairs(decoded) do redis.call('RPUSH', KEYS[3], d[3]) end

  local survivor_open = get_case(state.open_case)
  local absorbed_open = x.open_case or ''
  local into = ''
  for id, raw in pairs(x.cases or {}) do
    local doc = cjson.decode(raw)
    doc.customer_id = customer
    if id == absorbed_open and survivor_open then
      local s = survivor_open
      local e, a = s.effort, doc.effort
      e.contacts = e.contacts + a.contacts
      e.transfers = e.transfers + a.transfers
      local trail = trail_steps(e.trail)
      for _, step in ipairs(trail_steps(a.trail)) do trail[#trail + 1] = step end
      -- Time order, ties by channel: Lua's sort is not stable, and the result must not depend
      -- on which of two same-millisecond contacts was applied first (a replay compares).
      table.sort(trail, function(p, q)
        if p[1] ~= q[1] then return p[1] < q[1] end
        return p[2] < q[2]
      end)
      while #trail > TRAIL_MAX do table.remove(trail, 1) end
      e.trail, e.trail_n = trail_text(trail), #trail
      -- With the whole trail at hand, count switches across both cases in time order; a trail
      -- cut at TRAIL_MAX falls back to adding the two counts.
      e.switches = a.switches + e.switches
      if #trail == e.contacts then
        local switches, previous = 0, ''
        for _, step in ipairs(trail) do
          if previous ~= '' and previous ~= step[2] then switches = switches + 1 end
          previous = step[2]
        end
        e.switches = switches
        -- Channels in the order they were first used, across both cases: the same whichever
        -- came first, the fold or a message of the survivor's (live and replay agree).
        local in_effort, in_case = {}, {}
        for _, step in ipairs(trail) do
          add_unique(in_effort, step[2])
          add_unique(in_case, step[2])
        end
        e.channels = in_effort
        s.channels = in_case
      end
      if #trail > 0 then e.last_channel = trail[#trail][2] end
      e.channels = arr(e.channels)
      for _, ch in ipairs(arr(a.channels)) do add_unique(e.channels, ch) end
      if a.first_contact_at > 0 and a.first_contact_at < e.first_contact_at then
        e.first_contact_at = a.first_contact_at
      end
      if a.first_response_at > 0 and (e.first_response_at == 0 or
          a.first_response_at < e.first_response_at) then
        e.first_response_at = a.first_response_at
      end
      s.channels = arr(s.channels)
      for _, ch in ipairs(arr(doc.channels)) do add_unique(s.channels, ch) end
      s.interaction_count = s.interaction_count + doc.interaction_count
      s.agents = arr(s.agents)
      for _, ag in ipairs(arr(doc.agents)) do add_unique(s.agents, ag) end
      s.intents = arr(s.intents)
      for _, tag in ipairs(arr(doc.intents)) do
        local known = false
        for _, t in ipairs(s.intents) do if t.tag == tag.tag then known = true end end
        if not known then s.intents[#s.intents + 1] = tag end
      end
      local story = arr(s.story)
      for _, f in ipairs(arr(doc.story)) do story[#story + 1] = f end
      table.sort(story, function(p, q) return p.at < q.at end)
      while #story > cfg.story_max do table.remove(story, 3) end
      s.story = story
      if s.subject == '' then s.subject = doc.subject end
      s.folded = arr(s.folded)
      add_unique(s.folded, doc.case_id)
      if doc.opened_at < s.opened_at then s.opened_at = doc.opened_at end
      local before = doc.status
      doc.status = 'closed'
      doc.closed_at = ev.at
      local h = arr(doc.history)
      h[#h + 1] = {from = before, to = 'closed', at = ev.at,
                   reason = 'folded into case ' .. s.case_id, event_id = ev.event_id}
      doc.history = h
      out.transitions[#out.transitions + 1] = {case_id = doc.case_id, from = before,
        to = 'closed', reason = 'folded into case ' .. s.case_id, at = ev.at}
      into = s.case_id
    elseif id == absorbed_open then
      state_set('open_case', id)
      into = id
    end
    remember(doc)
    out.moved_cases[#out.moved_cases + 1] = id
  end
  for mid, cid in pairs(x.threads or {}) do
    redis.call('HSET', KEYS[5], mid, (cid == absorbed_open and into ~= '') and into or cid)
  end
  for field, value in pairs(x.profile or {}) do
    if field == 'attributes' then
      local mine = profile_attrs()
      for k, v in pairs(cjson.decode(value)) do if mine[k] == nil then mine[k] = v end end
      profile_set('attributes', cjson.encode(mine))
    elseif field == 'identifiers' then
      local mine = profile_ids()
      for _, a in ipairs(arr(cjson.decode(value))) do add_unique(mine, a) end
      profile_set('identifiers', cjson.encode(mine))
    else
      load_profile()
      if profile[field] == nil then profile_set(field, value) end
    end
  end
  for i = 1, #arr(x.agents), 2 do redis.call('ZADD', KEYS[8], 'GT', x.agents[i + 1], x.agents[i]) end
  for i = 1, #arr(x.contacts), 2 do redis.call('ZADD', KEYS[7], x.contacts[i + 1], x.contacts[i]) end
  local target = into ~= '' and get_case(into) or nil
  timeline_add({entry_id = ev.event_id, at = ev.at, kind = 'system', system_type = 'merge',
                case_id = into,
                text = 'Customer ' .. absorbed .. ' was merged into this customer (' ..
                  ev.reason .. ')' .. (absorbed_open ~= '' and into ~= '' and into ~= absorbed_open
                    and ('; case ' .. absorbed_open .. ' folded into case ' .. into) or '')})
  return target
end

local results = {}
local latest = 0
-- What Redis knows of the batch's event ids, in two commands: the stored outcome (a replay
-- re-announces it) and whether it was applied to a customer since folded into this one.
local ids = {}
for i, ev in ipairs(req.entries) do ids[i] = ev.event_id end
local stored_of, seen_of = {}, {}
if #ids > 0 then
  stored_of = call_list('HMGET', KEYS[9], ids)
  seen_of = call_list('ZMSCORE', KEYS[4], ids)
end
for i, ev in ipairs(req.entries) do
  if ev.at > latest then latest = ev.at end
  -- An id twice in one batch: the second finds what the first stored.
  local stored = outcome_here[ev.event_id] or stored_of[i]
  if stored then
    local r = cjson.decode(stored)
    r.replayed = true
    get_case(r.case_id)
    -- Every case it moved (e.g. the old case it closed), so a replay re-announces each one.
    for _, t in ipairs(arr(r.transitions)) do get_case(t.case_id) end
    results[i] = r
  elseif seen_of[i] or seen_here[ev.event_id] then
    -- Applied to a customer since folded into this one: its entry came over with the fold.
    results[i] = {event_id = ev.event_id, type = ev.type, case_id = '', transitions = {},
                  opened = '', reopened = '', moved_cases = {}, error = '', replayed = true}
  else
    out = {transitions = {}, moved_cases = {}, opened = '', reopened = ''}
    local case
    if ev.type == 'inbound' then case = apply_inbound(ev)
    elseif ev.type == 'outbound' then case = apply_outbound(ev)
    elseif ev.type == 'status' then case = apply_status(ev)
    elseif ev.type == 'fold' then case = apply_fold(ev)
    elseif ev.type == 'profile' then update_profile(ev.profile, {})
    elseif ev.type == 'note' then
      -- An internal note: on the timeline for agents, never sent to the customer.
      case = get_case(ev.case_id)
      if case then
        timeline_add({entry_id = ev.event_id, at = ev.at, kind = 'system', system_type = 'note',
                      case_id = case.case_id, agent_id = ev.agent_id, text = ev.text})
      else
        out.error = 'no case ' .. ev.case_id .. ' for ' .. customer
      end
    end
    if case then dirty[case.case_id] = true end
    local r = {event_id = ev.event_id, type = ev.type, case_id = case and case.case_id or '',
               transitions = out.transitions, opened = out.opened, reopened = out.reopened,
               moved_cases = out.moved_cases, error = out.error or '', replayed = false}
    if r.error == '' then
      local encoded = cjson.encode(r)
      push2(pending_outcomes, ev.event_id, encoded)
      push2(pending_seen, ev.at, ev.event_id)
      outcome_here[ev.event_id] = encoded
      seen_here[ev.event_id] = true
    end
    results[i] = r
  end
end
flush()
if profile then flush_profile() end

local cases_flat, changed = {}, {}
for _, id in ipairs(touched_order) do
  if dirty[id] then
    raw_of[id] = cjson.encode(touched[id])
    push2(changed, id, raw_of[id])
  end
  push2(cases_flat, id, raw_of[id])
end
if #changed > 0 then call_list('HSET', KEYS[2], changed) end
-- Caps and expiry: the timeline keeps its newest entries; idempotency memory is bounded too.
redis.call('LTRIM', KEYS[3], -cfg.timeline_max, -1)
local overflow = redis.call('ZCARD', KEYS[4]) - cfg.seen_max
if overflow > 0 then
  local old = redis.call('ZRANGE', KEYS[4], 0, overflow - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, overflow - 1)
  call_list('HDEL', KEYS[9], old)  -- in slices: a fold can trim thousands at once
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', latest - cfg.contacts_window_ms * 4)
-- Expiry (all but state and cases): set again only once a key's time to live has run down
-- by more than a hundredth of it, or is longer than the setting now says. Each EXPIRE is a
-- write that goes to the AOF and to replicas: on every call it was an eighth of what the
-- pipeline wrote there.
for k = 3, 9 do
  local left = redis.call('TTL', KEYS[k])
  if left == -1 or (left >= 0 and (left < cfg.ttl_refresh_below_s or left > cfg.ttl_s)) then
    redis.call('EXPIRE', KEYS[k], cfg.ttl_s)
  end
end

local newest = redis.call('ZREVRANGE', KEYS[7], 0, 0, 'WITHSCORES')
local horizon = (newest[2] and tonumber(newest[2]) or latest) - cfg.contacts_window_ms
local profile_flat
if profile then
  profile_flat = {}
  for field, value in pairs(profile) do push2(profile_flat, field, value) end
else
  profile_flat = redis.call('HGETALL', KEYS[6])
end
return {
  cjson.encode({folded_into = '', results = results,
                contacts_in_window = redis.call('ZCOUNT', KEYS[7], horizon, '+inf')}),
  cases_flat,
  profile_flat,
  redis.call('LRANGE', KEYS[3], -cfg.context_n, -1),
  redis.call('ZREVRANGE', KEYS[8], 0, 9),
}
