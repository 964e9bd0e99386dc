//! How fast a push settles its proposals, said in the job log: a line every
//! [`LOG_EVERY`] while it runs, and the rate in the summary.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::jobs::context::JobContext;

/// How often a running push logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Pace {
    started: Instant,
    /// Proposals settled before this attempt (a resumed job), not counted in its rate.
    settled_before: i64,
    last_logged: Mutex<Instant>,
}

impl Pace {
    /// Starts timing `ctx`'s job from the progress it has now.
    pub(crate) fn start(ctx: &JobContext) -> Pace {
        let now = Instant::now();
        Pace {
            started: now,
            settled_before: ctx.done(),
            last_logged: Mutex::new(now),
        }
    }

    /// Proposals settled per second by this attempt, `settled` being the job's progress.
    pub(crate) fn rate(&self, settled: i64) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        (settled - self.settled_before).max(0) as f64 / seconds
    }

    /// "… in 12.3 s, 81.2 proposals/s" for the summary.
    pub(crate) fn summary(&self, settled: i64) -> String {
        format!(
            "{} proposals settled in {:.1} s, {:.1} proposals/s",
            (settled - self.settled_before).max(0),
            self.started.elapsed().as_secs_f64(),
            self.rate(settled)
        )
    }

    /// Logs the progress and rate when the last such line is [`LOG_EVERY`] old.
    pub(crate) async fn tick(&self, ctx: &JobContext, total: usize) {
        {
            let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < LOG_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let settled = ctx.done();
        ctx.log(
            "info",
            format!(
                "{settled} of {total} proposals settled ({} pushed, {} already applied, {} conflicts, {} failed, {} not applied); {:.1} proposals/s",
                ctx.counter("pushed"),
                ctx.counter("already_applied"),
                ctx.counter("conflict"),
                ctx.counter("failed"),
                ctx.counter("not_applied"),
                self.rate(settled)
            ),
        )
        .await;
    }
}
