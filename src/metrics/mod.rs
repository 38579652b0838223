//! Prometheus metrics: one [`Metrics`] value owns its own registry (no global
//! state, so tests build as many as they like) and every family modelgate
//! exports. Hot paths call the small typed `record_*`/`observe_*` methods; the
//! admin listener calls [`Metrics::publish_store`] and then
//! [`Metrics::encode_as`] on each scrape of `/metrics`, in the format the
//! scraper's `Accept` header asks for ([`Format::negotiate`]).
//!
//! # Cardinality
//! Every label value comes from a closed enum, a numeric HTTP status (at most
//! 900 values), or an organization id. Users, paths and model ids are never
//! labels: each is unbounded. Organization ids are bounded by the number of
//! organizations, and in case of a misconfiguration (ids that are really
//! per-user, say) only the first [`ORG_LABEL_CAP`] distinct ids become label
//! values; every later one is counted as `"other"`.

mod labels;
mod orgs;
mod process;
mod store_collector;
mod text;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::gate::shape::ListShape;
use labels::*;
pub use labels::{Gate, KnownListResult, Outcome, RouteLabel, StoreErrorKind, UpstreamErrorKind};
use orgs::OrgLabels;
pub use orgs::ORG_LABEL_CAP;
use process::ProcessCollector;
use store_collector::{ListenerCollector, StoreCollector};
pub use store_collector::{ListenerSnapshot, StoreSnapshot, LISTENER_STATES};
pub use text::{Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// The content type of [`Metrics::encode`] (OpenMetrics).
pub const CONTENT_TYPE: &str = OPENMETRICS_CONTENT_TYPE;

/// The git commit this binary was built from (`build.rs`: the
/// `MODELGATE_GIT_COMMIT` build-time variable, else `git rev-parse --short
/// HEAD`, else `unknown`).
pub const GIT_COMMIT: &str = env!("MODELGATE_GIT_COMMIT");

/// Request and upstream latency: sub-millisecond pass-through up to a slow
/// model call; SSE streams that last minutes fall into `+Inf`.
const REQUEST_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// An access decision is a cache lookup: microseconds, unless it has to load.
const DECISION_BUCKETS: [f64; 15] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.1,
];
/// An indexed SQLite query is tens of microseconds; a locked database or a
/// remote PostgreSQL is milliseconds to a second.
const STORE_QUERY_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 0.25, 1.0,
];

/// Whether modelgate enforces model access, as configured right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforcementState {
    /// Model access is being enforced (model filter on and not bypassed).
    pub enabled: bool,
    /// `BYPASS_MODEL_ACCESS_CONTROL`.
    pub bypass_model_access: bool,
    /// `BYPASS_ADMIN_ACCESS_CONTROL`.
    pub bypass_admin_access: bool,
}

/// Holds a gauge up by one while alive: in-flight requests, open tunnels.
/// Not `Clone`, so one guard is always one unit.
#[derive(Debug)]
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric modelgate exports. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The unprefixed `process_*` families.
    process: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    upstream_duration: Family<RouteLabels, Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    decision_duration: Family<OutcomeLabels, Histogram>,
    store_query_duration: Histogram,
    store_errors: Family<StoreErrorLabels, Counter>,
    lists_rewritten: Family<ShapeLabels, Counter>,
    list_entries_removed: Family<ShapeLabels, Counter>,
    known_model_lists: Family<KnownListLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
    config_last_reload_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    in_flight: Gauge,
    upgraded: Gauge,
    enforcement_enabled: Gauge,
    bypass: Family<BypassLabels, Gauge>,
    store: Arc<Mutex<Option<StoreSnapshot>>>,
    listener: Arc<Mutex<Option<ListenerSnapshot>>>,
    orgs: OrgLabels,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Builds and registers every family. The config-reload timestamp starts
    /// at now, since the config was just loaded.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("modelgate"),
            process: Registry::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            upstream_duration: Family::new_with_constructor(request_histogram),
            decisions: Family::default(),
            decision_duration: Family::new_with_constructor(decision_histogram),
            store_query_duration: Histogram::new(STORE_QUERY_BUCKETS),
            store_errors: Family::default(),
            lists_rewritten: Family::default(),
            list_entries_removed: Family::default(),
            known_model_lists: Family::default(),
            config_reloads: Family::default(),
            config_last_reload_success: Gauge::default(),
            upstream_errors: Family::default(),
            in_flight: Gauge::default(),
            upgraded: Gauge::default(),
            enforcement_enabled: Gauge::default(),
            bypass: Family::default(),
            store: Arc::new(Mutex::new(None)),
            listener: Arc::new(Mutex::new(None)),
            orgs: OrgLabels::default(),
        };
        // Disjoint field borrows: the registry is mutated while the families
        // beside it are cloned into it (a clone shares the same cells).
        let r = &mut m.registry;
        r.register(
            "requests",
            "Requests served, by route class and HTTP status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from request head to the end of the response body, by route class",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        r.register_with_unit(
            "upstream_duration",
            "Time from sending the request upstream to its response headers, by route class",
            Unit::Seconds,
            m.upstream_duration.clone(),
        );
        r.register(
            "decisions",
            "Model-access decisions, by outcome and organization (capped; later ids count as other)",
            m.decisions.clone(),
        );
        r.register_with_unit(
            "decision_duration",
            "Time to decide whether a model call is allowed, by outcome",
            Unit::Seconds,
            m.decision_duration.clone(),
        );
        r.register_with_unit(
            "store_query_duration",
            "Latency of access-data queries",
            Unit::Seconds,
            m.store_query_duration.clone(),
        );
        r.register(
            "store_errors",
            "Access-data store failures, by kind",
            m.store_errors.clone(),
        );
        r.register(
            "model_lists_rewritten",
            "Model-list responses filtered, by response shape",
            m.lists_rewritten.clone(),
        );
        r.register(
            "model_list_entries_removed",
            "Models removed from model-list responses, by response shape",
            m.list_entries_removed.clone(),
        );
        r.register(
            "known_model_lists",
            "Forwarded model lists looked at to learn the model ids the upstream offers, by gate and result",
            m.known_model_lists.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads, by result",
            m.config_reloads.clone(),
        );
        r.register_with_unit(
            "config_last_reload_success_timestamp",
            "Unix time of the last successful configuration load",
            Unit::Seconds,
            m.config_last_reload_success.clone(),
        );
        r.register(
            "upstream_errors",
            "Failures reaching the upstream, by kind",
            m.upstream_errors.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests whose response has not finished yet",
            m.in_flight.clone(),
        );
        r.register(
            "upgraded_connections_active",
            "Open upgraded (WebSocket) tunnels",
            m.upgraded.clone(),
        );
        r.register(
            "enforcement_enabled",
            "1 when model access is enforced, 0 when it is turned off",
            m.enforcement_enabled.clone(),
        );
        r.register(
            "access_control_bypass",
            "1 when the given access-control bypass is configured",
            m.bypass.clone(),
        );
        // An info metric the way Prometheus' own `prometheus_build_info` is
        // one: a gauge named `_info`, always 1, its facts in labels. (Not
        // the OpenMetrics `info` type: promtool and the text format 0.0.4
        // have no such type, and Prometheus stores it as a gauge anyway.)
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: GIT_COMMIT,
            })
            .set(1);
        r.register(
            "build_info",
            "The version and git commit of this binary; always 1",
            build,
        );
        r.register_collector(Box::new(StoreCollector(m.store.clone())));
        r.register_collector(Box::new(ListenerCollector(m.listener.clone())));
        m.process
            .register_collector(Box::new(ProcessCollector::new()));

        m.config_last_reload_success.set(unix_now());
        m
    }

    /// One request finished (its body ended or was abandoned).
    pub fn record_request(
        &self,
        gate: Gate,
        route: RouteLabel,
        status: StatusCode,
        duration: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                gate,
                route,
                status: status.as_u16(),
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { gate, route })
            .observe(duration.as_secs_f64());
    }

    /// The upstream's response headers arrived after `took`.
    pub fn observe_upstream(&self, gate: Gate, route: RouteLabel, took: Duration) {
        self.upstream_duration
            .get_or_create(&RouteLabels { gate, route })
            .observe(took.as_secs_f64());
    }

    /// The upstream could not be reached or did not answer.
    pub fn record_upstream_error(&self, gate: Gate, kind: UpstreamErrorKind) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels { gate, kind })
            .inc();
    }

    /// An access decision was taken in `took`. `org` is the organization
    /// that granted (or was checked for) access, `None` when there is none.
    pub fn record_decision(&self, gate: Gate, outcome: Outcome, org: Option<&str>, took: Duration) {
        let organization = match org {
            Some(id) => self.orgs.label(id),
            None => self.orgs.none.clone(),
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                gate,
                outcome,
                organization,
            })
            .inc();
        self.decision_duration
            .get_or_create(&OutcomeLabels { gate, outcome })
            .observe(took.as_secs_f64());
    }

    /// One access-data query took `took`.
    pub fn observe_store_query(&self, took: Duration) {
        self.store_query_duration.observe(took.as_secs_f64());
    }

    /// One access-data store failure.
    pub fn record_store_error(&self, kind: StoreErrorKind) {
        self.store_errors
            .get_or_create(&StoreErrorLabels { kind })
            .inc();
    }

    /// A model-list response was filtered, dropping `removed` entries.
    pub fn record_list_rewrite(&self, shape: ListShape, removed: u64) {
        let labels = ShapeLabels {
            shape: shape.into(),
        };
        self.lists_rewritten.get_or_create(&labels).inc();
        self.list_entries_removed
            .get_or_create(&labels)
            .inc_by(removed);
    }

    /// A forwarded model list was looked at to learn the known model ids.
    pub fn record_known_model_list(&self, gate: Gate, result: KnownListResult) {
        self.known_model_lists
            .get_or_create(&KnownListLabels { gate, result })
            .inc();
    }

    /// A configuration reload finished; success also moves the timestamp.
    pub fn record_config_reload(&self, ok: bool) {
        let result = if ok {
            self.config_last_reload_success.set(unix_now());
            ReloadResult::Ok
        } else {
            ReloadResult::Failed
        };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// Publishes the enforcement settings; call at start-up and after each
    /// successful reload, so "enforcement turned off" shows in metrics.
    pub fn set_enforcement(&self, state: EnforcementState) {
        self.enforcement_enabled.set(i64::from(state.enabled));
        for (scope, on) in [
            (BypassScope::ModelAccess, state.bypass_model_access),
            (BypassScope::AdminAccess, state.bypass_admin_access),
        ] {
            self.bypass
                .get_or_create(&BypassLabels { scope })
                .set(i64::from(on));
        }
    }

    /// Counts a request as in flight until the guard is dropped; hold it
    /// until the response body ends.
    pub fn track_in_flight(&self) -> GaugeGuard {
        self.in_flight.inc();
        GaugeGuard(self.in_flight.clone())
    }

    /// Counts an upgraded tunnel as open until the guard is dropped; move it
    /// into the tunnel task.
    pub fn track_upgraded(&self) -> GaugeGuard {
        self.upgraded.inc();
        GaugeGuard(self.upgraded.clone())
    }

    /// Replaces the store's figures shown on the next scrape. Until the
    /// first call the cache and policy families are absent, so a dashboard
    /// never mistakes "no store" for "empty cache".
    pub fn publish_store(&self, snapshot: StoreSnapshot) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
    }

    /// Replaces the PostgreSQL listener's figures (`None`: no listener, the
    /// families stay absent).
    pub fn publish_listener(&self, snapshot: Option<ListenerSnapshot>) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// The OpenMetrics text served at `/metrics` (see [`CONTENT_TYPE`]),
    /// ending with `# EOF`.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::with_capacity(16 * 1024);
        let encoded = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        match encoded {
            Ok(()) => out,
            Err(e) => {
                // Writing into a String cannot fail; should an encoder ever
                // report an error, serve a valid empty exposition rather
                // than a truncated one.
                tracing::error!(error = %e, "metrics encoding failed");
                String::from("# EOF\n")
            }
        }
    }

    /// The `/metrics` text in `format` (see [`Format::content_type`]).
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::Text => text::to_prometheus_text(&self.encode()),
        }
    }
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::orgs::{OrgLabel, ORG_LABEL_MAX_LEN};
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn counter<S: Clone + std::hash::Hash + Eq>(f: &Family<S, Counter>, l: &S) -> u64 {
        f.get(l).map(|c| c.get()).unwrap_or(0)
    }

    #[test]
    fn record_request_counts_by_route_and_status_and_times_the_route() {
        let m = Metrics::new();
        m.record_request(
            Gate::Ingress,
            RouteLabel::ModelCall,
            StatusCode::FORBIDDEN,
            MS,
        );
        m.record_request(
            Gate::Ingress,
            RouteLabel::ModelCall,
            StatusCode::FORBIDDEN,
            MS,
        );
        m.record_request(Gate::Ingress, RouteLabel::Pass, StatusCode::OK, MS);
        let l = RequestLabels {
            gate: Gate::Ingress,
            route: RouteLabel::ModelCall,
            status: 403,
        };
        assert_eq!(counter(&m.requests, &l), 2);
        let text = m.encode();
        assert!(text.contains(
            r#"modelgate_requests_total{gate="ingress",route="model_call",status="403"} 2"#
        ));
        assert!(text.contains(
            r#"modelgate_request_duration_seconds_count{gate="ingress",route="model_call"} 2"#
        ));
        assert!(text.contains(
            r#"modelgate_request_duration_seconds_count{gate="ingress",route="pass"} 1"#
        ));
    }

    #[test]
    fn observe_upstream_and_upstream_errors() {
        let m = Metrics::new();
        m.observe_upstream(
            Gate::Ingress,
            RouteLabel::ModelList,
            Duration::from_millis(3),
        );
        m.record_upstream_error(Gate::Ingress, UpstreamErrorKind::Connect);
        m.record_upstream_error(Gate::Ingress, UpstreamErrorKind::Connect);
        m.record_upstream_error(Gate::Ingress, UpstreamErrorKind::Timeout);
        let text = m.encode();
        assert!(text.contains(
            r#"modelgate_upstream_duration_seconds_count{gate="ingress",route="model_list"} 1"#
        ));
        // 3 ms: not in the 2.5 ms bucket, in the 5 ms one.
        assert!(text.contains(
            r#"modelgate_upstream_duration_seconds_bucket{le="0.0025",gate="ingress",route="model_list"} 0"#
        ));
        assert!(text.contains(
            r#"modelgate_upstream_duration_seconds_bucket{le="0.005",gate="ingress",route="model_list"} 1"#
        ));
        let k = |kind| UpstreamErrorLabels {
            gate: Gate::Ingress,
            kind,
        };
        assert_eq!(
            counter(&m.upstream_errors, &k(UpstreamErrorKind::Connect)),
            2
        );
        assert_eq!(
            counter(&m.upstream_errors, &k(UpstreamErrorKind::Timeout)),
            1
        );
        assert_eq!(counter(&m.upstream_errors, &k(UpstreamErrorKind::Reset)), 0);
    }

    #[test]
    fn record_decision_counts_by_outcome_and_org() {
        let m = Metrics::new();
        m.record_decision(
            Gate::Ingress,
            Outcome::Allowed,
            Some("acme"),
            Duration::from_micros(3),
        );
        m.record_decision(
            Gate::Ingress,
            Outcome::Allowed,
            Some("acme"),
            Duration::from_micros(3),
        );
        m.record_decision(
            Gate::Ingress,
            Outcome::Unauthenticated,
            None,
            Duration::from_micros(1),
        );
        let l = |outcome, org: &str| DecisionLabels {
            gate: Gate::Ingress,
            outcome,
            organization: OrgLabel(Arc::from(org)),
        };
        assert_eq!(counter(&m.decisions, &l(Outcome::Allowed, "acme")), 2);
        assert_eq!(
            counter(&m.decisions, &l(Outcome::Unauthenticated, "none")),
            1
        );
        let text = m.encode();
        assert!(text.contains(
            r#"modelgate_decision_duration_seconds_count{gate="ingress",outcome="allowed"} 2"#
        ));
    }

    #[test]
    fn organization_labels_are_capped_and_sanitized() {
        let m = Metrics::new();
        for i in 0..ORG_LABEL_CAP + 100 {
            m.record_decision(
                Gate::Ingress,
                Outcome::Allowed,
                Some(&format!("org-{i}")),
                MS,
            );
        }
        // Seen orgs keep their label after the cap is reached.
        m.record_decision(Gate::Ingress, Outcome::Denied, Some("org-0"), MS);
        let other = DecisionLabels {
            gate: Gate::Ingress,
            outcome: Outcome::Allowed,
            organization: OrgLabel(Arc::from("other")),
        };
        assert_eq!(counter(&m.decisions, &other), 100);
        let org0 = DecisionLabels {
            gate: Gate::Ingress,
            outcome: Outcome::Denied,
            organization: OrgLabel(Arc::from("org-0")),
        };
        assert_eq!(counter(&m.decisions, &org0), 1);

        let o = OrgLabels::default();
        assert_eq!(&*o.label("a\"b\\c\nd}").0, "a_b_c_d_");
        assert_eq!(&*o.label(&"x".repeat(ORG_LABEL_MAX_LEN + 1)).0, "other");
        assert_eq!(&*o.label("").0, "none");
    }

    #[test]
    fn store_query_and_errors() {
        let m = Metrics::new();
        m.observe_store_query(Duration::from_micros(40));
        m.record_store_error(StoreErrorKind::Query);
        let text = m.encode();
        assert!(text.contains("modelgate_store_query_duration_seconds_count 1"));
        assert!(text.contains(r#"modelgate_store_errors_total{kind="query"} 1"#));
    }

    #[test]
    fn list_rewrites_count_lists_and_removed_entries() {
        let m = Metrics::new();
        m.record_list_rewrite(ListShape::Data, 3);
        m.record_list_rewrite(ListShape::Data, 0);
        m.record_list_rewrite(ListShape::OllamaModels, 2);
        let l = |shape| ShapeLabels { shape };
        assert_eq!(counter(&m.lists_rewritten, &l(ShapeLabel::Data)), 2);
        assert_eq!(counter(&m.list_entries_removed, &l(ShapeLabel::Data)), 3);
        assert_eq!(
            counter(&m.list_entries_removed, &l(ShapeLabel::OllamaModels)),
            2
        );
        assert!(m
            .encode()
            .contains(r#"modelgate_model_list_entries_removed_total{shape="ollama_models"} 2"#));
    }

    #[test]
    fn config_reloads_move_the_success_timestamp_only_on_success() {
        let m = Metrics::new();
        let start = m.config_last_reload_success.get();
        assert!(start > 1.0e9, "set at construction");
        m.config_last_reload_success.set(5.0);
        m.record_config_reload(false);
        assert_eq!(m.config_last_reload_success.get(), 5.0);
        m.record_config_reload(true);
        assert!(m.config_last_reload_success.get() >= start);
        let r = |result| ReloadLabels { result };
        assert_eq!(counter(&m.config_reloads, &r(ReloadResult::Ok)), 1);
        assert_eq!(counter(&m.config_reloads, &r(ReloadResult::Failed)), 1);
    }

    #[test]
    fn enforcement_and_bypass_gauges_follow_the_state() {
        let m = Metrics::new();
        m.set_enforcement(EnforcementState {
            enabled: true,
            ..Default::default()
        });
        assert_eq!(m.enforcement_enabled.get(), 1);
        m.set_enforcement(EnforcementState {
            enabled: false,
            bypass_model_access: true,
            bypass_admin_access: false,
        });
        assert_eq!(m.enforcement_enabled.get(), 0);
        let text = m.encode();
        assert!(text.contains("modelgate_enforcement_enabled 0"));
        assert!(text.contains(r#"modelgate_access_control_bypass{scope="model_access"} 1"#));
        assert!(text.contains(r#"modelgate_access_control_bypass{scope="admin_access"} 0"#));
    }

    #[test]
    fn guards_hold_the_gauges_up_while_alive() {
        let m = Metrics::new();
        let a = m.track_in_flight();
        let b = m.track_in_flight();
        let t = m.track_upgraded();
        assert_eq!((m.in_flight.get(), m.upgraded.get()), (2, 1));
        drop(a);
        assert_eq!(m.in_flight.get(), 1);
        drop((b, t));
        assert_eq!((m.in_flight.get(), m.upgraded.get()), (0, 0));
    }

    #[test]
    fn store_families_appear_once_published_and_show_the_last_snapshot() {
        let m = Metrics::new();
        assert!(!m.encode().contains("modelgate_cache_hits"));
        m.publish_store(StoreSnapshot {
            hits: 1,
            ..Default::default()
        });
        m.publish_store(StoreSnapshot {
            entries: 7,
            hits: 40,
            misses: 9,
            evictions: 2,
            invalidations: 3,
            data_version: 12,
            policy_age_seconds: 1.5,
            query_errors: 1,
            watcher_polls: 30,
            up: true,
        });
        let text = m.encode();
        for line in [
            "modelgate_cache_entries 7",
            "modelgate_cache_hits_total 40",
            "modelgate_cache_misses_total 9",
            "modelgate_cache_evictions_total 2",
            "modelgate_policy_invalidations_total 3",
            "modelgate_policy_data_version 12",
            "modelgate_policy_data_age_seconds 1.5",
            "modelgate_store_query_errors_total 1",
            "modelgate_policy_watch_polls_total 30",
            "modelgate_store_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn listener_families_appear_only_with_a_listener() {
        let m = Metrics::new();
        m.publish_listener(None);
        assert!(!m.encode().contains("policy_listener"));
        m.publish_listener(Some(ListenerSnapshot {
            state: "reconnecting",
            reconnects: 2,
            notifications: 5,
            missed_changes: 1,
        }));
        let text = m.encode();
        for line in [
            r#"modelgate_policy_listener_state{state="connecting"} 0"#,
            r#"modelgate_policy_listener_state{state="syncing"} 0"#,
            r#"modelgate_policy_listener_state{state="listening"} 0"#,
            r#"modelgate_policy_listener_state{state="reconnecting"} 1"#,
            "modelgate_policy_listener_reconnects_total 2",
            "modelgate_policy_listener_notifications_total 5",
            "modelgate_policy_listener_missed_changes_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(text.contains("# TYPE modelgate_policy_listener_state gauge\n"));
        assert!(text.contains("# TYPE modelgate_policy_listener_reconnects counter\n"));
    }

    #[test]
    fn build_info_and_eof() {
        let text = Metrics::new().encode();
        let want = format!(
            "modelgate_build_info{{version=\"{}\",commit=\"{GIT_COMMIT}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == want), "{text}");
        assert!(
            text.contains("# TYPE modelgate_build_info gauge\n"),
            "{text}"
        );
        assert!(!GIT_COMMIT.is_empty());
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_families_come_unprefixed_from_proc() {
        let text = Metrics::new().encode_as(Format::Text);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name}:\n{text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e5);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let start = value("process_start_time_seconds");
        let now = unix_now();
        assert!(start > 1.0e9 && start <= now + 1.0, "{start} vs {now}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    }

    #[test]
    fn text_format_describes_every_sample_family() {
        let m = Metrics::new();
        m.record_request(Gate::Ingress, RouteLabel::Pass, StatusCode::OK, MS);
        m.record_decision(Gate::Egress, Outcome::Denied, Some("acme"), MS);
        m.record_config_reload(false);
        m.publish_store(StoreSnapshot::default());
        let text = m.encode_as(Format::Text);
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        let mut typed = std::collections::HashMap::new();
        for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = l.split_once(' ').unwrap();
            typed.insert(name.to_owned(), kind.to_owned());
            let help = format!("# HELP {name} ");
            assert!(text.contains(&help), "no help for {name}");
        }
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
                .unwrap_or(name);
            let kind = typed
                .get(family)
                .unwrap_or_else(|| panic!("untyped {name}"));
            assert_eq!(kind == "counter", family.ends_with("_total"), "{family}");
        }
        assert!(text.contains("modelgate_decisions_total{gate=\"egress\",outcome=\"denied\",organization=\"acme\"} 1\n"));
    }

    #[test]
    fn help_texts_need_no_escaping() {
        let text = Metrics::new().encode();
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(!help.contains('"') && !help.contains('\\'), "{help}");
        }
    }
}
