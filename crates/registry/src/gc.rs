//! Online garbage collection of blobs no manifest references, and the
//! schedules of GC and lifecycle runs.
//!
//! It never blocks pushes or pulls for long: marking reads without locks,
//! and each removal holds the GC lock exclusively only while it checks the
//! blob's last use and unlinks it. Pushes touch the blobs they reference
//! (under the shared lock) before checking them, and GC spares anything
//! touched within the grace window, so a blob an upload or a manifest push
//! in progress needs is never removed.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::ParsedManifest;
use crate::server::App;
use crate::storage::Storage;

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    pub bytes_freed: u64,
    pub uploads_expired: usize,
    pub links_removed: usize,
}

/// Every blob some manifest in some repository needs.
fn mark(s: &dyn Storage) -> Result<HashSet<Digest>> {
    let mut live = HashSet::new();
    for repo in s.repositories()? {
        for (digest, link) in s.manifests(&repo)? {
            if let Some(mut blob) = s.open_blob(&digest)? {
                let mut data = Vec::new();
                if std::io::Read::read_to_end(&mut blob.reader, &mut data).is_ok() {
                    if let Ok(m) = ParsedManifest::parse(&data, Some(&link.media_type)) {
                        live.extend(m.blobs);
                    }
                }
            }
            live.insert(digest);
        }
    }
    Ok(live)
}

/// One collection. `lock` is taken exclusively around each removal; the
/// command line passes a lock of its own.
pub fn collect(
    s: &dyn Storage,
    lock: &tokio::sync::RwLock<()>,
    grace: Duration,
    upload_expiry: Duration,
    dry_run: bool,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let started = SystemTime::now();
    let live = mark(s)?;
    for (digest, last_used) in s.blobs()? {
        if live.contains(&digest) || started.duration_since(last_used).unwrap_or_default() < grace {
            continue;
        }
        let _exclusive = lock.blocking_write();
        // A push may have touched it since the listing.
        let still_old = s
            .blobs_last_used(&digest)?
            .is_some_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= grace);
        if !still_old {
            continue;
        }
        report.bytes_freed += s.blob_size(&digest)?.unwrap_or(0);
        if !dry_run {
            s.delete_blob(&digest)?;
        }
        report.blobs_removed.push(digest);
    }
    for (id, changed) in s.uploads()? {
        if started.duration_since(changed).unwrap_or_default() > upload_expiry {
            if !dry_run {
                let _ = s.cancel_upload(&id);
            }
            report.uploads_expired += 1;
        }
    }
    // Links to content that is gone would only answer 404 later.
    if !dry_run {
        for repo in s.repositories()? {
            report.links_removed += s.prune_blob_links(&repo)?;
        }
    }
    Ok(report)
}

/// Starts the scheduled GC and lifecycle runs of a serving registry.
pub fn spawn_schedules(app: &Arc<App>) {
    let gc = app.config.gc.clone();
    if gc.interval_secs > 0 {
        let app = Arc::clone(app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(gc.interval_secs));
            tick.tick().await;
            loop {
                tick.tick().await;
                run_gc(&app, false).await;
            }
        });
    }
    let lifecycle = app.config.lifecycle.clone();
    if lifecycle.interval_secs > 0 {
        let app = Arc::clone(app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(lifecycle.interval_secs));
            loop {
                tick.tick().await;
                let result = app
                    .blocking(|s| crate::lifecycle::run(s, None, false))
                    .await;
                app.metrics.lifecycle_runs.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(removed) => {
                        for e in &removed {
                            app.audit.record(
                                "lifecycle",
                                "-",
                                "delete",
                                &e.repository,
                                &e.digest.to_string(),
                                &e.reason,
                            );
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "lifecycle run failed"),
                }
            }
        });
    }
}

/// One GC run inside the server, recorded in metrics and the audit log.
pub async fn run_gc(app: &Arc<App>, dry_run: bool) -> Option<GcReport> {
    let grace = Duration::from_secs(app.config.gc.grace_secs);
    let expiry = Duration::from_secs(app.config.gc.upload_expiry_secs);
    let app2 = Arc::clone(app);
    let result = tokio::task::spawn_blocking(move || {
        collect(app2.storage.as_ref(), &app2.gc_lock, grace, expiry, dry_run)
    })
    .await;
    app.metrics.gc_runs.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(Ok(report)) => {
            app.metrics
                .gc_blobs_removed
                .fetch_add(report.blobs_removed.len() as u64, Ordering::Relaxed);
            app.audit.record(
                "gc",
                "-",
                "gc",
                "",
                &format!(
                    "{} blobs, {} bytes",
                    report.blobs_removed.len(),
                    report.bytes_freed
                ),
                "ok",
            );
            Some(report)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "garbage collection failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "garbage collection panicked");
            None
        }
    }
}
