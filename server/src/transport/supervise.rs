//! Listener supervision: an accept loop that dies is restarted, or takes the server down
//! loudly; it never just disappears.
//!
//! An accept loop should run until shutdown. If it returns early or panics (a bug, or, before
//! logging was made infallible, a failed log write), its port would refuse connections for
//! good while the rest of the server looked healthy. So every listener runs under
//! [`supervise`]: a death is logged at error level (and counted in
//! `parley_listener_restarts_total`), and the loop is started again on the same socket after
//! a short backoff. A listener that dies [`MAX_DEATHS`] times within [`DEATH_WINDOW`] is not
//! restarted again: the server shuts down and exits non-zero with the reason, so a service
//! manager can restart the whole process and someone hears about it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Deaths within [`DEATH_WINDOW`] after which a listener is given up.
pub const MAX_DEATHS: usize = 5;
/// See [`MAX_DEATHS`].
pub const DEATH_WINDOW: Duration = Duration::from_secs(60);
/// First wait before a restart; it doubles with each death in the window.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What the supervisors share: the restart count and, once one gives up, why.
#[derive(Debug, Default)]
pub struct Supervision {
    /// Listener restarts since start.
    pub restarts: AtomicU64,
    fatal: Mutex<Option<String>>,
}

impl Supervision {
    /// Why a listener was given up, if one was (the server then shuts down).
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn give_up(&self, why: String) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        fatal.get_or_insert(why);
    }
}

/// Runs the accept loop `start()` makes until `shutdown`, restarting it when it ends early
/// (an `Err` says why) or panics. `name` names the listener in logs ("tls 0.0.0.0:7400").
pub async fn supervise<F, Fut>(
    name: String,
    shutdown: CancellationToken,
    supervision: Arc<Supervision>,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut deaths: VecDeque<Instant> = VecDeque::new();
    loop {
        // Its own task: a panic ends that task, not this loop.
        let ended = tokio::spawn(start()).await;
        if shutdown.is_cancelled() {
            return;
        }
        let why = match ended {
            Ok(Ok(())) => "it stopped before shutdown".to_owned(),
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e.into_panic())),
            Err(e) => format!("its task ended: {e}"),
        };
        let now = Instant::now();
        deaths.push_back(now);
        while deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW)
        {
            deaths.pop_front();
        }
        if deaths.len() >= MAX_DEATHS {
            let fatal = format!(
                "listener {name} died {} times within {DEATH_WINDOW:?} (last: {why}); shutting down",
                deaths.len()
            );
            tracing::error!("{fatal}");
            crate::logging::last_words(&fatal);
            supervision.give_up(fatal);
            shutdown.cancel();
            return;
        }
        supervision.restarts.fetch_add(1, Ordering::Relaxed);
        let backoff = FIRST_BACKOFF * (1u32 << (deaths.len() - 1).min(6));
        tracing::error!(listener = %name, reason = %why, ?backoff, "listener died; restarting it");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn a_listener_that_panics_is_restarted() {
        let shutdown = CancellationToken::new();
        let sup = Arc::new(Supervision::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (count, stop) = (runs.clone(), shutdown.clone());
        let task = tokio::spawn(supervise(
            "test".into(),
            shutdown.clone(),
            sup.clone(),
            move || {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let stop = stop.clone();
                async move {
                    if n < 2 {
                        panic!("accept loop bug");
                    }
                    // The third run serves until shutdown.
                    stop.cancelled().await;
                    Ok(())
                }
            },
        ));
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sup.restarts.load(Ordering::Relaxed), 2);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(sup.fatal(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_that_keeps_dying_takes_the_server_down() {
        let shutdown = CancellationToken::new();
        let sup = Arc::new(Supervision::default());
        supervise(
            "tls 127.0.0.1:1".into(),
            shutdown.clone(),
            sup.clone(),
            || async { Err("accept returned an error".to_owned()) },
        )
        .await;
        assert!(shutdown.is_cancelled());
        let fatal = sup.fatal().expect("a reason");
        assert!(fatal.contains("tls 127.0.0.1:1") && fatal.contains("accept returned an error"));
        assert_eq!(sup.restarts.load(Ordering::Relaxed), MAX_DEATHS as u64 - 1);
    }
}
