//! Prometheus counters, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub gc_runs: AtomicU64,
    pub gc_blobs_removed: AtomicU64,
    pub lifecycle_runs: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: &'static str, method: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route, method.to_string(), status)).or_default() += 1;
    }

    pub fn render(&self, upload_sessions: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP estiba_registry_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE estiba_registry_requests_total counter");
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "estiba_registry_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        drop(map);
        let counters = [
            (
                "estiba_registry_bytes_received_total",
                "Bytes received in uploads and manifests.",
                &self.bytes_in,
            ),
            (
                "estiba_registry_bytes_sent_total",
                "Bytes sent in blob and manifest bodies.",
                &self.bytes_out,
            ),
            (
                "estiba_registry_gc_runs_total",
                "Garbage collection runs.",
                &self.gc_runs,
            ),
            (
                "estiba_registry_gc_blobs_removed_total",
                "Blobs removed by garbage collection.",
                &self.gc_blobs_removed,
            ),
            (
                "estiba_registry_lifecycle_runs_total",
                "Lifecycle policy runs.",
                &self.lifecycle_runs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP estiba_registry_upload_sessions Uploads in progress.\n# TYPE estiba_registry_upload_sessions gauge\nestiba_registry_upload_sessions {upload_sessions}"
        );
        out
    }
}
