//! systemd notifications (sd_notify(3)): READY, STATUS, RELOADING with MONOTONIC_USEC
//! (Type=notify-reload), STOPPING, and the watchdog keep-alive. Without `$NOTIFY_SOCKET` every call
//! does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC");
            send(&[NotifyState::Reloading]);
        }
    }
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Interval at which to send WATCHDOG=1 (half of `$WATCHDOG_USEC`), if the watchdog is on for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
