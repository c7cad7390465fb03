"""Lua scripts: each status transition runs atomically inside Redis.

Two devices of one user connecting and disconnecting at once, on different
pods, serialize on Redis; every script decides the transition from the stored
status, so each change is applied, and reported, exactly once. Scripts return
``{status, device_count, last_active_at, changed, seq}`` (the sweep adds the
number of connections it removed).
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
-- The sweeper finds users by their earliest expiry.
local function reindex(conns, index, member)
  local first = redis.call('ZRANGE', conns, 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', index, first[2], member)
  else
    redis.call('ZREM', index, member)
  end
end
local function go_offline(state, stats, last_active)
  redis.call('HSET', state, 'status', OFFLINE, 'last_active_at', last_active)
  redis.call('HINCRBY', state, 'seq', 1)
  redis.call('HINCRBY', stats, 'present_users', -1)
  return OFFLINE
end
local function result(conns, state, status, changed)
  return {{status or OFFLINE, redis.call('ZCARD', conns),
    redis.call('HGET', state, 'last_active_at') or '', changed,
    redis.call('HGET', state, 'seq') or '0'}}
end
"""

# KEYS: conns, state, index, stats. ARGV: index member, connection id, now, expiry.
_CONNECT = (
    _PRELUDE
    + """
local pruned = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local added = redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
if added ~= pruned then
  redis.call('HINCRBY', KEYS[4], 'connections', added - pruned)
end
local status = redis.call('HGET', KEYS[2], 'status')
local changed = 0
if not present(status) then
  status = ONLINE
  redis.call('HSET', KEYS[2], 'status', status)
  redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('HINCRBY', KEYS[4], 'present_users', 1)
  changed = 1
end
redis.call('HSET', KEYS[2], 'last_active_at', ARGV[3])
reindex(KEYS[1], KEYS[3], ARGV[1])
return result(KEYS[1], KEYS[2], status, changed)
"""
)

# KEYS: conns, state, index, stats. ARGV: index member, connection id, now.
_DISCONNECT = (
    _PRELUDE
    + """
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
removed = removed + redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if removed > 0 then
  redis.call('HINCRBY', KEYS[4], 'connections', -removed)
end
local status = redis.call('HGET', KEYS[2], 'status')
local changed = 0
if redis.call('ZCARD', KEYS[1]) == 0 and present(status) then
  status = go_offline(KEYS[2], KEYS[4], ARGV[3])
  changed = 1
end
reindex(KEYS[1], KEYS[3], ARGV[1])
return result(KEYS[1], KEYS[2], status, changed)
"""
)

# KEYS: conns, index. ARGV: index member, expiry, connection ids...
# Only connections still registered are extended: one that was disconnected or
# swept must Connect again, so a late heartbeat cannot bring back a ghost.
_HEARTBEAT = """
local refreshed = 0
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    refreshed = refreshed + 1
  end
end
if refreshed > 0 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[2], first[2], ARGV[1])
end
return refreshed
"""

# KEYS: conns, state, index, stats. ARGV: index member, now, ttl.
# A swept user was last seen at its newest connection's last heartbeat
# (expiry - ttl), not when the sweeper happened to run.
_EXPIRE = (
    _PRELUDE
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'WITHSCORES')
local removed = #expired / 2
local newest = 0
for i = 2, #expired, 2 do
  local score = tonumber(expired[i])
  if score > newest then newest = score end
end
if removed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  redis.call('HINCRBY', KEYS[4], 'connections', -removed)
end
local status = redis.call('HGET', KEYS[2], 'status')
local changed = 0
if redis.call('ZCARD', KEYS[1]) == 0 and present(status) then
  local seen = tonumber(ARGV[2])
  if removed > 0 then seen = newest - tonumber(ARGV[3]) end
  local previous = tonumber(redis.call('HGET', KEYS[2], 'last_active_at') or '0')
  if previous and previous > seen then seen = previous end
  status = go_offline(KEYS[2], KEYS[4], string.format('%d', seen))
  changed = 1
end
reindex(KEYS[1], KEYS[3], ARGV[1])
local out = result(KEYS[1], KEYS[2], status, changed)
out[6] = removed
return out
"""
)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.connect: AsyncScript = redis.register_script(_CONNECT)
        self.disconnect: AsyncScript = redis.register_script(_DISCONNECT)
        self.heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)
        self.expire: AsyncScript = redis.register_script(_EXPIRE)
