//! The change listener on PostgreSQL, in place of the SQLite poller: one
//! dedicated connection per store (not from the pool: LISTEN belongs to a
//! session, and PgBouncer's transaction pooling would lose it) that
//! LISTENs, then invalidates everything, then relies on notifications.
//!
//! States (`ListenerState`):
//! - `connecting`: no connection; the caches are not trusted, every lookup
//!   reads through to the database (a database error is a 503).
//! - `syncing`: LISTEN is in place; waiting for the first heartbeat to
//!   come back, which proves notifications arrive. Then: invalidate all,
//!   trust the caches, `listening`.
//! - `listening`: each notification invalidates. A heartbeat (a NOTIFY to
//!   this connection's own channel) goes out every `heartbeat`; when none
//!   has come back for three intervals the connection is taken for dead
//!   (a half-open TCP connection never errors by itself).
//! - `reconnecting`: lost (error, closed, heartbeat late): distrust the
//!   caches and bump the generation at once, drop the pool's idle
//!   connections, wait (backoff, doubling up to a cap), connect again.
//!
//! The heartbeat also reads `modelgate_change_counter`, which every
//! notifying transaction bumps once and names in its payload. PostgreSQL
//! delivers notifications in commit order, so when heartbeat n is back,
//! the notifications of every change its snapshot saw have arrived: a
//! counter beyond the highest version notified is a change whose
//! notification was lost. It is invalidated for and counted
//! (`missed_changes`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::schema::CHANNEL;
use crate::store::database::PgTarget;
use crate::store::error::StoreError;
use crate::store::watch::WatchTarget;

/// The heartbeat interval; a heartbeat is late after three of them.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
const MISSED_HEARTBEATS: u32 = 3;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The listener's `application_name` (what `pg_stat_activity` shows).
pub const APPLICATION_NAME: &str = "modelgate-listener";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerState {
    Connecting,
    Syncing,
    Listening,
    Reconnecting,
}

/// The listener's counters, for `StoreStats` (and so `/health/detailed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerStats {
    pub state: ListenerState,
    /// Connections lost (each followed by a reconnect attempt).
    pub reconnects: u64,
    /// Change notifications received.
    pub notifications: u64,
    /// Changes the counter showed without a notification.
    pub missed_changes: u64,
    /// Heartbeats that came back.
    pub heartbeats: u64,
    /// Lookups that read through because the caches were not trusted.
    pub read_throughs: u64,
}

/// Shared between the listener task and the store handle.
#[derive(Default)]
pub(crate) struct ListenerShared {
    state: AtomicU8,
    reconnects: AtomicU64,
    notifications: AtomicU64,
    missed_changes: AtomicU64,
    heartbeats: AtomicU64,
    pub read_throughs: AtomicU64,
}

impl ListenerShared {
    pub fn stats(&self) -> ListenerStats {
        ListenerStats {
            state: match self.state.load(Ordering::Acquire) {
                1 => ListenerState::Syncing,
                2 => ListenerState::Listening,
                3 => ListenerState::Reconnecting,
                _ => ListenerState::Connecting,
            },
            reconnects: self.reconnects.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
            missed_changes: self.missed_changes.load(Ordering::Relaxed),
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            read_throughs: self.read_throughs.load(Ordering::Relaxed),
        }
    }

    fn set(&self, state: ListenerState) {
        let n = match state {
            ListenerState::Connecting => 0,
            ListenerState::Syncing => 1,
            ListenerState::Listening => 2,
            ListenerState::Reconnecting => 3,
        };
        self.state.store(n, Ordering::Release);
    }
}

/// What the connection task and the heartbeats tell the loop, in the
/// order they happened on the connection.
enum Event {
    Notification {
        channel: String,
        payload: String,
    },
    /// Heartbeat n's query answered with the counter it read.
    Counter(u64, i64),
    Failed(String),
}

enum Ended {
    /// Shut down, or the store is gone: stop.
    Stop,
    Lost(String),
}

/// Runs until the store is dropped or `shutdown` is cancelled.
pub(crate) async fn run<T: WatchTarget>(
    target: Weak<T>,
    shutdown: CancellationToken,
    database: PgTarget,
    shared: Arc<ListenerShared>,
) {
    // This replica's own heartbeat channel: other replicas' heartbeats
    // never reach it.
    let heartbeat_channel = format!("modelgate_hb_{}", uuid::Uuid::new_v4().simple());
    let mut backoff = MIN_BACKOFF;
    let mut warned = false;
    loop {
        let reached_good;
        let ended = {
            let mut good = false;
            let ended = session(
                &target,
                &shutdown,
                &database,
                &shared,
                &heartbeat_channel,
                &mut good,
            )
            .await;
            reached_good = good;
            ended
        };
        let reason = match ended {
            Ended::Stop => break,
            Ended::Lost(reason) => reason,
        };
        let Some(store) = target.upgrade() else { break };
        let caches = store.caches();
        // Distrust first, then move the generation: a lookup between the
        // two reads through rather than from a cache about to be dropped.
        caches.set_trusted(false);
        caches.changed(None);
        store.reset_connections();
        caches.set_error(Some(format!("change listener: {reason}")));
        shared.set(ListenerState::Reconnecting);
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        if reached_good {
            backoff = MIN_BACKOFF;
            warned = false;
        }
        if !warned {
            tracing::warn!(error = %reason, "PostgreSQL change listener lost; reading through to the database until it is back");
            warned = true;
        } else {
            tracing::debug!(error = %reason, "PostgreSQL change listener still down");
        }
        drop(store);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::debug!("PostgreSQL change listener stopped");
}

/// One connection's life. `good` is set once the caches were trusted.
async fn session<T: WatchTarget>(
    target: &Weak<T>,
    shutdown: &CancellationToken,
    database: &PgTarget,
    shared: &ListenerShared,
    heartbeat_channel: &str,
    good: &mut bool,
) -> Ended {
    shared.set(ListenerState::Connecting);
    let late = HEARTBEAT * MISSED_HEARTBEATS;
    let (client, events) = match tokio::time::timeout(
        late.max(Duration::from_secs(5)),
        connect(database, heartbeat_channel),
    )
    .await
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost("connecting timed out".into()),
    };
    let mut events = events;
    shared.set(ListenerState::Syncing);
    let client = Arc::new(client);
    let (counter_tx, mut counters) = mpsc::unbounded_channel::<Event>();
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: u64 = 0;
    let mut last_ack = Instant::now();
    // Heartbeats whose notification is back, and counters read, by number.
    let mut acked: BTreeMap<u64, Option<i64>> = BTreeMap::new();
    let mut counters_read: BTreeMap<u64, i64> = BTreeMap::new();
    let mut highest_notified: i64 = i64::MIN;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return Ended::Stop,
            _ = ticker.tick() => {
                if target.strong_count() == 0 {
                    return Ended::Stop;
                }
                if last_ack.elapsed() > late {
                    return Ended::Lost(format!("no heartbeat for {} ms", last_ack.elapsed().as_millis()));
                }
                sent += 1;
                send_heartbeat(&client, heartbeat_channel, sent, counter_tx.clone());
                continue;
            }
            e = events.recv() => e,
            e = counters.recv() => e,
        };
        let Some(event) = event else {
            return Ended::Lost("connection closed".into());
        };
        let Some(store) = target.upgrade() else {
            return Ended::Stop;
        };
        let caches = store.caches();
        let ready = match event {
            Event::Failed(reason) => return Ended::Lost(reason),
            Event::Notification { channel, payload } if channel == CHANNEL => {
                shared.notifications.fetch_add(1, Ordering::Relaxed);
                if let Some(version) = payload
                    .rsplit_once(' ')
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                {
                    highest_notified = highest_notified.max(version);
                }
                if *good {
                    tracing::debug!(change = %payload, "access data changed; caches invalidated");
                    caches.changed(None);
                }
                None
            }
            Event::Notification { payload, .. } => match payload.parse::<u64>() {
                Ok(n) => {
                    acked.insert(n, None);
                    Some(n)
                }
                Err(_) => None,
            },
            Event::Counter(n, version) => {
                counters_read.insert(n, version);
                Some(n)
            }
        };
        // A heartbeat counts once both its notification and its counter
        // are back (they travel separately).
        let Some(n) = ready else { continue };
        let (Some(_), Some(&version)) = (acked.get(&n), counters_read.get(&n)) else {
            continue;
        };
        acked.retain(|&k, _| k > n);
        counters_read.retain(|&k, _| k > n);
        last_ack = Instant::now();
        shared.heartbeats.fetch_add(1, Ordering::Relaxed);
        if *good {
            if version > highest_notified {
                shared.missed_changes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    counter = version,
                    notified = highest_notified,
                    "a committed access change was not notified; caches invalidated"
                );
                caches.changed(None);
            }
        } else {
            // LISTEN is in place and notifications arrive: everything
            // cached before is suspect, everything after will be notified.
            caches.changed(None);
            caches.set_trusted(true);
            caches.set_error(None);
            shared.set(ListenerState::Listening);
            *good = true;
            tracing::info!("PostgreSQL change listener listening; caches trusted");
        }
        highest_notified = highest_notified.max(version);
        store.polled();
    }
}

/// Connects, forwards the connection's notifications into a channel (the
/// connection must be polled for the client to work at all), LISTENs.
async fn connect(
    database: &PgTarget,
    heartbeat_channel: &str,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<Event>), StoreError> {
    let tls = super::tls::connector(database.tls()).map_err(StoreError::Unavailable)?;
    let mut config = database.config().clone();
    config.application_name(APPLICATION_NAME);
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            let event = match message {
                Ok(AsyncMessage::Notification(n)) => Event::Notification {
                    channel: n.channel().to_string(),
                    payload: n.payload().to_string(),
                },
                Ok(_) => continue,
                Err(e) => Event::Failed(StoreError::from(e).to_string()),
            };
            if tx.send(event).is_err() {
                return;
            }
        }
        let _ = tx.send(Event::Failed("connection closed".into()));
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {heartbeat_channel}"))
        .await?;
    Ok((client, rx))
}

/// Sends heartbeat `n` without waiting for it: on a half-open connection
/// the query never answers, and the lateness check must still run.
fn send_heartbeat(
    client: &Arc<tokio_postgres::Client>,
    channel: &str,
    n: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    let client = Arc::clone(client);
    let channel = channel.to_string();
    tokio::spawn(async move {
        let result = client
            .query_one(
                "SELECT version, pg_notify($1, $2) FROM modelgate_change_counter WHERE id = 1",
                &[&channel, &n.to_string()],
            )
            .await;
        let event = match result.and_then(|row| row.try_get::<_, i64>(0)) {
            Ok(version) => Event::Counter(n, version),
            Err(e) => Event::Failed(format!("heartbeat: {}", StoreError::from(e))),
        };
        let _ = events.send(event);
    });
}
