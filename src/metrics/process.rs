//! The `process_*` families every Prometheus client library exports (names
//! and meanings as client_golang's process collector), read from `/proc` on
//! each scrape: the README's memory figures and the fd limit become
//! visible to Prometheus. Registered without the `modelgate_` prefix, so the
//! usual dashboards and alerts for any process work unchanged.
//!
//! Off Linux there is no `/proc`: the collector emits nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// Emits the process families on each scrape; a figure that cannot be read
/// (a hardened `/proc`, say) is left out rather than reported as 0.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// Unix time the process started, in seconds; fixed, so read once, at
    /// the first scrape. (Not at start-up: procfs's boot-time read crashes
    /// under valgrind, which `load/callgrind.sh` runs the gates in.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    start_time: std::sync::OnceLock<Option<f64>>,
}

impl ProcessCollector {
    pub(super) fn new() -> Self {
        ProcessCollector {
            start_time: std::sync::OnceLock::new(),
        }
    }
}

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        linux::encode(self, encoder)
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use procfs::process::{LimitValue, Process};
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Unit;

    use super::ProcessCollector;

    /// The start time from `/proc/self/stat` (clock ticks after boot) and
    /// the boot time from `/proc/stat`.
    pub(super) fn start_time() -> Option<f64> {
        let stat = Process::myself().and_then(|p| p.stat()).ok()?;
        let boot = procfs::boot_time_secs().ok()?;
        let ticks = procfs::ticks_per_second().max(1);
        Some(boot as f64 + stat.starttime as f64 / ticks as f64)
    }

    pub(super) fn encode(
        c: &ProcessCollector,
        mut encoder: DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let Ok(me) = Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second().max(1) as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                stat.rss.saturating_mul(procfs::page_size()) as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
        }
        if let Some(start) = *c.start_time.get_or_init(start_time) {
            gauge(
                &mut encoder,
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(&Unit::Seconds),
                start,
            )?;
        }
        if let Ok(open) = me.fd_count() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                open as f64,
            )?;
        }
        if let Ok(limits) = me.limits() {
            // An unlimited soft limit has no number to show.
            if let LimitValue::Value(max) = limits.max_open_files.soft_limit {
                gauge(
                    &mut encoder,
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    None,
                    max as f64,
                )?;
            }
        }
        Ok(())
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: f64,
    ) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(value);
        g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
    }
}

#[cfg(not(target_os = "linux"))]
mod linux {
    pub(super) fn start_time() -> Option<f64> {
        None
    }
}
