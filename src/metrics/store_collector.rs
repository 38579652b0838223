//! The store's figures, published by the admin listener before each scrape
//! and emitted by a collector (so "no store yet" shows as absent families).

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What the store reports about itself, published at scrape time. A plain
/// struct so this module does not depend on the store's types.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StoreSnapshot {
    /// Users currently cached.
    pub entries: u64,
    /// Cumulative cache hits since start.
    pub hits: u64,
    /// Cumulative cache misses (loads) since start.
    pub misses: u64,
    /// Cumulative entries dropped for size or TTL.
    pub evictions: u64,
    /// Cumulative whole-cache invalidations after the access data changed.
    pub invalidations: u64,
    /// The last change marker seen (`PRAGMA data_version` or a NOTIFY count).
    pub data_version: u64,
    /// Seconds since the access data last changed or was loaded.
    pub policy_age_seconds: f64,
    /// Cumulative failed access-data queries, as the store counts them.
    pub query_errors: u64,
    /// Completed polls of the change watcher: when this stops moving,
    /// changes to the access data are no longer noticed.
    pub watcher_polls: u64,
    /// The change watcher's last read of the access data succeeded.
    pub up: bool,
}

/// Emits the store's last published snapshot on each scrape.
#[derive(Debug)]
pub(super) struct StoreCollector(pub(super) Arc<Mutex<Option<StoreSnapshot>>>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = *self.0.lock().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(());
        };
        let counters: [(&str, &str, u64); 6] = [
            ("cache_hits", "Access cache hits.", s.hits),
            ("cache_misses", "Access cache misses (loads).", s.misses),
            (
                "cache_evictions",
                "Access cache entries evicted for size or age.",
                s.evictions,
            ),
            (
                "policy_invalidations",
                "Access cache invalidations after the access data changed.",
                s.invalidations,
            ),
            (
                "store_query_errors",
                "Failed access-data queries as counted by the store (all kinds).",
                s.query_errors,
            ),
            (
                "policy_watch_polls",
                "Completed polls of the access-data change watcher; flat means changes go unnoticed.",
                s.watcher_polls,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let entries = ConstGauge::new(s.entries);
        entries.encode(encoder.encode_descriptor(
            "cache_entries",
            "Users currently in the access cache.",
            None,
            entries.metric_type(),
        )?)?;
        let up = ConstGauge::new(i64::from(s.up));
        up.encode(encoder.encode_descriptor(
            "store_up",
            "1 while the access data reads fine, 0 after the change watcher's last read failed.",
            None,
            up.metric_type(),
        )?)?;
        let version = ConstGauge::new(s.data_version);
        version.encode(encoder.encode_descriptor(
            "policy_data_version",
            "Change marker of the access data last seen.",
            None,
            version.metric_type(),
        )?)?;
        let age = ConstGauge::new(s.policy_age_seconds);
        age.encode(encoder.encode_descriptor(
            "policy_data_age",
            "Seconds since the access data last changed or was loaded.",
            Some(&Unit::Seconds),
            age.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The PostgreSQL change listener's figures (absent on SQLite, which has
/// the poller's `policy_watch_polls` instead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// One of [`LISTENER_STATES`].
    pub state: &'static str,
    /// Connections lost since start (each followed by a reconnect).
    pub reconnects: u64,
    /// Change notifications received.
    pub notifications: u64,
    /// Committed changes the counter showed without a notification.
    pub missed_changes: u64,
}

/// Every state the gauge has a series for, so a dashboard can alert on
/// `state="listening"` being 0 without knowing the others.
pub const LISTENER_STATES: [&str; 4] = ["connecting", "syncing", "listening", "reconnecting"];

/// Emits the listener's last published snapshot on each scrape.
#[derive(Debug)]
pub(super) struct ListenerCollector(pub(super) Arc<Mutex<Option<ListenerSnapshot>>>);

impl Collector for ListenerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = *self.0.lock().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "policy_listener_state",
            "1 for the PostgreSQL change listener's current state; caches are trusted only while listening.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for state in LISTENER_STATES {
            let g = ConstGauge::new(i64::from(state == s.state));
            g.encode(family.encode_family(&[("state", state)])?)?;
        }
        let counters: [(&str, &str, u64); 3] = [
            (
                "policy_listener_reconnects",
                "PostgreSQL change listener connections lost (each followed by a reconnect).",
                s.reconnects,
            ),
            (
                "policy_listener_notifications",
                "Access-data change notifications the PostgreSQL listener received.",
                s.notifications,
            ),
            (
                "policy_listener_missed_changes",
                "Committed access-data changes detected by the change counter without a notification.",
                s.missed_changes,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}
