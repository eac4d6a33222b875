//! [`RedisStore`]: entries in Redis through a deadpool-redis pool, failing open.

use std::{
    collections::BTreeMap,
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use deadpool_redis::{Pool, Runtime, redis};

use crate::{
    CacheKey, CacheLock, CacheStore, Entry, Holder, Invalidation, LockToken, StoreError,
    fence::Fence,
};

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
///   default), its connection included; the wait for a free pooled connection is bounded
///   apart, by [`RedisStoreBuilder::wait_timeout`] (250 ms). A failure or timeout is an error
///   the cache treats as a miss. After [`RedisStoreBuilder::breaker_threshold`] failures of
///   Redis in a row (errors, timeouts, connections that cannot be opened; not waits for a busy
///   pool, which are this process's own queue) a circuit breaker answers every call with an
///   error at once for [`RedisStoreBuilder::breaker_backoff`], then lets one probe through. A
///   value that does not decode is deleted and reported as
///   [`StoreError::is_corrupt`].
///
/// - **Redis Cluster** ([`RedisStore::cluster_builder`]): keys start with a hash tag made from
///   their resource, so a resource's entries, index and lock share a slot; tag sets, the
///   generation and each tag live in slots of their own. Prefix deletion and purge scan every
///   master. A master that dies makes the operations on its slots fail, and those are misses
///   like any other store failure.
///
/// Tested against a standalone `redis-server` and a three-master Redis Cluster, both started
/// by the tests. `rediss://` URLs need deadpool-redis's TLS features, which are not enabled.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pools,
    /// One client per configured URL (one, or each cluster node given): the bus subscribes
    /// through the first that answers.
    clients: Vec<redis::Client>,
    prefix: String,
    op_timeout: Duration,
    /// How long an operation waits for one of `slots`.
    wait_timeout: Duration,
    /// One per pooled connection: an operation holds one while it uses a connection, so its
    /// wait for a free connection happens here, apart from its time with Redis.
    slots: tokio::sync::Semaphore,
    admin_timeout: Duration,
    generation_refresh: Duration,
    generation: Mutex<Option<(u64, Instant)>>,
    breaker: Breaker,
    stats: Counters,
    fence: Fence,
    /// Whether a reading of the database's size (for `record_metrics`) is under way.
    sizing: std::sync::atomic::AtomicBool,
}

/// Builds a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
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

    /// How long opening a connection may take (within the operation's
    /// [`op_timeout`](Self::op_timeout)).
    ///
    /// Defaults to 250 ms.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a caller may wait for a free connection, apart from
    /// [`op_timeout`](Self::op_timeout). A wait that runs out is a miss, counted in
    /// [`RedisStats::pool_waits`], and does not count toward the circuit breaker.
    ///
    /// Defaults to 250 ms: a burst of misses queues briefly for a connection rather than going
    /// to the origin, while a Redis that stops answering still fails fast through the
    /// operation timeout and the breaker.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long checking a pooled connection before use may take (within the operation's
    /// [`op_timeout`](Self::op_timeout)).
    ///
    /// Defaults to 50 ms.
    #[must_use]
    pub fn recycle_timeout(mut self, timeout: Duration) -> Self {
        self.recycle_timeout = timeout;
        self
    }

    /// The bound on one read or write, opening or checking its connection included (waiting
    /// for a free one is not): past it, the operation is a miss, and counts toward the circuit
    /// breaker.
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
        let clients = self
            .urls
            .iter()
            .map(|url| redis::Client::open(url.as_str()).map_err(StoreError::backend))
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(StoreError::backend(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a Redis Cluster store needs at least one node URL",
            )));
        }
        // The single and cluster pool builders are different types with the same settings.
        macro_rules! pool {
            ($builder:expr) => {
                $builder
                    .map_err(StoreError::backend)?
                    .max_size(self.pool_size)
                    .create_timeout(Some(self.connect_timeout))
                    // `guarded` hands out at most `pool_size` slots, after its own wait: a
                    // caller with a slot finds a connection free at once.
                    .wait_timeout(Some(self.op_timeout))
                    .recycle_timeout(Some(self.recycle_timeout))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(StoreError::backend)?
            };
        }
        let pool = if self.cluster {
            Pools::Cluster(pool!(
                deadpool_redis::cluster::Config::from_urls(self.urls.clone()).builder()
            ))
        } else {
            Pools::Single(pool!(
                deadpool_redis::Config::from_url(self.urls[0].clone()).builder()
            ))
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                pool,
                clients,
                prefix: self.prefix,
                op_timeout: self.op_timeout,
                wait_timeout: self.wait_timeout,
                slots: tokio::sync::Semaphore::new(self.pool_size),
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
                sizing: std::sync::atomic::AtomicBool::new(false),
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
    /// Operations that found no free pooled connection within
    /// [`RedisStoreBuilder::wait_timeout`]: this process's own queue, not a Redis failure, so
    /// they do not count toward the circuit breaker. Many of them mean the pool is too small
    /// for the load ([`RedisStoreBuilder::pool_size`]).
    pub pool_waits: u64,
    /// Whether the circuit breaker is open now (calls refused, or one probe under way).
    pub breaker_open: bool,
}

#[derive(Default)]
struct Counters {
    timeouts: AtomicU64,
    errors: AtomicU64,
    short_circuited: AtomicU64,
    corrupt: AtomicU64,
    pool_waits: AtomicU64,
}

struct Breaker {
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    threshold: u32,
    backoff: Duration,
}

impl Breaker {
    fn is_open(&self) -> bool {
        self.open_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

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

/// Adds `member` to the set `set`, which lives as long as its longest-lived member (Redis 7:
/// `PEXPIRE` with `NX`, then with `GT`).
fn add_to_set(pipe: &mut redis::Pipeline, set: &str, member: &str, ttl_ms: u64) {
    pipe.cmd("SADD").arg(set).arg(member).ignore();
    pipe.cmd("PEXPIRE").arg(set).arg(ttl_ms).arg("NX").ignore();
    pipe.cmd("PEXPIRE").arg(set).arg(ttl_ms).arg("GT").ignore();
}

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
        Self::builder_for(vec![url.to_owned()], false)
    }

    /// A builder for the Redis Cluster that `nodes` belong to (`redis://127.0.0.1:7000`, …;
    /// one reachable node is enough to find the others).
    ///
    /// Keys then start with a hash tag made from their resource (`{a1b2c3d4e5f60718}`), so
    /// that a resource's entries, its index and its lock share a slot: one script can remove
    /// them together. Prefix deletion and purge scan every master in turn; the invalidation
    /// bus subscribes through the first node that answers (classic pub/sub reaches every node
    /// of a cluster).
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder_for(nodes.into_iter().map(Into::into).collect(), true)
    }

    fn builder_for(urls: Vec<String>, cluster: bool) -> RedisStoreBuilder {
        RedisStoreBuilder {
            urls,
            cluster,
            prefix: "tower-edge:".to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_millis(250),
            wait_timeout: Duration::from_millis(250),
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
            pool_waits: get(&c.pool_waits),
            breaker_open: self.inner.breaker.is_open(),
        }
    }

    /// Reads, in a task of its own, the size of the Redis database this store is in:
    /// `DBSIZE` and `used_memory`, into `tower_edge_redis_keys` and
    /// `tower_edge_redis_used_memory_bytes` (gauges, feature `metrics`). Each call starts one
    /// reading unless one is under way, so a scrape shows the previous call's figures. Those are
    /// the whole database's, other applications' keys included: counting this store's own keys
    /// would scan them all. A single Redis only (a cluster's figures are each node's); nothing
    /// without a Tokio runtime.
    fn read_size(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if !cfg!(feature = "metrics") || self.is_cluster() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.sizing.swap(true, SeqCst) {
            return;
        }
        let store = self.clone();
        runtime.spawn(async move {
            let read = store
                .guarded("size", store.inner.admin_timeout, |mut conn| async move {
                    let keys: u64 = redis::cmd("DBSIZE")
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    let info: String = redis::cmd("INFO")
                        .arg("memory")
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    let memory = info
                        .lines()
                        .find_map(|line| line.strip_prefix("used_memory:"))
                        .and_then(|n| n.trim().parse::<u64>().ok());
                    Ok((keys, memory))
                })
                .await;
            #[allow(clippy::cast_precision_loss)] // gauges are floats
            if let Ok((keys, memory)) = read {
                crate::observe::gauge("tower_edge_redis_keys", "redis", keys as f64);
                if let Some(bytes) = memory {
                    crate::observe::gauge(
                        "tower_edge_redis_used_memory_bytes",
                        "redis",
                        bytes as f64,
                    );
                }
            }
            store.inner.sizing.store(false, SeqCst);
        });
    }

    /// The clients of the configured URLs, for a pub/sub connection of the invalidation bus.
    pub(crate) fn clients(&self) -> &[redis::Client] {
        &self.inner.clients
    }

    /// Whether this store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.pool, Pools::Cluster(_))
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

    /// Runs `op` on a pooled connection within `limit`, connection included, through the
    /// circuit breaker.
    ///
    /// First it waits, at most [`RedisStoreBuilder::wait_timeout`], for one of the pool's
    /// `pool_size` slots. A wait that runs out is this process's own queue, not Redis failing:
    /// it is a miss like any other error, counted in [`RedisStats::pool_waits`], but it does
    /// not count toward the breaker. Otherwise a burst of concurrent misses on a busy machine
    /// would open the breaker with Redis healthy, and every request would go to the origin for
    /// the breaker's backoff.
    async fn guarded<T, Fut>(
        &self,
        name: &'static str,
        limit: Duration,
        op: impl FnOnce(Conn) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let began = Instant::now();
        let result = self.run_guarded(limit, op).await;
        crate::observe::store_operation("redis", name, began.elapsed(), result.is_ok());
        result
    }

    /// [`guarded`](Self::guarded) but for its timing.
    async fn run_guarded<T, Fut>(
        &self,
        limit: Duration,
        op: impl FnOnce(Conn) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let inner = &self.inner;
        if !inner.breaker.allow() {
            inner.stats.short_circuited.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::unavailable("redis circuit breaker is open"));
        }
        let slot = if inner.wait_timeout.is_zero() {
            // No wait at all: a timer's zero deadline would still wait for its next tick.
            inner.slots.try_acquire().ok()
        } else {
            tokio::time::timeout(inner.wait_timeout, inner.slots.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some(_slot) = slot else {
            inner.stats.pool_waits.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::unavailable(
                "no pooled Redis connection came free within the wait timeout",
            ));
        };
        let run = async {
            let conn = self.conn().await?;
            op(conn).await
        };
        match tokio::time::timeout(limit, run).await {
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

    async fn conn(&self) -> Result<Conn, StoreError> {
        // Boxed: the pools' futures are several kilobytes, and would otherwise sit inside every
        // operation's future and every future that awaits one, up to the request's; a debug
        // build's stack overflowed on them. One allocation is nothing next to a round trip.
        match &self.inner.pool {
            Pools::Single(pool) => Box::pin(pool.get()).await.map(Conn::Single),
            Pools::Cluster(pool) => Box::pin(pool.get())
                .await
                .map(|c| Conn::Cluster(Box::new(c))),
        }
        .map_err(StoreError::unavailable)
    }

    async fn generation(&self, conn: &mut Conn) -> Result<u64, StoreError> {
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

    /// On a cluster, the hash tag that puts every key of `resource` in one slot; empty
    /// otherwise, so a single Redis keeps the plain, readable layout.
    fn slot_tag(&self, resource: &str) -> String {
        if !self.is_cluster() {
            return String::new();
        }
        // FNV-1a: the same on every instance and every build, so instances agree on keys.
        let hash = resource.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{{{hash:016x}}}")
    }

    fn entry_key(&self, generation: u64, key: &CacheKey) -> String {
        let tag = self.slot_tag(key.resource());
        format!("{tag}{}{generation}:{key}", self.inner.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.inner.prefix)
    }

    /// The set of the entry keys of one resource (escaped, as [`CacheKey::resource`] gives it)
    /// in one generation: what invalidating the resource removes.
    fn resource_index_key(&self, generation: u64, resource: &str) -> String {
        let tag = self.slot_tag(resource);
        format!("{tag}{}res:{generation}:{resource}", self.inner.prefix)
    }

    fn lock_key(&self, key: &CacheKey) -> String {
        let tag = self.slot_tag(key.resource());
        format!("{tag}{}lock:{key}", self.inner.prefix)
    }

    /// Deletes every key matching one of `patterns`, with SCAN and UNLINK, except `keep`. On a
    /// cluster, every master that serves slots is scanned in turn.
    async fn unlink_matching(
        &self,
        conn: &mut Conn,
        patterns: &[String],
        keep: &[String],
    ) -> Result<u64, StoreError> {
        if !self.is_cluster() {
            return unlink_scanned(conn, patterns, keep, false).await;
        }
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(conn)
            .await
            .map_err(StoreError::backend)?;
        let info = self.inner.clients[0].get_connection_info().clone();
        let mut removed = 0;
        for (host, port) in masters(&nodes) {
            let client = redis::Client::open(
                info.clone()
                    .set_addr(redis::ConnectionAddr::Tcp(host, port)),
            )
            .map_err(StoreError::backend)?;
            let mut node = client
                .get_multiplexed_async_connection()
                .await
                .map_err(StoreError::backend)?;
            removed += unlink_scanned(&mut node, patterns, keep, true).await?;
        }
        Ok(removed)
    }

    /// Publishes `payload` on `channel` (the invalidation bus), within the operation timeout.
    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.guarded("publish", self.inner.op_timeout, |mut conn| async move {
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
        self.guarded("put", self.inner.op_timeout, |mut conn| async move {
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
            .guarded("get", self.inner.op_timeout, |mut conn| async move {
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

    /// One `MGET` on a single Redis; on a cluster one per slot (a resource's keys share one),
    /// over one connection.
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Arc<Entry>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raws: Vec<Option<Vec<u8>>> = self
            .guarded("get_many", self.inner.op_timeout, |mut conn| async move {
                let generation = self.generation(&mut conn).await?;
                let entry_keys: Vec<String> =
                    keys.iter().map(|k| self.entry_key(generation, k)).collect();
                if !self.is_cluster() {
                    return redis::cmd("MGET")
                        .arg(&entry_keys)
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend);
                }
                let mut by_slot: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for (at, key) in keys.iter().enumerate() {
                    by_slot
                        .entry(self.slot_tag(key.resource()))
                        .or_default()
                        .push(at);
                }
                let mut raws = vec![None; keys.len()];
                for positions in by_slot.values() {
                    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(
                            positions
                                .iter()
                                .map(|&at| &entry_keys[at])
                                .collect::<Vec<_>>(),
                        )
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    for (&at, raw) in positions.iter().zip(got) {
                        raws[at] = raw;
                    }
                }
                Ok(raws)
            })
            .await?;
        let mut found = Vec::with_capacity(keys.len());
        for (key, raw) in keys.iter().zip(raws) {
            found.push(match raw.map(|raw| Entry::decode(&raw)) {
                None => None,
                Some(Ok(entry)) => Some(Arc::new(entry)),
                Some(Err(error)) => {
                    self.inner.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%key, %error, "undecodable value in redis; deleting it");
                    let _ = self.delete(key).await;
                    None
                }
            });
        }
        Ok(found)
    }

    /// One pipeline on a single Redis (each entry, its resource index and its tag sets); on a
    /// cluster, where a pipeline stays in one slot, each entry is written as `put` writes it.
    async fn put_many(
        &self,
        items: Vec<(CacheKey, Entry)>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if ttl.is_zero() || self.is_cluster() {
            for (key, entry) in items {
                self.put(&key, entry, ttl).await?;
            }
            return Ok(());
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let items = &items;
        self.guarded("put_many", self.inner.op_timeout, |mut conn| async move {
            let generation = self.generation(&mut conn).await?;
            let mut pipe = redis::pipe();
            for (key, entry) in items {
                let entry_key = self.entry_key(generation, key);
                pipe.cmd("SET")
                    .arg(&entry_key)
                    .arg(&entry.encode()[..])
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
                let index_key = self.resource_index_key(generation, key.resource());
                add_to_set(&mut pipe, &index_key, &entry_key, ttl_ms);
                for tag in entry.tags() {
                    add_to_set(&mut pipe, &self.tag_key(tag), &entry_key, ttl_ms);
                }
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    fn record_metrics(&self) {
        use crate::observe::{gauge, total};
        let stats = self.stats();
        gauge(
            "tower_edge_redis_breaker_open",
            "redis",
            f64::from(u8::from(stats.breaker_open)),
        );
        total("tower_edge_redis_timeouts_total", stats.timeouts);
        total("tower_edge_redis_errors_total", stats.errors);
        total(
            "tower_edge_redis_short_circuited_total",
            stats.short_circuited,
        );
        total("tower_edge_redis_corrupt_total", stats.corrupt);
        total("tower_edge_redis_pool_waits_total", stats.pool_waits);
        self.read_size();
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return self
                .invalidate(&Invalidation::Key(key.clone()))
                .await
                .map(drop);
        }
        self.write(key, entry, ttl, None).await.map(drop)
    }

    async fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        if ttl.is_zero() {
            return self
                .invalidate(&Invalidation::Key(key.clone()))
                .await
                .map(|_| true);
        }
        self.write(key, entry, ttl, Some(holder)).await
    }

    /// One transaction: `SET .. NX PX` starts an absent counter at 0 with its TTL, `INCRBY`
    /// adds (keeping that TTL), and the resource's index learns the key. Atomic, one round
    /// trip. (Not a script: Lua holds numbers as doubles, which would round large counts.)
    async fn incr(&self, key: &CacheKey, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.guarded("incr", self.inner.op_timeout, |mut conn| async move {
            let generation = self.generation(&mut conn).await?;
            let entry_key = self.entry_key(generation, key);
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("SET")
                .arg(&entry_key)
                .arg(0)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            pipe.cmd("INCRBY").arg(&entry_key).arg(delta);
            add_to_set(
                &mut pipe,
                &self.resource_index_key(generation, key.resource()),
                &entry_key,
                ttl_ms,
            );
            let (count,): (i64,) = pipe
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)?;
            Ok(count)
        })
        .await
    }

    async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
        self.inner.fence.record(what);
        // The operator's invalidations (scans, tag sets) are boxed: their futures are large, and
        // would otherwise grow every invalidation's future, and every future that may make one
        // (a fill's undo, a corrupt value's removal), though they are rare.
        match what {
            Invalidation::Key(key) => self.unlink_key(key).await,
            Invalidation::Resource(resource) => self.unlink_resource(resource).await,
            Invalidation::Generation => self.new_generation().await,
            Invalidation::Prefix(prefix) => {
                Box::pin(self.delete_escaped_prefix(&CacheKey::escape_prefix(prefix))).await
            }
            Invalidation::Tag(tag) => Box::pin(self.unlink_tag(tag)).await,
            Invalidation::Purge => Box::pin(self.unlink_all()).await,
        }
    }

    /// Records this instance's invalidations; those of other instances reach a fence only
    /// through [`Tiered`](crate::tiered::Tiered)'s bus.
    fn fence(&self) -> Option<&Fence> {
        Some(&self.inner.fence)
    }
}

/// Stores an entry and adds it to its resource's index, only while `KEYS[1]` (a lock) holds
/// `ARGV[1]` (the holder's token): the check and the write are one step, so a holder whose
/// lock expired and passed to another cannot overwrite that one's entry.
const PUT_HELD: &str = "\
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('PEXPIRE', KEYS[3], ARGV[3], 'NX')
redis.call('PEXPIRE', KEYS[3], ARGV[3], 'GT')
return 1
";

impl RedisStore {
    /// Writes `entry` with its resource index and tag sets; with a `holder`, only while it holds
    /// its lock (and then says whether it wrote).
    async fn write(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: Option<&Holder>,
    ) -> Result<bool, StoreError> {
        let value = entry.encode();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.guarded("put", self.inner.op_timeout, |mut conn| async move {
            let generation = self.generation(&mut conn).await?;
            let entry_key = self.entry_key(generation, key);
            // The resource's index: invalidating it costs its variants, not a keyspace scan.
            let index_key = self.resource_index_key(generation, key.resource());
            let mut pipe = redis::pipe();
            let written = match holder {
                Some(holder)
                    if self.slot_tag(holder.key().resource()) == self.slot_tag(key.resource()) =>
                {
                    // The lock shares the entry's slot (always, on a single Redis): one script
                    // checks it and writes.
                    let stored: u64 = redis::cmd("EVAL")
                        .arg(PUT_HELD)
                        .arg(3)
                        .arg(self.lock_key(holder.key()))
                        .arg(&entry_key)
                        .arg(&index_key)
                        .arg(holder.token().as_str())
                        .arg(&value[..])
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    if stored == 0 {
                        return Ok(false);
                    }
                    true
                }
                Some(holder) => {
                    // A lock in another slot of a cluster: written in a step of its own, just
                    // before the write.
                    let held: Option<String> = redis::cmd("GET")
                        .arg(self.lock_key(holder.key()))
                        .query_async(&mut conn)
                        .await
                        .map_err(StoreError::backend)?;
                    if held.as_deref() != Some(holder.token().as_str()) {
                        return Ok(false);
                    }
                    false
                }
                None => false,
            };
            if !written {
                pipe.cmd("SET")
                    .arg(&entry_key)
                    .arg(&value[..])
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
                add_to_set(&mut pipe, &index_key, &entry_key, ttl_ms);
            }
            // On a cluster a pipeline stays in one slot: the entry and its index share one,
            // each tag set has its own. On a single Redis it is all one round trip.
            let mut pipes = Vec::new();
            for tag in entry.tags() {
                if self.is_cluster() && !pipe.is_empty() {
                    pipes.push(std::mem::take(&mut pipe));
                }
                add_to_set(&mut pipe, &self.tag_key(tag), &entry_key, ttl_ms);
            }
            pipes.push(pipe);
            for pipe in pipes.iter().filter(|p| !p.is_empty()) {
                pipe.query_async::<()>(&mut conn)
                    .await
                    .map_err(StoreError::backend)?;
            }
            Ok(true)
        })
        .await
    }

    async fn unlink_key(&self, key: &CacheKey) -> Result<u64, StoreError> {
        self.guarded("delete", self.inner.op_timeout, |mut conn| async move {
            let generation = self.generation(&mut conn).await?;
            redis::cmd("UNLINK")
                .arg(self.entry_key(generation, key))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn unlink_resource(&self, resource: &str) -> Result<u64, StoreError> {
        let resource = CacheKey::new(resource);
        self.guarded(
            "delete_resource",
            self.inner.op_timeout,
            |mut conn| async move {
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
            },
        )
        .await
    }

    async fn unlink_tag(&self, tag: &str) -> Result<u64, StoreError> {
        self.guarded(
            "delete_tag",
            self.inner.admin_timeout,
            |mut conn| async move {
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
            },
        )
        .await
    }

    async fn new_generation(&self) -> Result<u64, StoreError> {
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
        self.guarded(
            "bump_generation",
            self.inner.op_timeout,
            |mut conn| async move {
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
            },
        )
        .await
    }

    async fn unlink_all(&self) -> Result<u64, StoreError> {
        self.guarded("purge", self.inner.admin_timeout, |mut conn| async move {
            let prefix = glob_escape(&self.inner.prefix);
            // Hash-tagged keys (on a cluster) start with their tag.
            let patterns = [format!("{prefix}*"), format!("\\{{*\\}}{prefix}*")];
            // The generation counter survives a purge: instances that cached it stay in step.
            self.unlink_matching(&mut conn, &patterns, &[self.generation_key()])
                .await
        })
        .await
    }
}

impl CacheLock for RedisStore {
    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let token = LockToken::random();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let text = token.as_str();
        let taken: Option<String> = self
            .guarded("lock", self.inner.op_timeout, |mut conn| async move {
                redis::cmd("SET")
                    .arg(self.lock_key(key))
                    .arg(text)
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
            .guarded("unlock", self.inner.op_timeout, |mut conn| async move {
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
}

impl RedisStore {
    async fn delete_escaped_prefix(&self, escaped: &str) -> Result<u64, StoreError> {
        self.guarded(
            "delete_prefix",
            self.inner.admin_timeout,
            |mut conn| async move {
                let generation = self.generation(&mut conn).await?;
                let tag = if self.is_cluster() { "\\{*\\}" } else { "" };
                let pattern = format!(
                    "{tag}{}{generation}:{}*",
                    glob_escape(&self.inner.prefix),
                    glob_escape(escaped)
                );
                self.unlink_matching(&mut conn, &[pattern], &[]).await
            },
        )
        .await
    }
}

/// Where a store's connections come from: one Redis, or a Redis Cluster.
enum Pools {
    Single(Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A pooled connection to either.
enum Conn {
    Single(deadpool_redis::Connection),
    Cluster(Box<deadpool_redis::cluster::Connection>),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// SCANs one server for `patterns` and UNLINKs what it finds, except `keep`. `one_by_one`
/// unlinks each key with its own command (a cluster node refuses a multi-key command whose
/// keys are in different slots).
async fn unlink_scanned(
    conn: &mut impl redis::aio::ConnectionLike,
    patterns: &[String],
    keep: &[String],
    one_by_one: bool,
) -> Result<u64, StoreError> {
    let mut removed = 0u64;
    for pattern in patterns {
        let mut cursor: u64 = 0;
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
                if one_by_one {
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("UNLINK").arg(key);
                    }
                    let counts: Vec<u64> =
                        pipe.query_async(conn).await.map_err(StoreError::backend)?;
                    removed += counts.iter().sum::<u64>();
                } else {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(conn)
                        .await
                        .map_err(StoreError::backend)?;
                    removed += n;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}

/// The masters of a `CLUSTER NODES` reply that serve slots and are not failing.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves_slots = fields.len() > 8;
            if !flags.split(',').any(|f| f == "master")
                || flags.split(',').any(|f| f == "fail" || f == "noaddr")
                || !serves_slots
            {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let addr = fields.get(1)?.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_serving_masters_of_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004,host.example master - 0 0 4 connected
";
        assert_eq!(
            masters(nodes),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }

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
