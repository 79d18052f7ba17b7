//! Stopping a run from outside. The first SIGINT or SIGTERM, at any phase, asks the run to end
//! early: stop sending, drain briefly, write the report (marked `interrupted`) and exit 130 or
//! 143. A second one exits at once: whoever presses Ctrl-C twice means it.

use std::time::Instant;

use tokio::sync::watch;

/// The signals a run answers; in a report, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Signal {
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGTERM")]
    Term,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal number, as shells report a process a signal ended (also `cli::Exit`).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }
}

/// Whether (and when) the run was asked to stop. Cloned into each phase that waits.
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<Option<(Signal, Instant)>>);

impl Interrupt {
    /// One that never fires: tests run several fleets in one process and leave signals alone.
    pub fn never() -> Self {
        let (_, rx) = watch::channel(None);
        Self(rx)
    }

    /// Takes over SIGINT and SIGTERM for this process. Must be called inside the runtime.
    #[cfg(unix)]
    pub fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(None);
        actix_rt::spawn(async move {
            let first = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            tracing::warn!(
                "{}: ending the run early and writing the report (again to quit at once)",
                first.name()
            );
            let _ = tx.send(Some((first, Instant::now())));
            let second = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            crate::output::error_line(format_args!(
                "fleetsim: {} again: quitting at once, without a report",
                second.name()
            ));
            std::process::exit(i32::from(second.exit_code()));
        });
        Ok(Self(rx))
    }

    #[cfg(not(unix))]
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self::never())
    }

    /// The signal that asked the run to stop, and when, if one did.
    pub fn get(&self) -> Option<(Signal, Instant)> {
        *self.0.borrow()
    }

    /// Waits until the run is asked to stop.
    pub async fn wait(&mut self) -> Signal {
        loop {
            if let Some((signal, _)) = *self.0.borrow_and_update() {
                return signal;
            }
            if self.0.changed().await.is_err() {
                // The sender is gone: nobody can ask any more.
                std::future::pending::<()>().await;
            }
        }
    }
}
