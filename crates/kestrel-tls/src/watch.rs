//! Watching certificate files and reloading them when they change (Kestrel's
//! `CertificatePathWatcher`).
//!
//! The *directories* holding the files are watched, not the files: deploy
//! tools and certbot replace a file by renaming a new one over it (a new
//! inode, which a watch on the old inode would never see), and Kubernetes
//! swaps a `..data` symlink. Any event in a watched directory (after a short
//! quiet period, so that a file written in several steps is read once)
//! makes every certificate of that directory compare its files with what it
//! loaded last and reload when they differ. A reload that fails leaves the
//! old certificate in service and logs an error naming the file; the same
//! bytes are not tried again, the next change is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::certificate::{Certificate, ReloadOutcome};

/// How long the files must stay quiet before they are read again.
const QUIET: Duration = Duration::from_millis(100);

/// Watches the files of some certificates and reloads them on change. The
/// watch ends when this is dropped.
pub(crate) struct CertificateWatcher {
    _watcher: notify::RecommendedWatcher,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for CertificateWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateWatcher")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

/// Whether an event may mean that a file's content changed (not a read:
/// reloading opens the files too).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl CertificateWatcher {
    /// Watch the files of the file-backed certificates among `certificates`.
    /// `None` when none is file-backed, or when the platform's watcher could
    /// not be created (logged as a warning: the certificates then stay as
    /// loaded, as with watching off).
    pub(crate) fn start(certificates: Vec<Certificate>) -> Option<Self> {
        let certificates: Vec<Certificate> = certificates
            .into_iter()
            .filter(|c| !c.file_paths().is_empty())
            .collect();
        if certificates.is_empty() {
            return None;
        }
        let dirs: BTreeSet<PathBuf> = certificates
            .iter()
            .flat_map(|c| c.file_paths())
            .map(|p| directory_of(&p))
            .collect();
        let (tx, rx) = mpsc::channel::<()>();
        let handler = move |event: notify::Result<Event>| match event {
            Ok(e) if is_change(&e.kind) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "kestrel::tls", error = %e, "certificate file watcher error");
                let _ = tx.send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(target: "kestrel::tls", error = %e, "could not watch certificate files; certificates will not be reloaded when they change");
                return None;
            }
        };
        let mut watched = Vec::new();
        for dir in dirs {
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(target: "kestrel::tls", dir = %dir.display(), "watching certificate files");
                    watched.push(dir);
                }
                Err(e) => {
                    tracing::warn!(target: "kestrel::tls", dir = %dir.display(), error = %e, "could not watch the directory of a certificate file; it will not be reloaded when it changes");
                }
            }
        }
        let spawned = std::thread::Builder::new()
            .name("kestrel-cert-watch".into())
            .spawn(move || reload_loop(&rx, &certificates));
        if let Err(e) = spawned {
            tracing::warn!(target: "kestrel::tls", error = %e, "could not start the certificate reload thread");
            return None;
        }
        Some(CertificateWatcher {
            _watcher: watcher,
            dirs: watched,
        })
    }
}

/// Wait for events, let them settle, reload; until the watcher is dropped.
fn reload_loop(rx: &mpsc::Receiver<()>, certificates: &[Certificate]) {
    while rx.recv().is_ok() {
        loop {
            match rx.recv_timeout(QUIET) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        reload_all(certificates);
    }
}

/// Reload each certificate whose files changed, logging the outcome.
pub(crate) fn reload_all(certificates: &[Certificate]) {
    for cert in certificates {
        match cert.reload() {
            Ok(ReloadOutcome::Reloaded) => {
                let subject = cert
                    .summary()
                    .and_then(|s| s.subject_common_name)
                    .unwrap_or_default();
                tracing::info!(target: "kestrel::tls", event_name = "CertificateReloaded", file = cert.source(), subject = %subject, "the certificate '{subject}' was reloaded from {}; new handshakes use it", cert.source());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(target: "kestrel::tls", event_name = "CertificateReloadFailed", file = cert.source(), error = %e, "could not reload the certificate from {}: {e}; the previous certificate stays in service until the file changes again", cert.source());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pem(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn cn(c: &Certificate) -> String {
        c.summary().unwrap().subject_common_name.unwrap()
    }

    fn wait_for_cn(c: &Certificate, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while cn(c) != want {
            assert!(Instant::now() < deadline, "still {} not {want}", cn(c));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn reload_sees_changes_keeps_the_old_on_failure_and_retries_on_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = pem("one");
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, &c1).unwrap();
        std::fs::write(&kp, &k1).unwrap();
        let cert = Certificate::from_pem_files(&cp, &kp).unwrap();
        let clone = cert.clone();
        assert_eq!(cert.file_paths(), vec![cp.clone(), kp.clone()]);
        assert_eq!(cert.reload().unwrap(), ReloadOutcome::Unchanged);

        let (c2, k2) = pem("two");
        std::fs::write(&cp, &c2).unwrap();
        // A certificate without its key: refused, the old one stays.
        let err = cert.reload().unwrap_err();
        assert!(matches!(err, crate::TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("c.pem"), "{err}");
        assert_eq!(cn(&clone), "one");
        assert_eq!(
            cert.reload().unwrap(),
            ReloadOutcome::Unchanged,
            "the same bytes are not tried again"
        );
        std::fs::write(&kp, &k2).unwrap();
        assert_eq!(cert.reload().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(cn(&clone), "two", "every clone serves the new one");

        let mem = Certificate::from_pem(c1.as_bytes(), k1.as_bytes()).unwrap();
        assert_eq!(mem.reload().unwrap(), ReloadOutcome::NotFileBacked);
        assert!(mem.file_paths().is_empty());
    }

    #[test]
    fn the_watcher_sees_in_place_writes_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let both = dir.path().join("both.pem");
        let (c, k) = pem("one");
        std::fs::write(&both, format!("{c}{k}")).unwrap();
        let cert = Certificate::from_pem_files(&both, &both).unwrap();
        let watcher = CertificateWatcher::start(vec![cert.clone()]).unwrap();
        assert_eq!(watcher.dirs, vec![dir.path().to_path_buf()]);

        let (c, k) = pem("in-place");
        std::fs::write(&both, format!("{c}{k}")).unwrap();
        wait_for_cn(&cert, "in-place");

        let (c, k) = pem("renamed");
        let tmp = dir.path().join(".both.pem.tmp");
        std::fs::write(&tmp, format!("{c}{k}")).unwrap();
        std::fs::rename(&tmp, &both).unwrap();
        wait_for_cn(&cert, "renamed");

        // A half-written file: the old one stays; the completed write is seen.
        std::fs::write(&both, &c[..c.len() / 2]).unwrap();
        std::thread::sleep(QUIET * 4);
        assert_eq!(cn(&cert), "renamed");
        let (c, k) = pem("fixed");
        std::fs::write(&both, format!("{c}{k}")).unwrap();
        wait_for_cn(&cert, "fixed");

        drop(watcher);
        let (c, k) = pem("unwatched");
        std::fs::write(&both, format!("{c}{k}")).unwrap();
        std::thread::sleep(QUIET * 4);
        assert_eq!(cn(&cert), "fixed", "no reload once the watcher is dropped");
    }
}
