//! [`RedisBudgetStore`]: budgets shared by every replica through Redis.

use std::fmt;

use async_trait::async_trait;
use claude_tower_core::{Error, ErrorKind};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::store::{Balance, BudgetLine, BudgetStore, Reservation};

/// Checks every line, then reserves on all of them, atomically (Lua runs alone in Redis).
/// KEYS: the lines. ARGV: amount, then each line's limit, then each line's TTL in seconds
/// (0 = none). Returns {0} when granted, {index, spent, reserved} when refused.
const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if spent + reserved + amount > tonumber(ARGV[1 + i]) then
    return {i, spent, reserved}
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'reserved', amount)
  local ttl = tonumber(ARGV[1 + n + i])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {0}
";

/// Releases a reservation and adds the actual spend. ARGV: reserved, actual.
const SETTLE: &str = r"
local out = {}
for i = 1, #KEYS do
  local left = redis.call('HINCRBY', KEYS[i], 'reserved', -tonumber(ARGV[1]))
  if left < 0 then redis.call('HSET', KEYS[i], 'reserved', 0) end
  out[i] = redis.call('HINCRBY', KEYS[i], 'spent', tonumber(ARGV[2]))
end
return out
";

/// A budget store in Redis (one hash per budget key with `spent` and `reserved`), so any
/// number of replicas share one set of budgets. Reserve and settle are Lua scripts, atomic on
/// the server. Amounts are nano-dollars; Lua compares them as doubles, exact up to 2⁵³
/// (about $9 million per key).
#[derive(Clone)]
pub struct RedisBudgetStore {
    connection: ConnectionManager,
    reserve: Script,
    settle: Script,
}

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

    /// Uses an existing connection manager.
    #[must_use]
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
        }
    }
}

#[async_trait]
impl BudgetStore for RedisBudgetStore {
    async fn reserve(&self, lines: &[BudgetLine], amount: u64) -> Result<Reservation, Error> {
        let mut invocation = self.reserve.prepare_invoke();
        for line in lines {
            invocation.key(&line.key);
        }
        invocation.arg(amount);
        for line in lines {
            invocation.arg(line.limit);
        }
        for line in lines {
            invocation.arg(line.ttl.map_or(0, |t| t.as_secs().max(1)));
        }
        let mut connection = self.connection.clone();
        let reply: Vec<u64> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| redis_error(&e))?;
        match reply.as_slice() {
            [0] => Ok(Reservation::Granted),
            [line, spent, reserved] => Ok(Reservation::Refused {
                line: usize::try_from(*line).unwrap_or(1).saturating_sub(1),
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
    }

    async fn settle(
        &self,
        lines: &[BudgetLine],
        reserved: u64,
        actual: u64,
    ) -> Result<Vec<u64>, Error> {
        let mut invocation = self.settle.prepare_invoke();
        for line in lines {
            invocation.key(&line.key);
        }
        invocation.arg(reserved).arg(actual);
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn balance(&self, key: &str) -> Result<Balance, Error> {
        let mut connection = self.connection.clone();
        let (spent, reserved): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(key)
            .arg("spent")
            .arg("reserved")
            .query_async(&mut connection)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(Balance {
            spent: spent.unwrap_or(0),
            reserved: reserved.unwrap_or(0),
        })
    }
}
