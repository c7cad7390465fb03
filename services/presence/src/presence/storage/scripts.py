"""Lua scripts: each status transition runs atomically inside Redis.

Two devices of one user connecting and disconnecting at once, on different
pods, serialize on Redis; every script decides the transition from the stored
state, so each change is applied, and reported, exactly once.

Every script that changes a user first *settles* them: it applies what time
alone has decided by now (connections past their expiry, a custom status past
its expiry, an offline grace that ended), exactly as the sweeper would. So the
outcome never depends on whether the sweeper ran first, and a script reports a
change when what an event shows (status, chosen status, custom status and its
expiry) differs between its start and its end: several steps inside one script
(an unswept expiry to offline, then a connect back to online) that end where
they started report nothing.

Scripts return ``{status, device_count, last_active_at, changed, seq, chosen,
custom, custom_exp, grace, removed, custom_expired}``; ``grace`` is ``started``
(the last device left and the grace began), ``resumed`` (a connect within the
grace), ``ended`` (the grace ran out: offline) or empty.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from confab.presence.v1 import presence_pb2 as pb

_PRELUDE = f"""
local ONLINE = '{pb.PRESENCE_STATUS_ONLINE}'
local OFFLINE = '{pb.PRESENCE_STATUS_OFFLINE}'
local function present(status)
  return status == ONLINE or status == '{pb.PRESENCE_STATUS_AWAY}'
    or status == '{pb.PRESENCE_STATUS_BUSY}'
end
local function num(raw)
  if raw then return tonumber(raw) end
  return nil
end
local function fmt(n)
  return string.format('%d', n)
end
-- What an event shows; device_count and last_active_at alone publish nothing.
local function view(state)
  local v = redis.call('HMGET', state, 'status', 'chosen', 'custom', 'custom_exp')
  return {{v[1] or OFFLINE, v[2] or '', v[3] or '', v[4] or ''}}
end
local function differs(a, b)
  for i = 1, 4 do
    if a[i] ~= b[i] then return true end
  end
  return false
end
-- Keeps the fleet-wide count of present users in step with every transition.
local function set_status(state, stats, new)
  local old = redis.call('HGET', state, 'status')
  if old == new then return end
  redis.call('HSET', state, 'status', new)
  if present(new) and not present(old) then
    redis.call('HINCRBY', stats, 'present_users', 1)
  elseif present(old) and not present(new) then
    redis.call('HINCRBY', stats, 'present_users', -1)
  end
end
-- The sweeper finds users by their earliest deadline: a connection's expiry,
-- the end of the offline grace, or the custom status's expiry.
local function reindex(conns, state, index, member)
  local due = nil
  local first = redis.call('ZRANGE', conns, 0, 0, 'WITHSCORES')
  if first[1] then due = tonumber(first[2]) end
  local other = redis.call('HMGET', state, 'grace_until', 'custom_exp')
  for i = 1, 2 do
    local at = num(other[i])
    if at and (not due or at < due) then due = at end
  end
  if due then
    redis.call('ZADD', index, fmt(due), member)
  else
    redis.call('ZREM', index, member)
  end
end
-- Applies what time alone decided by `now`. Connections that expired (their
-- gateway went silent for a whole TTL) take the user offline at once, last
-- seen at their newest heartbeat; a clean disconnect's grace holds the user
-- present until grace_until, then offline, last seen at the disconnect.
local function settle(conns, state, stats, now, ttl)
  local expired = redis.call('ZRANGEBYSCORE', conns, '-inf', now, 'WITHSCORES')
  local removed = #expired / 2
  local newest = nil
  for i = 2, #expired, 2 do
    local score = tonumber(expired[i])
    if not newest or score > newest then newest = score end
  end
  if removed > 0 then
    redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
    redis.call('HINCRBY', stats, 'connections', -removed)
  end
  local custom_expired = 0
  local custom_exp = num(redis.call('HGET', state, 'custom_exp'))
  if custom_exp and custom_exp <= now then
    redis.call('HDEL', state, 'custom', 'custom_exp')
    custom_expired = 1
  end
  local grace = ''
  local status = redis.call('HGET', state, 'status')
  if present(status) and redis.call('ZCARD', conns) == 0 then
    local grace_until = num(redis.call('HGET', state, 'grace_until'))
    if not (grace_until and grace_until > now) then
      local seen = num(redis.call('HGET', state, 'last_active_at')) or now
      if newest and newest - ttl > seen then seen = newest - ttl end
      set_status(state, stats, OFFLINE)
      redis.call('HSET', state, 'last_active_at', fmt(seen))
      if grace_until then grace = 'ended' end
      status = OFFLINE
    end
  end
  if not present(status) then
    redis.call('HDEL', state, 'grace_until')
  end
  return removed, grace, custom_expired
end
local function finish(conns, state, before, grace, removed, custom_expired)
  local after = view(state)
  local changed = 0
  if differs(before, after) then
    redis.call('HINCRBY', state, 'seq', 1)
    changed = 1
  end
  return {{after[1], redis.call('ZCARD', conns),
    redis.call('HGET', state, 'last_active_at') or '', changed,
    redis.call('HGET', state, 'seq') or '0', after[2], after[3], after[4],
    grace, removed, custom_expired}}
end
"""

# KEYS: conns, state, index, stats.
# ARGV: index member, connection id, now, expiry, ttl.
_CONNECT = (
    _PRELUDE
    + """
local now = tonumber(ARGV[3])
local before = view(KEYS[2])
local removed, grace, custom_expired = settle(KEYS[1], KEYS[2], KEYS[4], now, tonumber(ARGV[5]))
if redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'connections', 1)
end
if present(redis.call('HGET', KEYS[2], 'status')) then
  -- Back within the grace: nobody ever heard of the disconnect.
  if redis.call('HDEL', KEYS[2], 'grace_until') == 1 then grace = 'resumed' end
else
  set_status(KEYS[2], KEYS[4], redis.call('HGET', KEYS[2], 'chosen') or ONLINE)
end
redis.call('HSET', KEYS[2], 'last_active_at', ARGV[3])
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return finish(KEYS[1], KEYS[2], before, grace, removed, custom_expired)
"""
)

# KEYS: conns, state, index, stats.
# ARGV: index member, connection id, now, ttl, grace ms.
# Only a live connection's removal counts as a disconnect: one already past its
# expiry was settled first, like any other silent connection.
_DISCONNECT = (
    _PRELUDE
    + """
local now = tonumber(ARGV[3])
local before = view(KEYS[2])
local removed, grace, custom_expired = settle(KEYS[1], KEYS[2], KEYS[4], now, tonumber(ARGV[4]))
if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'connections', -1)
  redis.call('HSET', KEYS[2], 'last_active_at', ARGV[3])
  if redis.call('ZCARD', KEYS[1]) == 0 and present(redis.call('HGET', KEYS[2], 'status')) then
    local grace_ms = tonumber(ARGV[5])
    if grace_ms > 0 then
      redis.call('HSET', KEYS[2], 'grace_until', fmt(now + grace_ms))
      grace = 'started'
    else
      set_status(KEYS[2], KEYS[4], OFFLINE)
    end
  end
end
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return finish(KEYS[1], KEYS[2], before, grace, removed, custom_expired)
"""
)

# KEYS: conns, state, index.
# ARGV: index member, expiry, now, last-active throttle ms, connection ids...
# Only connections still registered are extended: one that was disconnected or
# swept must Connect again, so a late heartbeat cannot bring back a ghost.
# last_active_at moves at most once per throttle window per user.
_HEARTBEAT = (
    _PRELUDE
    + """
local refreshed = 0
for i = 5, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    refreshed = refreshed + 1
  end
end
if refreshed > 0 then
  local now = tonumber(ARGV[3])
  local last = num(redis.call('HGET', KEYS[2], 'last_active_at'))
  if not last or now - last >= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[2], 'last_active_at', ARGV[3])
  end
  reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
end
return refreshed
"""
)

# KEYS: conns, state, index, stats. ARGV: index member, now, ttl.
# What the sweeper runs for a user whose earliest deadline passed.
_EXPIRE = (
    _PRELUDE
    + """
local before = view(KEYS[2])
local removed, grace, custom_expired = settle(
  KEYS[1], KEYS[2], KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]))
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return finish(KEYS[1], KEYS[2], before, grace, removed, custom_expired)
"""
)

# KEYS: conns, state, index, stats.
# ARGV: index member, now, ttl, chosen status, custom action (keep|set|clear),
# custom text, custom expiry ('' for none).
# The chosen status is kept while offline and applies from the next connect;
# it shows only while the user is present.
_SET_STATUS = (
    _PRELUDE
    + """
local before = view(KEYS[2])
local removed, grace, custom_expired = settle(
  KEYS[1], KEYS[2], KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]))
local chosen = ARGV[4]
if chosen == ONLINE then
  redis.call('HDEL', KEYS[2], 'chosen')
else
  redis.call('HSET', KEYS[2], 'chosen', chosen)
end
if ARGV[5] == 'set' then
  redis.call('HSET', KEYS[2], 'custom', ARGV[6])
  if ARGV[7] ~= '' then
    redis.call('HSET', KEYS[2], 'custom_exp', ARGV[7])
  else
    redis.call('HDEL', KEYS[2], 'custom_exp')
  end
elseif ARGV[5] == 'clear' then
  redis.call('HDEL', KEYS[2], 'custom', 'custom_exp')
end
if present(redis.call('HGET', KEYS[2], 'status')) then
  set_status(KEYS[2], KEYS[4], chosen)
end
redis.call('HSET', KEYS[2], 'last_active_at', ARGV[2])
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return finish(KEYS[1], KEYS[2], before, grace, removed, custom_expired)
"""
)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.connect: AsyncScript = redis.register_script(_CONNECT)
        self.disconnect: AsyncScript = redis.register_script(_DISCONNECT)
        self.heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)
        self.expire: AsyncScript = redis.register_script(_EXPIRE)
        self.set_status: AsyncScript = redis.register_script(_SET_STATUS)
