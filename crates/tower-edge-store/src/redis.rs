//! [`RedisStore`]: entries in Redis through a deadpool-redis pool, failing open.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use deadpool_redis::{Pool, Runtime, redis};

use crate::{CacheKey, CacheStore, Entry, LockToken, StoreError, fence::Fence};

/// A [`CacheStore`] in Redis, shared by every instance that uses the same URL and prefix.
///
/// - Entries are `SET {prefix}{generation}:{key} <encoded entry> PX <ttl>`, readable with
///   `redis-cli --scan --pattern 'myapp:*'`; tags are sets `{prefix}tag:{tag}` that expire with
///   their longest-lived member; locks are `{prefix}lock:{key}`; the generation is the integer
///   at `{prefix}generation`, read at most once per [`RedisStoreBuilder::generation_refresh`]
///   (and at once after a bump through this store or the invalidation bus). A bump sets it to
///   at least the current Unix time in milliseconds, so a Redis restarted without its data
///   never hands out a generation that was already used.
/// - Each resource has an index, the set `{prefix}res:{generation}:{resource}` of its entry
///   keys, kept next to the entries as tag sets are. Invalidating a URL (after every
///   successful unsafe request) reads and removes that set in one script: it costs the
///   resource's variants, whatever else the Redis holds.
/// - Prefix deletion and purge walk the keyspace with `SCAN` (never `KEYS`) and remove with
///   `UNLINK`, under this store's prefix only: they cost the size of the keyspace, bounded by
///   [`RedisStoreBuilder::admin_timeout`], and are meant for an operator, not for the request
///   path.
/// - **Fails open.** Every operation is bounded by [`RedisStoreBuilder::op_timeout`] (50 ms by
///   default); a failure or timeout is an error the cache treats as a miss. After
///   [`RedisStoreBuilder::breaker_threshold`] failures in a row a circuit breaker answers every
///   call with an error at once for [`RedisStoreBuilder::breaker_backoff`], then lets one probe
///   through. A value that does not decode is deleted and reported as
///   [`StoreError::is_corrupt`].
///
/// Tested against a standalone `redis-server`. `rediss://` URLs need deadpool-redis's TLS
/// features and Redis Cluster its `cluster` feature; neither is enabled or tested here.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    client: redis::Client,
    prefix: String,
    op_timeout: Duration,
    admin_timeout: Duration,
    generation_refresh: Duration,
    generation: Mutex<Option<(u64, Instant)>>,
    breaker: Breaker,
    stats: Counters,
    fence: Fence,
}

/// Builds a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    pool_size: usize,
    connect_timeout: Duration,
    wait_timeout: Duration,
    recycle_timeout: Duration,
    op_timeout: Duration,
    admin_timeout: Duration,
    generation_refresh: Duration,
    breaker_threshold: u32,
    breaker_backoff: Duration,
}

impl RedisStoreBuilder {
    /// The prefix of every key, as in `"myapp:"`.
    ///
    /// Defaults to `"tower-edge:"`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// The most connections the pool opens.
    ///
    /// Defaults to 16.
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long opening a connection may take.
    ///
    /// Defaults to 250 ms.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a caller may wait for a free connection.
    ///
    /// Defaults to 50 ms.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long checking a returned connection may take.
    ///
    /// Defaults to 50 ms.
    #[must_use]
    pub fn recycle_timeout(mut self, timeout: Duration) -> Self {
        self.recycle_timeout = timeout;
        self
    }

    /// The bound on one read or write, connection included: past it, the operation is a miss.
    ///
    /// Defaults to 50 ms.
    #[must_use]
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The bound on invalidations that walk the keyspace (prefix deletion, tags, purge).
    ///
    /// Defaults to 5 seconds.
    #[must_use]
    pub fn admin_timeout(mut self, timeout: Duration) -> Self {
        self.admin_timeout = timeout;
        self
    }

    /// How long the generation number read from Redis is trusted before it is read again.
    ///
    /// Defaults to 1 second.
    #[must_use]
    pub fn generation_refresh(mut self, every: Duration) -> Self {
        self.generation_refresh = every;
        self
    }

    /// Failures in a row that open the circuit breaker.
    ///
    /// Defaults to 5.
    #[must_use]
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker_threshold = failures.max(1);
        self
    }

    /// How long the open breaker refuses calls before letting a probe through.
    ///
    /// Defaults to 2 seconds.
    #[must_use]
    pub fn breaker_backoff(mut self, backoff: Duration) -> Self {
        self.breaker_backoff = backoff;
        self
    }

    /// Builds the store. Connections open lazily, so this fails only for a malformed URL.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str()).map_err(StoreError::backend)?;
        let pool = deadpool_redis::Config::from_url(self.url.clone())
            .builder()
            .map_err(StoreError::backend)?
            .max_size(self.pool_size)
            .create_timeout(Some(self.connect_timeout))
            .wait_timeout(Some(self.wait_timeout))
            .recycle_timeout(Some(self.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(StoreError::backend)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                pool,
                client,
                prefix: self.prefix,
                op_timeout: self.op_timeout,
                admin_timeout: self.admin_timeout,
                generation_refresh: self.generation_refresh,
                generation: Mutex::new(None),
                breaker: Breaker {
                    failures: AtomicU32::new(0),
                    open_until: Mutex::new(None),
                    threshold: self.breaker_threshold,
                    backoff: self.breaker_backoff,
                },
                stats: Counters::default(),
                fence: Fence::new(),
            }),
        })
    }
}

/// What a [`RedisStore`] has run into since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Operations that ran out of time.
    pub timeouts: u64,
    /// Operations that failed otherwise (connection refused, Redis errors).
    pub errors: u64,
    /// Calls refused at once by the open circuit breaker.
    pub short_circuited: u64,
    /// Stored values that did not decode, and were deleted.
    pub corrupt: u64,
}

#[derive(Default)]
struct Counters {
    timeouts: AtomicU64,
    errors: AtomicU64,
    short_circuited: AtomicU64,
    corrupt: AtomicU64,
}

struct Breaker {
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    threshold: u32,
    backoff: Duration,
}

impl Breaker {
    /// Whether a call may go to Redis. When the back-off has passed, the caller that asks first
    /// is the probe; the others keep being refused until it reports.
    fn allow(&self) -> bool {
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        match *open {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *open = Some(Instant::now() + self.backoff);
                true
            }
        }
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold {
            let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            if open.is_none() {
                tracing::warn!(failures, backoff = ?self.backoff, "redis circuit breaker open");
            }
            *open = Some(Instant::now() + self.backoff);
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

/// Removes the members of the set `KEYS[1]`, then the set, atomically; returns how many of the
/// members existed.
const UNLINK_INDEXED: &str = "\
local members = redis.call('SMEMBERS', KEYS[1])
local removed = 0
for i = 1, #members, 512 do
  removed = removed + redis.call('UNLINK', unpack(members, i, math.min(i + 511, #members)))
end
redis.call('UNLINK', KEYS[1])
return removed
";

/// Escapes the glob characters of `SCAN MATCH` patterns.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://127.0.0.1:6379/0`, with `user:password@`
    /// if needed).
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            prefix: "tower-edge:".to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_millis(250),
            wait_timeout: Duration::from_millis(50),
            recycle_timeout: Duration::from_millis(50),
            op_timeout: Duration::from_millis(50),
            admin_timeout: Duration::from_secs(5),
            generation_refresh: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_backoff: Duration::from_secs(2),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The counters of failures and corrupt values.
    pub fn stats(&self) -> RedisStats {
        let c = &self.inner.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisStats {
            timeouts: get(&c.timeouts),
            errors: get(&c.errors),
            short_circuited: get(&c.short_circuited),
            corrupt: get(&c.corrupt),
        }
    }

    /// The client, for a pub/sub connection of the invalidation bus.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// Forgets the cached generation, so the next operation reads it from Redis (the bus calls
    /// this when another instance bumps it).
    pub fn refresh_generation(&self) {
        *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs `op` against Redis within `limit`, through the circuit breaker.
    async fn guarded<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        if !inner.breaker.allow() {
            inner.stats.short_circuited.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::unavailable("redis circuit breaker is open"));
        }
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(value)) => {
                inner.breaker.success();
                Ok(value)
            }
            Ok(Err(error)) => {
                if !error.is_corrupt() {
                    inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                    inner.breaker.failure();
                }
                Err(error)
            }
            Err(_) => {
                inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                inner.breaker.failure();
                Err(StoreError::timeout())
            }
        }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.inner.pool.get().await.map_err(StoreError::unavailable)
    }

    async fn generation(&self, conn: &mut deadpool_redis::Connection) -> Result<u64, StoreError> {
        if let Some((generation, read_at)) = *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            && read_at.elapsed() < self.inner.generation_refresh
        {
            return Ok(generation);
        }
        let value: Option<u64> = redis::cmd("GET")
            .arg(self.generation_key())
            .query_async(conn)
            .await
            .map_err(StoreError::backend)?;
        let generation = value.unwrap_or(0);
        *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((generation, Instant::now()));
        Ok(generation)
    }

    fn generation_key(&self) -> String {
        format!("{}generation", self.inner.prefix)
    }

    fn entry_key(&self, generation: u64, key: &CacheKey) -> String {
        format!("{}{generation}:{key}", self.inner.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.inner.prefix)
    }

    /// The set of the entry keys of one resource (escaped, as [`CacheKey::resource`] gives it)
    /// in one generation: what invalidating the resource removes.
    fn resource_index_key(&self, generation: u64, resource: &str) -> String {
        format!("{}res:{generation}:{resource}", self.inner.prefix)
    }

    fn lock_key(&self, key: &CacheKey) -> String {
        format!("{}lock:{key}", self.inner.prefix)
    }

    /// Deletes every key matching `pattern`, with SCAN and UNLINK, except `keep`.
    async fn unlink_matching(
        &self,
        conn: &mut deadpool_redis::Connection,
        pattern: &str,
        keep: &[String],
    ) -> Result<u64, StoreError> {
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(conn)
                .await
                .map_err(StoreError::backend)?;
            let keys: Vec<String> = keys.into_iter().filter(|k| !keep.contains(k)).collect();
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(conn)
                    .await
                    .map_err(StoreError::backend)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Publishes `payload` on `channel` (the invalidation bus), within the operation timeout.
    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    /// Writes a raw value under `key`, bypassing the codec: for tests of what happens when
    /// something else writes garbage into the cache's keys.
    pub async fn put_raw(
        &self,
        key: &CacheKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            let generation = self.generation(&mut conn).await?;
            redis::cmd("SET")
                .arg(self.entry_key(generation, key))
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }
}

impl CacheStore for RedisStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .guarded(self.inner.op_timeout, async {
                let mut conn = self.conn().await?;
                let generation = self.generation(&mut conn).await?;
                redis::cmd("GET")
                    .arg(self.entry_key(generation, key))
                    .query_async(&mut conn)
                    .await
                    .map_err(StoreError::backend)
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        match Entry::decode(&raw) {
            Ok(entry) => Ok(Some(Arc::new(entry))),
            Err(error) => {
                self.inner.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%key, %error, "undecodable value in redis; deleting it");
                let _ = self.delete(key).await;
                Err(error)
            }
        }
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return self.delete(key).await.map(drop);
        }
        let value = entry.encode();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            let generation = self.generation(&mut conn).await?;
            let entry_key = self.entry_key(generation, key);
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&entry_key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            // The resource's index: invalidating it costs its variants, not a keyspace scan.
            let index_key = self.resource_index_key(generation, key.resource());
            let sets =
                std::iter::once(index_key).chain(entry.tags().iter().map(|t| self.tag_key(t)));
            for set_key in sets {
                pipe.cmd("SADD").arg(&set_key).arg(&entry_key).ignore();
                // A set lives as long as its longest-lived member (Redis 7: NX, then GT).
                pipe.cmd("PEXPIRE")
                    .arg(&set_key)
                    .arg(ttl_ms)
                    .arg("NX")
                    .ignore();
                pipe.cmd("PEXPIRE")
                    .arg(&set_key)
                    .arg(ttl_ms)
                    .arg("GT")
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn delete(&self, key: &CacheKey) -> Result<u64, StoreError> {
        self.inner.fence.invalidate_key(key);
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            let generation = self.generation(&mut conn).await?;
            redis::cmd("UNLINK")
                .arg(self.entry_key(generation, key))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn delete_resource(&self, resource: &str) -> Result<u64, StoreError> {
        self.inner.fence.invalidate_resource(resource);
        let resource = CacheKey::new(resource);
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            let generation = self.generation(&mut conn).await?;
            // One script, so that no variant put between reading the index and removing it
            // drops out of the index while its entry stays.
            redis::cmd("EVAL")
                .arg(UNLINK_INDEXED)
                .arg(1)
                .arg(self.resource_index_key(generation, resource.resource()))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner.fence.invalidate_all();
        let prefix = CacheKey::escape_prefix(prefix);
        self.delete_escaped_prefix(&prefix).await
    }

    async fn delete_tag(&self, tag: &str) -> Result<u64, StoreError> {
        self.inner.fence.invalidate_tag(tag);
        self.guarded(self.inner.admin_timeout, async {
            let mut conn = self.conn().await?;
            let tag_key = self.tag_key(tag);
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&tag_key)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)?;
            let mut removed = 0;
            for chunk in members.chunks(256) {
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(chunk)
                    .query_async(&mut conn)
                    .await
                    .map_err(StoreError::backend)?;
                // A key rewritten since without this tag is not addressed by it any more.
                let doomed: Vec<&String> = chunk
                    .iter()
                    .zip(values)
                    .filter(|(_, v)| {
                        v.as_deref()
                            .and_then(|v| Entry::decode(v).ok())
                            .is_none_or(|e| e.tags().iter().any(|t| t == tag))
                    })
                    .map(|(k, _)| k)
                    .collect();
                if !doomed.is_empty() {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(&doomed)
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    removed += n;
                }
            }
            redis::cmd("UNLINK")
                .arg(&tag_key)
                .query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::backend)?;
            Ok(removed)
        })
        .await
    }

    async fn bump_generation(&self) -> Result<u64, StoreError> {
        self.inner.fence.invalidate_all();
        // At least the caller's clock in milliseconds: a Redis that restarted without its data
        // starts the counter again from nothing, and a plain INCR would then hand out numbers
        // already used. Entries an instance wrote under such a number (with its cached
        // generation, before it noticed the restart) would come back into view.
        const BUMP: &str = "local g = redis.call('INCR', KEYS[1]) \
                            local floor = tonumber(ARGV[1]) \
                            if g < floor then redis.call('SET', KEYS[1], ARGV[1]) g = floor end \
                            return g";
        let floor = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.guarded(self.inner.op_timeout, async {
            let mut conn = self.conn().await?;
            let generation: u64 = redis::cmd("EVAL")
                .arg(BUMP)
                .arg(1)
                .arg(self.generation_key())
                .arg(floor)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)?;
            *self
                .inner
                .generation
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((generation, Instant::now()));
            Ok(generation)
        })
        .await
    }

    async fn purge(&self) -> Result<(), StoreError> {
        self.inner.fence.invalidate_all();
        self.guarded(self.inner.admin_timeout, async {
            let mut conn = self.conn().await?;
            let pattern = format!("{}*", glob_escape(&self.inner.prefix));
            // The generation counter survives a purge: instances that cached it stay in step.
            self.unlink_matching(&mut conn, &pattern, &[self.generation_key()])
                .await
                .map(drop)
        })
        .await
    }

    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let token = LockToken::random();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Option<String> = self
            .guarded(self.inner.op_timeout, async {
                let mut conn = self.conn().await?;
                redis::cmd("SET")
                    .arg(self.lock_key(key))
                    .arg(token.as_str())
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut conn)
                    .await
                    .map_err(StoreError::backend)
            })
            .await?;
        Ok(taken.map(|_| token))
    }

    async fn unlock(&self, key: &CacheKey, token: &LockToken) -> Result<bool, StoreError> {
        // Delete only if the lock still holds our token: a lock that expired and was taken by
        // someone else is theirs.
        const UNLOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                              return redis.call('DEL', KEYS[1]) else return 0 end";
        let removed: u64 = self
            .guarded(self.inner.op_timeout, async {
                let mut conn = self.conn().await?;
                redis::cmd("EVAL")
                    .arg(UNLOCK)
                    .arg(1)
                    .arg(self.lock_key(key))
                    .arg(token.as_str())
                    .query_async(&mut conn)
                    .await
                    .map_err(StoreError::backend)
            })
            .await?;
        Ok(removed == 1)
    }

    /// Records this instance's invalidations; those of other instances reach a fence only
    /// through [`Tiered`](crate::tiered::Tiered)'s bus.
    fn fence(&self) -> Option<&Fence> {
        Some(&self.inner.fence)
    }
}

impl RedisStore {
    async fn delete_escaped_prefix(&self, escaped: &str) -> Result<u64, StoreError> {
        self.guarded(self.inner.admin_timeout, async {
            let mut conn = self.conn().await?;
            let generation = self.generation(&mut conn).await?;
            let pattern = format!(
                "{}{generation}:{}*",
                glob_escape(&self.inner.prefix),
                glob_escape(escaped)
            );
            self.unlink_matching(&mut conn, &pattern, &[]).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(
            glob_escape("GET http://a/x?q=[1]*"),
            "GET http://a/x\\?q=\\[1\\]\\*"
        );
    }

    #[test]
    fn breaker_opens_after_the_threshold_and_lets_one_probe_through() {
        let breaker = Breaker {
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            threshold: 3,
            backoff: Duration::ZERO,
        };
        breaker.failure();
        breaker.failure();
        assert!(breaker.allow());
        breaker.failure();
        // Open with a zero back-off: the next caller is the probe, which re-arms the breaker.
        assert!(breaker.allow());
        breaker.success();
        assert!(breaker.allow());
        let long = Breaker {
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            threshold: 1,
            backoff: Duration::from_secs(60),
        };
        long.failure();
        assert!(!long.allow());
    }

    #[test]
    fn a_malformed_url_fails_at_build() {
        assert!(RedisStore::builder("not a url").build().is_err());
        assert!(RedisStore::builder("redis://127.0.0.1:1/0").build().is_ok());
    }
}
