"""The Lua scripts of the Redis store: each store write runs as one atomic script.

Every script gets one key, the store's base (``{prefix}:``), and builds every key it
touches from it, so all of a store's keys share one hash tag and one Cluster slot.
Times travel as the strings Python made (``repr`` of a float) and are stored as they came:
Lua's own number formatting keeps only 14 digits.

Outbox layout (``m`` is an item's member: its sequence number, 12 digits, then its key):
``ob:<key>`` hash of one item; ``lane:<lane>`` ZSET of a lane's pending items by queue
time; ``heads`` hash lane -> the member offered for that lane; ``ready:1`` / ``ready:0``
ZSETs of offered heads (IVR steps / the rest) scored by the time they are next due, a lease
being a later due time; ``obs:<status>`` and ``oball`` ZSETs by commit time for listings.

Retention: ``convupd`` ZSET of conversation keys by the time they were last written (the
purge drops those idle past their retention that have no timer); ``idemexp`` ZSET of
idempotency keys by expiry; ``hitkeys`` and ``slotkeys`` sets name the ``hits:`` and
``slot:`` ZSETs to trim. The ``optouts`` hash holds opted-out contacts only.
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts that touch the outbox.
OUTBOX_LIB = """
local base = KEYS[1]

local function promote(lane)
    local lk = base .. 'lane:' .. lane
    local head = redis.call('ZRANGE', lk, 0, 0)[1]
    local cur = redis.call('HGET', base .. 'heads', lane)
    if head == cur then return end
    if cur then
        redis.call('ZREM', base .. 'ready:1', cur)
        redis.call('ZREM', base .. 'ready:0', cur)
    end
    if head then
        local v = redis.call('HMGET', base .. 'ob:' .. string.sub(head, 13), 'prio', 'next_at')
        redis.call('ZADD', base .. 'ready:' .. v[1], v[2], head)
        redis.call('HSET', base .. 'heads', lane, head)
    else
        redis.call('HDEL', base .. 'heads', lane)
    end
end

local function set_status(h, m, old, new)
    if old == new then return end
    local created = redis.call('HGET', h, 'created')
    redis.call('ZREM', base .. 'obs:' .. old, m)
    redis.call('ZADD', base .. 'obs:' .. new, created, m)
    redis.call('HSET', h, 'status', new)
end
"""

# ARGV: idempotency key, response blob, ttl ms, now, expires,
#   conversation key ('' for none), data, status, expected version,
#   timer key ('' for none), timer due ('' clears), timer seq,
#   #calls, #hits, #opt-outs, #limits, then 6 per call (key, payload, lane, prio, next_at,
#   hold: the end of its claim when it may be written claimed for the committer if its lane
#   has nothing pending, else ''), one per hit, 2 per opt-out (contact, '1' or '0'), 3 per
#   limit (hit key, window start, how many hits may be stored already).
# Returns {0, stored blob} when the key is taken, {2, version} on a version conflict,
# {3, hit key} when a limit would be broken, {1, held key, ...} when written.
COMMIT = (
    OUTBOX_LIB
    + """
local idem = base .. 'idem:' .. ARGV[1]
local stored = redis.call('GET', idem)
if stored then return {0, stored} end
local now = ARGV[4]
local conv = ARGV[6]
local version, old = 0, nil
if conv ~= '' then
    local v = redis.call('HMGET', base .. 'conv:' .. conv, 'version', 'status')
    version, old = tonumber(v[1] or '0'), v[2]
    if version ~= tonumber(ARGV[9]) then return {2, version} end
end
local ncalls, nhits, nopts = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local l = 17 + 6 * ncalls + nhits + 2 * nopts
for _ = 1, tonumber(ARGV[16]) do
    local stored_hits = redis.call('ZCOUNT', base .. 'hits:' .. ARGV[l], ARGV[l + 1], '+inf')
    if stored_hits > tonumber(ARGV[l + 2]) then return {3, ARGV[l]} end
    l = l + 3
end
redis.call('SET', idem, ARGV[2], 'NX', 'PX', ARGV[3])
redis.call('ZADD', base .. 'idemexp', ARGV[5], ARGV[1])
local i = 17
local result = {1}
for _ = 1, ncalls do
    local key, payload, lane, prio, next_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
        ARGV[i + 4]
    local hold = ARGV[i + 5]
    i = i + 6
    local h = base .. 'ob:' .. key
    if redis.call('EXISTS', h) == 0 then
        if hold ~= '' and redis.call('EXISTS', base .. 'lane:' .. lane) == 0 then
            next_at = hold
            result[#result + 1] = key
        end
        local seq = redis.call('INCR', base .. 'seq')
        local m = string.format('%012d', seq) .. key
        redis.call('HSET', h, 'payload', payload, 'attempts', 0, 'status', 'pending',
            'created', now, 'enqueued', now, 'next_at', next_at, 'lane', lane,
            'prio', prio, 'm', m)
        redis.call('ZADD', base .. 'lane:' .. lane, now, m)
        redis.call('ZADD', base .. 'obs:pending', now, m)
        redis.call('ZADD', base .. 'oball', now, m)
        promote(lane)
    end
end
for _ = 1, nhits do
    local id = redis.call('INCR', base .. 'seq')
    redis.call('ZADD', base .. 'hits:' .. ARGV[i], now, id)
    redis.call('SADD', base .. 'hitkeys', ARGV[i])
    i = i + 1
end
for _ = 1, nopts do
    -- An opt-in mark reads as no mark at all: the hash holds the opted-out contacts only.
    if ARGV[i + 1] == '1' then redis.call('HSET', base .. 'optouts', ARGV[i], '1')
    else redis.call('HDEL', base .. 'optouts', ARGV[i]) end
    i = i + 2
end
if conv ~= '' then
    redis.call('HSET', base .. 'conv:' .. conv, 'data', ARGV[7], 'version', version + 1,
        'status', ARGV[8])
    -- Read with the version above (nothing in between writes it); a status kept keeps
    -- the conversation in its set.
    if old ~= ARGV[8] then
        if old then redis.call('SREM', base .. 'convs:' .. old, conv) end
        redis.call('SADD', base .. 'convs:' .. ARGV[8], conv)
    end
    redis.call('ZADD', base .. 'convupd', now, conv)
end
if ARGV[10] ~= '' then
    if ARGV[11] == '' then
        redis.call('ZREM', base .. 'timers', ARGV[10])
        redis.call('HDEL', base .. 'timerdata', ARGV[10])
    else
        redis.call('ZADD', base .. 'timers', ARGV[11], ARGV[10])
        redis.call('HSET', base .. 'timerdata', ARGV[10], ARGV[11] .. ' ' .. ARGV[12])
    end
end
return result
"""
)

# ARGV: idempotency key, conversation key ('' with '0' next), '1' when there is one,
#   contact ('' with '0' next), '1' when there is one, then 2 per hit count (hit key, since).
# Returns {stored blob, conversation data, its version, opt-out mark, count, ...}, '' for
# what is missing; all read in one step, so at one moment.
SNAPSHOT = """
local base = KEYS[1]
local out = {redis.call('GET', base .. 'idem:' .. ARGV[1]) or '', '', '', ''}
if ARGV[3] == '1' then
    local v = redis.call('HMGET', base .. 'conv:' .. ARGV[2], 'data', 'version')
    out[2], out[3] = v[1] or '', v[2] or ''
end
if ARGV[5] == '1' then
    out[4] = redis.call('HGET', base .. 'optouts', ARGV[4]) or ''
end
for i = 6, #ARGV, 2 do
    out[#out + 1] = redis.call('ZCOUNT', base .. 'hits:' .. ARGV[i], ARGV[i + 1], '+inf')
end
return out
"""

# ARGV: now, lease end, limit. Returns the offered items, IVR steps first, each as
# {payload, attempts, status, last_error, created, enqueued}.
CLAIM_OUTBOX = (
    OUTBOX_LIB
    + """
local out = {}
local limit = tonumber(ARGV[3])
for _, prio in ipairs({'1', '0'}) do
    if #out >= limit then break end
    local rk = base .. 'ready:' .. prio
    local ms = redis.call('ZRANGEBYSCORE', rk, '-inf', ARGV[1], 'LIMIT', 0, limit - #out)
    for _, m in ipairs(ms) do
        local h = base .. 'ob:' .. string.sub(m, 13)
        redis.call('ZADD', rk, ARGV[2], m)
        redis.call('HSET', h, 'next_at', ARGV[2])
        out[#out + 1] = redis.call('HMGET', h, 'payload', 'attempts', 'status', 'last_error',
            'created', 'enqueued')
    end
end
return out
"""
)

# ARGV: key, status, '1' when the detail replaces last_error, detail, now, then the name
# and holder of a slot to give back ('' for none).
FINISH_OUTBOX = (
    OUTBOX_LIB
    + """
if ARGV[6] ~= '' then redis.call('ZREM', base .. 'slot:' .. ARGV[6], ARGV[7]) end
local h = base .. 'ob:' .. ARGV[1]
local v = redis.call('HMGET', h, 'status', 'm', 'lane')
if not v[1] then return 0 end
redis.call('HSET', h, 'finished', ARGV[5])
if ARGV[2] == 'dead' then
    if ARGV[3] == '1' then redis.call('HSET', h, 'last_error', ARGV[4])
    else redis.call('HDEL', h, 'last_error') end
end
set_status(h, v[2], v[1], ARGV[2])
if v[1] == 'pending' and ARGV[2] ~= 'pending' then
    redis.call('ZREM', base .. 'lane:' .. v[3], v[2])
    promote(v[3])
end
return 1
"""
)

# ARGV: key, next due time, error ('' with mode 'release'), mode ('retry' or 'release').
RESCHEDULE_OUTBOX = """
local base = KEYS[1]
local h = base .. 'ob:' .. ARGV[1]
local v = redis.call('HMGET', h, 'status', 'm', 'prio')
if not v[1] then return 0 end
if ARGV[4] == 'retry' then
    redis.call('HINCRBY', h, 'attempts', 1)
    redis.call('HSET', h, 'last_error', ARGV[3])
elseif v[1] ~= 'pending' then
    return 0
end
redis.call('HSET', h, 'next_at', ARGV[2])
if v[1] == 'pending' then
    redis.call('ZADD', base .. 'ready:' .. v[3], 'XX', ARGV[2], v[2])
end
return 1
"""

# ARGV: key, now. Returns 1 when a dead item became pending again.
REQUEUE_OUTBOX = (
    OUTBOX_LIB
    + """
local h = base .. 'ob:' .. ARGV[1]
local v = redis.call('HMGET', h, 'status', 'm', 'lane')
if v[1] ~= 'dead' then return 0 end
redis.call('HSET', h, 'attempts', 0, 'next_at', ARGV[2], 'enqueued', ARGV[2])
redis.call('HDEL', h, 'finished')
set_status(h, v[2], 'dead', 'pending')
redis.call('ZADD', base .. 'lane:' .. v[3], ARGV[2], v[2])
promote(v[3])
return 1
"""
)

# ARGV: the listing ('oball' or 'obs:<status>'), limit. Newest first.
LIST_OUTBOX = """
local base = KEYS[1]
local ms = redis.call('ZREVRANGE', base .. ARGV[1], 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, m in ipairs(ms) do
    out[#out + 1] = redis.call('HMGET', base .. 'ob:' .. string.sub(m, 13), 'payload',
        'attempts', 'status', 'last_error', 'created', 'enqueued')
end
return out
"""

# ARGV: now, lease end, limit. Returns {key, 'due seq', ...}.
CLAIM_TIMERS = """
local base = KEYS[1]
local keys = redis.call('ZRANGEBYSCORE', base .. 'timers', '-inf', ARGV[1], 'LIMIT', 0,
    tonumber(ARGV[3]))
local out = {}
for _, key in ipairs(keys) do
    redis.call('ZADD', base .. 'timers', ARGV[2], key)
    out[#out + 1] = key
    out[#out + 1] = redis.call('HGET', base .. 'timerdata', key)
end
return out
"""

# ARGV: slot name, limit, holder, until, now. Returns '' when taken, else the end of the
# earliest slot held by someone else (as stored).
TAKE_SLOT = """
local base = KEYS[1]
local sk = base .. 'slot:' .. ARGV[1]
redis.call('ZREMRANGEBYSCORE', sk, '-inf', ARGV[5])
local others = redis.call('ZCARD', sk)
if redis.call('ZSCORE', sk, ARGV[3]) then others = others - 1 end
if others < tonumber(ARGV[2]) then
    redis.call('ZADD', sk, ARGV[4], ARGV[3])
    redis.call('SADD', base .. 'slotkeys', ARGV[1])
    return ''
end
local first = redis.call('ZRANGE', sk, 0, 1, 'WITHSCORES')
if first[1] == ARGV[3] then return first[4] end
return first[2]
"""

# The purge goes in batches, one short script each, so Redis never stops for long.
# ARGV: now, batch size. Drops up to that many expired idempotency records; returns how many.
PURGE_RECORDS = """
local base = KEYS[1]
local expired = redis.call('ZRANGEBYSCORE', base .. 'idemexp', '-inf', ARGV[1], 'LIMIT', 0,
    tonumber(ARGV[2]))
for _, key in ipairs(expired) do
    redis.call('DEL', base .. 'idem:' .. key)
    redis.call('ZREM', base .. 'idemexp', key)
end
return #expired
"""

# ARGV: ZSET prefix ('hits:' or 'slot:'), the set naming them, score bound of what goes
# ('(' for exclusive), then names. Trims each named ZSET; an emptied one leaves the set.
# Returns how many entries went.
PURGE_TRIM = """
local base = KEYS[1]
local gone = 0
for i = 4, #ARGV do
    local zk = base .. ARGV[1] .. ARGV[i]
    gone = gone + redis.call('ZREMRANGEBYSCORE', zk, '-inf', ARGV[3])
    if redis.call('EXISTS', zk) == 0 then redis.call('SREM', base .. ARGV[2], ARGV[i]) end
end
return gone
"""

# ARGV: status, cutoff, batch size, offset. Drops finished items of that status queued before
# the cutoff that also finished before it (those finished since are passed over: counted, so
# the caller moves its offset past them). Returns {dropped, passed over, looked at}.
PURGE_OUTBOX = """
local base = KEYS[1]
local listing = base .. 'obs:' .. ARGV[1]
local cutoff = tonumber(ARGV[2])
local ms = redis.call('ZRANGEBYSCORE', listing, '-inf', '(' .. ARGV[2], 'LIMIT', ARGV[4],
    ARGV[3])
local gone, kept = 0, 0
for _, m in ipairs(ms) do
    local h = base .. 'ob:' .. string.sub(m, 13)
    local v = redis.call('HMGET', h, 'finished', 'next_at')
    local last = tonumber(v[1] or v[2] or '0')
    if last >= cutoff then
        kept = kept + 1
    else
        redis.call('DEL', h)
        redis.call('ZREM', listing, m)
        redis.call('ZREM', base .. 'oball', m)
        gone = gone + 1
    end
end
return {gone, kept, #ms}
"""

# ARGV: cutoff, batch size, now. Drops conversations last written before the cutoff, except
# those with a timer (rescored to now: looked at again one retention later).
# Returns {dropped, looked at}.
PURGE_CONVERSATIONS = """
local base = KEYS[1]
local ks = redis.call('ZRANGEBYSCORE', base .. 'convupd', '-inf', '(' .. ARGV[1], 'LIMIT', 0,
    tonumber(ARGV[2]))
local gone = 0
for _, k in ipairs(ks) do
    if redis.call('ZSCORE', base .. 'timers', k) then
        redis.call('ZADD', base .. 'convupd', ARGV[3], k)
    else
        local status = redis.call('HGET', base .. 'conv:' .. k, 'status')
        if status then redis.call('SREM', base .. 'convs:' .. status, k) end
        redis.call('DEL', base .. 'conv:' .. k)
        redis.call('ZREM', base .. 'convupd', k)
        gone = gone + 1
    end
end
return {gone, #ks}
"""
