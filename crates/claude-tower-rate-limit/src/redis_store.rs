//! [`RedisRateLimitStore`]: buckets shared by every replica through Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::rate_limit::Refusal;
use claude_tower_core::{Error, ErrorKind, StoreFuture};
use redis::aio::ConnectionManager;
use redis::{Script, ToRedisArgs};

use crate::store::{Admission, BucketSpec, RateLimitStore};

/// Shared by the scripts: refills a bucket (hash `tokens`, `at` in µs of Redis TIME, and `cap`,
/// the capacity the last admission or correction used).
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function load(key, cap)
  local h = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(h[1]) or cap
  local at = tonumber(h[2]) or now
  if tokens > cap then tokens = cap end
  if now > at then tokens = math.min(cap, tokens + (now - at) * cap / 60000000) end
  return tokens
end
local function store(key, tokens, cap)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now), 'cap', tostring(cap))
  redis.call('PEXPIRE', key, 180000)
end
";

/// KEYS: buckets..., pause key. ARGV: max_wait µs, then capacity and amount per bucket.
/// Returns {0, wait µs} granted, {1, bucket} too large, {2, bucket (0 = pause), wait µs}.
const ACQUIRE: &str = r"
local n = #KEYS - 1
local max_wait = tonumber(ARGV[1])
local wait = 0
local blocker = 0
local pause = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
if pause > now then wait = pause - now end
local tokens = {}
for i = 1, n do
  local cap = tonumber(ARGV[2 * i])
  local amount = tonumber(ARGV[2 * i + 1])
  if amount > cap then return {1, i} end
  tokens[i] = load(KEYS[i], cap)
  local missing = amount - tokens[i]
  if missing > 0 then
    local w = missing * 60000000 / cap
    if w > wait then wait = w; blocker = i end
  end
end
if wait > max_wait then return {2, blocker, math.ceil(wait)} end
for i = 1, n do
  store(KEYS[i], tokens[i] - tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i]))
end
return {0, math.ceil(wait)}
";

/// KEYS: buckets. ARGV: capacity and delta per bucket (delta > 0 gives tokens back). The
/// capacity stored by the last admission wins over the argument, which may predate a limit
/// learned since the reservation.
const ADJUST: &str = r"
for i = 1, #KEYS do
  local cap = tonumber(redis.call('HGET', KEYS[i], 'cap') or ARGV[2 * i - 1])
  store(KEYS[i], math.min(cap, load(KEYS[i], cap) + tonumber(ARGV[2 * i])), cap)
end
return 0
";

/// KEYS[1]: bucket. ARGV: capacity, remaining.
const CORRECT: &str = r"
local cap = tonumber(ARGV[1])
store(KEYS[1], math.min(load(KEYS[1], cap), tonumber(ARGV[2])), cap)
return 0
";

/// KEYS[1]: pause key. ARGV[1]: duration µs. Extends, never shortens.
const PAUSE: &str = r"
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000) end
return 0
";

/// KEYS[1]: bucket. ARGV[1]: capacity. Returns tokens × 1000 (integer).
const AVAILABLE: &str = r"
return math.floor(load(KEYS[1], tonumber(ARGV[1])) * 1000)
";

/// Buckets in Redis, so any number of replicas share one set of limits. Every operation is
/// one Lua script, atomic on the server, on the server's clock (`TIME`), so replicas with
/// skewed clocks still agree.
#[derive(Clone)]
pub struct RedisRateLimitStore {
    connection: ConnectionManager,
    acquire: Arc<Script>,
    adjust: Arc<Script>,
    correct: Arc<Script>,
    pause: Arc<Script>,
    available: Arc<Script>,
}

impl fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitStore")
            .finish_non_exhaustive()
    }
}

fn redis_error(error: &redis::RedisError) -> Error {
    claude_tower_core::redis::error("rate-limit store", error)
}

fn script(body: &str) -> Arc<Script> {
    Arc::new(Script::new(&format!("{PRELUDE}{body}")))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl RedisRateLimitStore {
    /// Runs an update script (its reply is ignored) with `keys` and `args`, encoded before
    /// the future so that it owns them.
    fn update(
        &self,
        script: &Arc<Script>,
        keys: Vec<Arc<str>>,
        args: Vec<Vec<u8>>,
    ) -> StoreFuture<Result<(), Error>> {
        let script = Arc::clone(script);
        let mut connection = self.connection.clone();
        StoreFuture::boxed(async move {
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(&**key);
            }
            for arg in &args {
                invocation.arg(&arg[..]);
            }
            invocation
                .invoke_async::<i64>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|e| redis_error(&e))
        })
    }

    /// Connects (auto-reconnecting) to `url`, e.g. `redis://127.0.0.1:6379/`.
    ///
    /// Commands time out after a second and reconnection is retried once per failing call
    /// ([`claude_tower_core::redis::request_path_config`]), so an unreachable server is
    /// reported quickly; pass your own `ConnectionManager` to [`new`](Self::new) for other
    /// settings.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let connection = claude_tower_core::redis::connect(url, "rate-limit store").await?;
        Ok(Self::new(connection))
    }

    /// Uses an existing connection manager.
    #[must_use]
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            acquire: script(ACQUIRE),
            adjust: script(ADJUST),
            correct: script(CORRECT),
            pause: script(PAUSE),
            available: script(AVAILABLE),
        }
    }
}

impl RateLimitStore for RedisRateLimitStore {
    fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> StoreFuture<Result<Admission, Error>> {
        let script = Arc::clone(&self.acquire);
        let mut connection = self.connection.clone();
        let buckets = buckets.to_vec();
        let amounts = amounts.to_vec();
        let pause_key = pause_key.to_owned();
        StoreFuture::boxed(async move {
            let buckets = &buckets[..];
            let amounts = &amounts[..];
            let pause_key = &pause_key[..];
            let mut invocation = script.prepare_invoke();
            for bucket in buckets {
                invocation.key(&*bucket.key);
            }
            invocation.key(pause_key);
            invocation.arg(micros(max_wait));
            for (bucket, amount) in buckets.iter().zip(amounts) {
                invocation.arg(bucket.per_minute).arg(*amount);
            }
            let reply: Vec<i64> = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error(&e))?;
            let index = |i: i64| usize::try_from(i).ok().filter(|i| *i > 0).map(|i| i - 1);
            match reply.as_slice() {
                // A reply is untrusted too: a grant never waits longer than `max_wait`.
                [0, wait] => Ok(Admission::Granted {
                    wait: Duration::from_micros(u64::try_from(*wait).unwrap_or(0)).min(max_wait),
                }),
                [1, bucket] => Ok(Admission::Refused {
                    bucket: index(*bucket),
                    refusal: Refusal::TooLarge,
                }),
                [2, bucket, wait] => Ok(Admission::Refused {
                    bucket: index(*bucket),
                    refusal: Refusal::WouldWait(Duration::from_micros(
                        u64::try_from(*wait).unwrap_or(0),
                    )),
                }),
                other => Err(Error::new(
                    ErrorKind::Other,
                    format!("rate-limit store (redis): unexpected reply {other:?}"),
                )),
            }
        })
    }

    fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> StoreFuture<Result<(), Error>> {
        let mut keys = Vec::with_capacity(buckets.len());
        let mut args = Vec::with_capacity(2 * buckets.len());
        for (bucket, delta) in buckets.iter().zip(deltas) {
            keys.push(Arc::clone(&bucket.key));
            args.extend(bucket.per_minute.to_redis_args());
            args.extend(delta.to_redis_args());
        }
        self.update(&self.adjust, keys, args)
    }

    fn correct(&self, bucket: &BucketSpec, remaining: u64) -> StoreFuture<Result<(), Error>> {
        let mut args = bucket.per_minute.to_redis_args();
        args.extend(remaining.to_redis_args());
        self.update(&self.correct, vec![Arc::clone(&bucket.key)], args)
    }

    fn pause(&self, pause_key: &str, duration: Duration) -> StoreFuture<Result<(), Error>> {
        let args = micros(duration).to_redis_args();
        self.update(&self.pause, vec![Arc::from(pause_key)], args)
    }

    fn available(&self, bucket: &BucketSpec) -> StoreFuture<Result<f64, Error>> {
        let script = Arc::clone(&self.available);
        let mut connection = self.connection.clone();
        let bucket = bucket.clone();
        StoreFuture::boxed(async move {
            let bucket = &bucket;
            let mut invocation = script.prepare_invoke();
            invocation.key(&*bucket.key).arg(bucket.per_minute);
            let milli: i64 = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| redis_error(&e))?;
            Ok(milli as f64 / 1000.0)
        })
    }
}
