//! [`RedisBudgetStore`]: budgets shared by every replica through Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::{Error, ErrorKind, StoreFuture};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::store::{Balance, BudgetLine, BudgetStore, Reservation, ReservationId};

/// Shared by the scripts: the server's clock in ms, and the reclaiming of lapsed leases.
/// A line is a hash `K` (`spent`, `held`) plus a sorted set `K:leases` of `"{id}|{amount}"`
/// members scored by lease end; settled ids live in a sorted set scored by when they may be
/// forgotten.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function reclaim(h, z)
  local lapsed = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #lapsed > 0 then
    local total = 0
    for _, m in ipairs(lapsed) do
      total = total + (tonumber(string.match(m, '|(%d+)$')) or 0)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    local left = redis.call('HINCRBY', h, 'held', string.format('%d', -total))
    if left < 0 then redis.call('HSET', h, 'held', 0) end
  end
end
";

/// Reserves on every line or none, atomically (Lua runs alone in Redis).
/// KEYS: n hashes, n lease sets, the settled set. ARGV: id, amount, lease ms, n limits, n TTLs
/// in seconds (0 = none). Returns {0} when granted (or already settled), {index, spent, held}
/// when refused.
const RESERVE: &str = r"
local n = (#KEYS - 1) / 2
local id, amount, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local settled = KEYS[#KEYS]
redis.call('ZREMRANGEBYSCORE', settled, '-inf', now)
if redis.call('ZSCORE', settled, id) then return {0} end
for i = 1, n do
  reclaim(KEYS[i], KEYS[n + i])
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  local held = tonumber(redis.call('HGET', KEYS[i], 'held') or '0')
  if spent + held + amount > tonumber(ARGV[3 + i]) then
    return {i, spent, held}
  end
end
local member = id .. '|' .. ARGV[2]
for i = 1, n do
  if redis.call('ZADD', KEYS[n + i], now + lease, member) == 1 then
    redis.call('HINCRBY', KEYS[i], 'held', ARGV[2])
  end
  local ttl = tonumber(ARGV[3 + n + i])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[i], ttl)
    redis.call('EXPIRE', KEYS[n + i], ttl)
  end
end
return {0}
";

/// Settles once per id: releases the lease (if still held) and adds the actual spend.
/// KEYS as for RESERVE. ARGV: id, reserved, actual, how long to remember the id (ms).
const SETTLE: &str = r"
local n = (#KEYS - 1) / 2
local id = ARGV[1]
local settled = KEYS[#KEYS]
redis.call('ZREMRANGEBYSCORE', settled, '-inf', now)
local first = redis.call('ZADD', settled, 'NX', now + tonumber(ARGV[4]), id) == 1
redis.call('PEXPIRE', settled, tonumber(ARGV[4]))
local member = id .. '|' .. ARGV[2]
local out = {}
for i = 1, n do
  if first then
    if redis.call('ZREM', KEYS[n + i], member) == 1 then
      local left = redis.call('HINCRBY', KEYS[i], 'held', string.format('%d', -tonumber(ARGV[2])))
      if left < 0 then redis.call('HSET', KEYS[i], 'held', 0) end
    end
    out[i] = redis.call('HINCRBY', KEYS[i], 'spent', ARGV[3])
  else
    out[i] = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  end
end
return out
";

/// The balance of one line after reclaiming. KEYS: the hash, its lease set.
const BALANCE: &str = r"
reclaim(KEYS[1], KEYS[2])
return {tonumber(redis.call('HGET', KEYS[1], 'spent') or '0'), tonumber(redis.call('HGET', KEYS[1], 'held') or '0')}
";

/// A budget store in Redis (per budget key: a hash with `spent` and `held`, and a sorted set
/// of leases), so any number of replicas share one set of budgets. Reserve, settle and
/// balance are Lua scripts, atomic on the server, that reclaim lapsed leases on Redis's own
/// clock (`TIME`). Amounts are nano-dollars; Lua compares them as doubles, exact up to 2⁵³
/// (about $9 million per key).
#[derive(Clone)]
pub struct RedisBudgetStore {
    connection: ConnectionManager,
    reserve: Arc<Script>,
    settle: Arc<Script>,
    balance: Arc<Script>,
    remember: Duration,
}

/// How long a settled id is remembered by default (so a reserve that reaches Redis late, or a
/// repeated settle, is a no-op): 3 hours, more than twice the default lease plus a margin.
pub const DEFAULT_SETTLED_MEMORY: Duration = Duration::from_secs(3 * 3600);

impl fmt::Debug for RedisBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetStore").finish_non_exhaustive()
    }
}

fn redis_error(error: &redis::RedisError) -> Error {
    claude_tower_core::redis::error("budget store", error)
}

impl RedisBudgetStore {
    /// Connects (with an auto-reconnecting connection manager) to `url`, e.g.
    /// `redis://127.0.0.1:6379/`.
    ///
    /// Commands time out after a second and reconnection is retried once per failing call
    /// ([`claude_tower_core::redis::request_path_config`]), so an unreachable server is
    /// reported quickly; pass your own `ConnectionManager` to [`new`](Self::new) for other
    /// settings.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let connection = claude_tower_core::redis::connect(url, "budget store").await?;
        Ok(Self::new(connection))
    }

    /// How long settled ids are remembered (default [`DEFAULT_SETTLED_MEMORY`]); keep it above
    /// twice the budget layer's lease.
    #[must_use]
    pub fn settled_memory(mut self, remember: Duration) -> Self {
        self.remember = remember;
        self
    }

    /// Uses an existing connection manager.
    #[must_use]
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            reserve: Arc::new(Script::new(&format!("{PRELUDE}{RESERVE}"))),
            settle: Arc::new(Script::new(&format!("{PRELUDE}{SETTLE}"))),
            balance: Arc::new(Script::new(&format!("{PRELUDE}{BALANCE}"))),
            remember: DEFAULT_SETTLED_MEMORY,
        }
    }
}

/// The keys of the lines: hashes, lease sets, then the settled-id set (next to the first line).
fn line_keys(invocation: &mut redis::ScriptInvocation<'_>, lines: &[BudgetLine]) {
    for line in lines {
        invocation.key(&line.key);
    }
    for line in lines {
        invocation.key(format!("{}:leases", line.key));
    }
    let settled = lines.first().map_or_else(
        || "claude-tower:budget:settled".to_owned(),
        |l| format!("{}:settled", l.key),
    );
    invocation.key(settled);
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl BudgetStore for RedisBudgetStore {
    fn reserve(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        amount: u64,
        lease: Duration,
    ) -> StoreFuture<Result<Reservation, Error>> {
        let script = Arc::clone(&self.reserve);
        let mut connection = self.connection.clone();
        let lines = lines.to_vec();
        let id = id.to_string();
        StoreFuture::boxed(async move {
            let lines = &lines[..];
            let id = &id[..];
            if lines.is_empty() {
                return Ok(Reservation::Granted);
            }
            let mut invocation = script.prepare_invoke();
            line_keys(&mut invocation, lines);
            invocation.arg(id).arg(amount).arg(millis(lease));
            for line in lines {
                invocation.arg(line.limit);
            }
            for line in lines {
                invocation.arg(line.ttl.map_or(0, |t| t.as_secs().max(1)));
            }
            let reply: Vec<u64> = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error(&e))?;
            match reply.as_slice() {
                [0] => Ok(Reservation::Granted),
                [line, spent, reserved] => Ok(Reservation::Refused {
                    line: usize::try_from(*line)
                        .unwrap_or(1)
                        .saturating_sub(1)
                        .min(lines.len() - 1),
                    balance: Balance {
                        spent: *spent,
                        reserved: *reserved,
                    },
                }),
                other => Err(Error::new(
                    ErrorKind::Other,
                    format!("budget store (redis): unexpected reply {other:?}"),
                )),
            }
        })
    }

    fn settle(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        reserved: u64,
        actual: u64,
    ) -> StoreFuture<Result<Vec<u64>, Error>> {
        let script = Arc::clone(&self.settle);
        let mut connection = self.connection.clone();
        let remember = self.remember;
        let lines = lines.to_vec();
        let id = id.to_string();
        StoreFuture::boxed(async move {
            let lines = &lines[..];
            let id = &id[..];
            if lines.is_empty() {
                return Ok(Vec::new());
            }
            let mut invocation = script.prepare_invoke();
            line_keys(&mut invocation, lines);
            invocation
                .arg(id)
                .arg(reserved)
                .arg(actual)
                .arg(millis(remember));
            invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error(&e))
        })
    }

    fn balance(&self, key: &str) -> StoreFuture<Result<Balance, Error>> {
        let script = Arc::clone(&self.balance);
        let mut connection = self.connection.clone();
        let key = key.to_owned();
        StoreFuture::boxed(async move {
            let key = &key[..];
            let mut invocation = script.prepare_invoke();
            invocation.key(key).key(format!("{key}:leases"));
            let (spent, reserved): (u64, u64) = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error(&e))?;
            Ok(Balance { spent, reserved })
        })
    }
}
