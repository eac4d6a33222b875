//! Cross-instance invalidation over Redis pub/sub, for the L1 of [`Tiered`](crate::tiered::Tiered).
//!
//! Every invalidation made through a `Tiered` store with the bus is published on
//! `{prefix}invalidate`; every instance's subscriber applies the ones from other instances to
//! its own L1. When the subscription drops (Redis restarted, network cut) the subscriber
//! reconnects with back-off, and on reconnecting empties its L1: it may have missed messages,
//! and an L1 that cannot know what was invalidated must not serve anything stale.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{CacheKey, CacheStore, Invalidation, LockToken};

/// `{instance}\n{kind}\n{argument}[\n{argument}]`: fields are separated by newlines, which no
/// escaped key part contains.
fn encode(what: &Invalidation, instance: &str) -> String {
    match what {
        Invalidation::Key(key) => format!("{instance}\nkey\n{}\n{}", key.resource(), key.variant()),
        Invalidation::Resource(r) => format!("{instance}\nresource\n{r}"),
        Invalidation::Prefix(p) => format!("{instance}\nprefix\n{p}"),
        Invalidation::Tag(t) => format!("{instance}\ntag\n{t}"),
        Invalidation::Generation => format!("{instance}\ngeneration"),
        Invalidation::Purge => format!("{instance}\npurge"),
    }
}

fn decode(text: &str) -> Option<(&str, Invalidation)> {
    let mut fields = text.splitn(4, '\n');
    let instance = fields.next()?;
    let what = match fields.next()? {
        "key" => Invalidation::Key(CacheKey::from_escaped(
            fields.next()?,
            fields.next().unwrap_or(""),
        )),
        "resource" => Invalidation::Resource(fields.next()?.to_owned()),
        "prefix" => Invalidation::Prefix(fields.next()?.to_owned()),
        "tag" => Invalidation::Tag(fields.next()?.to_owned()),
        "generation" => Invalidation::Generation,
        "purge" => Invalidation::Purge,
        _ => return None,
    };
    Some((instance, what))
}

/// The publishing half, and the handle that keeps the subscriber running.
pub(crate) struct Bus {
    store: crate::RedisStore,
    instance: String,
    connected: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Bus {
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

mod redis_bus {
    use deadpool_redis::redis;
    use futures_util::StreamExt;

    use super::*;
    use crate::RedisStore;

    fn channel(store: &RedisStore) -> String {
        format!("{}invalidate", store.prefix())
    }

    impl Bus {
        pub(crate) fn spawn<L1: CacheStore + Clone>(store: RedisStore, l1: L1) -> Self {
            // Unique enough to tell our own messages apart: the same source as lock tokens.
            let instance = LockToken::random().as_str().to_owned();
            let connected = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(subscribe(
                store.clone(),
                l1,
                instance.clone(),
                Arc::clone(&connected),
            ));
            Self {
                store,
                instance,
                connected,
                task,
            }
        }

        pub(crate) async fn publish(&self, message: &Invalidation) {
            let payload = encode(message, &self.instance);
            if let Err(error) = self.store.publish(&channel(&self.store), &payload).await {
                // The other instances' L1s may now serve what was invalidated, for at most
                // their L1 TTL; say so loudly.
                tracing::warn!(%error, ?message, "invalidation not published");
            }
        }
    }

    impl Drop for Bus {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn subscribe<L1: CacheStore>(
        store: RedisStore,
        l1: L1,
        instance: String,
        connected: Arc<AtomicBool>,
    ) {
        let channel = channel(&store);
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        // At zero from the start, so that a dashboard shows 0 rather than no data.
        crate::observe::count_by("tower_edge_bus_reconnects_total", 0);
        crate::observe::count_by("tower_edge_bus_received_total", 0);
        loop {
            let pubsub = async {
                // The first node that answers (one, or any of a cluster's).
                let mut last = None;
                for client in store.clients() {
                    match client.get_async_pubsub().await {
                        Ok(mut pubsub) => {
                            pubsub.subscribe(&channel).await?;
                            return Ok(pubsub);
                        }
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no Redis node configured"))
                }))
            };
            match tokio::time::timeout(Duration::from_secs(2), pubsub).await {
                Ok(Ok(pubsub)) => {
                    if !first {
                        // Messages sent while we were away are lost: forget everything.
                        tracing::info!("invalidation bus reconnected; emptying the local cache");
                        crate::observe::count("tower_edge_bus_reconnects_total");
                        let _ = l1.purge().await;
                        store.refresh_generation();
                    }
                    first = false;
                    backoff = Duration::from_millis(50);
                    connected.store(true, Ordering::Release);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(text) = std::str::from_utf8(msg.get_payload_bytes()) else {
                            continue;
                        };
                        match decode(text) {
                            Some((from, _)) if from == instance => {}
                            Some((_, message)) => {
                                crate::observe::count("tower_edge_bus_received_total");
                                apply(&l1, &store, message).await;
                            }
                            None => {
                                tracing::warn!(payload = text, "unreadable invalidation message");
                            }
                        }
                    }
                    connected.store(false, Ordering::Release);
                    tracing::warn!("invalidation bus disconnected; reconnecting");
                }
                Ok(Err(error)) => tracing::debug!(%error, "invalidation bus cannot subscribe yet"),
                Err(_) => tracing::debug!("invalidation bus subscription timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn apply<L1: CacheStore>(l1: &L1, store: &RedisStore, message: Invalidation) {
        if message == Invalidation::Generation {
            store.refresh_generation();
        }
        if let Err(error) = l1.invalidate(&message).await {
            tracing::warn!(%error, ?message, "could not apply an invalidation to the local cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let key = CacheKey::new("GET http://a/x?y=1")
            .with_variant("enc", "br")
            .with_variant("vary:accept-language", "fr, en");
        for message in [
            Invalidation::Key(key),
            Invalidation::Resource("GET http://a/x".into()),
            Invalidation::Prefix("GET http://a/".into()),
            Invalidation::Tag("product:7".into()),
            Invalidation::Generation,
            Invalidation::Purge,
        ] {
            let text = encode(&message, "me");
            assert_eq!(decode(&text), Some(("me", message)));
        }
        assert_eq!(decode("x\nnonsense"), None);
        assert_eq!(decode(""), None);
    }
}
