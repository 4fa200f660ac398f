//! The standard `process_*` metrics (the names every Prometheus client library
//! exports), read from `/proc/self` on Linux. Elsewhere the collector exports nothing.
//!
//! Read at scrape time, so the values are current and cost nothing between scrapes.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge};

/// Linux reports CPU times in USER_HZ ticks, fixed at 100 for user space on every
/// architecture (the Go and Python clients assume the same).
const TICKS_PER_SECOND: f64 = 100.0;

/// A snapshot of the process, as the kernel reports it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size in bytes.
    pub virtual_memory_bytes: u64,
    /// User and system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    /// Start time in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads this process's numbers; `None` where `/proc` is missing or unreadable.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Self::parse(&stat, &status, &limits, &boot, open_fds)
    }

    /// Parses the contents of `/proc/self/{stat,status,limits}` and `/proc/stat`.
    fn parse(stat: &str, status: &str, limits: &str, boot: &str, open_fds: u64) -> Option<Self> {
        // The command name (field 2) may hold spaces and parentheses: fields are
        // counted from the last `)`. After it come field 3 (state) onwards.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let (utime, stime, start_ticks, vsize) = (field(14)?, field(15)?, field(22)?, field(23)?);
        let kib = |key: &str| {
            status.lines().find_map(|l| l.strip_prefix(key)).and_then(|rest| {
                rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|k| k * 1024)
            })
        };
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse().ok())
            .unwrap_or(u64::MAX);
        let boot_time: u64 =
            boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
        Some(Self {
            resident_memory_bytes: kib("VmRSS:")?,
            virtual_memory_bytes: vsize,
            cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
            open_fds,
            max_fds,
            start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

/// Exports [`ProcessStats`] under the standard names, unprefixed.
pub struct ProcessCollector {
    resident_memory: IntGauge,
    virtual_memory: IntGauge,
    cpu: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start_time: Gauge,
    descs: Vec<Desc>,
    /// One scrape at a time, so two cannot both add the same CPU time.
    reading: Mutex<()>,
}

impl ProcessCollector {
    /// The collector, its series not yet read.
    pub fn new() -> Self {
        let int = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let float = |name: &str, help: &str| Gauge::new(name, help).expect("valid metric");
        let cpu = Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("valid metric");
        let this = Self {
            resident_memory: int("process_resident_memory_bytes", "Resident memory size in bytes."),
            virtual_memory: int("process_virtual_memory_bytes", "Virtual memory size in bytes."),
            cpu,
            open_fds: int("process_open_fds", "Number of open file descriptors."),
            max_fds: int("process_max_fds", "Maximum number of open file descriptors."),
            start_time: float(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
            descs: Vec::new(),
            reading: Mutex::new(()),
        };
        let descs = this.metrics().iter().flat_map(|m| m.desc()).cloned().collect();
        Self { descs, ..this }
    }

    fn metrics(&self) -> [&dyn Collector; 6] {
        [
            &self.resident_memory,
            &self.virtual_memory,
            &self.cpu,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
        ]
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stats) = ProcessStats::read() else { return Vec::new() };
        let saturate = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.resident_memory.set(saturate(stats.resident_memory_bytes));
        self.virtual_memory.set(saturate(stats.virtual_memory_bytes));
        // The kernel's total only grows; the counter follows it.
        let behind = stats.cpu_seconds - self.cpu.get();
        if behind > 0.0 {
            self.cpu.inc_by(behind);
        }
        self.open_fds.set(saturate(stats.open_fds));
        self.max_fds.set(saturate(stats.max_fds));
        self.start_time.set(stats.start_time_seconds);
        self.metrics().iter().flat_map(|m| m.collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        // A command name with a space and a parenthesis, as the kernel allows.
        let stat = "4242 (road (runner) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                    250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615";
        let status = "Name:\troad\nVmPeak:\t  200000 kB\nVmRSS:\t   10240 kB\nThreads:\t9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let stats = ProcessStats::parse(stat, status, limits, boot, 17).expect("parsed");
        assert_eq!(
            stats,
            ProcessStats {
                resident_memory_bytes: 10240 * 1024,
                virtual_memory_bytes: 104_857_600,
                cpu_seconds: 3.0,
                open_fds: 17,
                max_fds: 1024,
                start_time_seconds: 1_700_000_123.45,
            }
        );
    }

    #[test]
    fn exports_standard_names_on_linux() {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(ProcessCollector::new())).expect("registered");
        let families = registry.gather();
        if cfg!(target_os = "linux") {
            let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
            for name in [
                "process_resident_memory_bytes",
                "process_cpu_seconds_total",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
            ] {
                assert!(names.contains(&name), "{name} missing from {names:?}");
            }
            let rss = families.iter().find(|f| f.name() == "process_resident_memory_bytes");
            assert!(rss.expect("rss").get_metric()[0].get_gauge().get_value() > 0.0);
        }
    }
}
