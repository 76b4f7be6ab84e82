//! Spreading a target write rate over several writers.

use std::time::Duration;

use tokio::time::Instant;

/// How writers sharing a rate place their writes in time.
///
/// The two loads differ for watchers: a burst's events often reach a watcher in one socket
/// write and one read, while interleaved writes cost every watcher a write, a wake-up and a
/// read per event (`bench/results/watch-cache/README.md` measures both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pacing {
    /// Every writer writes at the same moments, `writers / rate` apart: bursts of as many
    /// writes as there are writers. The default, because the watch-cache issue's baseline
    /// and targets were measured with it.
    #[default]
    Aligned,
    /// The writers take turns: one write every `1 / rate`.
    Interleaved,
}

impl Pacing {
    /// The name `--pacing` takes.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::Aligned => "aligned",
            Pacing::Interleaved => "interleaved",
        }
    }
}

/// The schedule of one of several writers that together write `rate` times per second.
///
/// The writers share one timeline of slots `1 / rate` apart: writer `index` of `writers` takes
/// slots `index`, `index + writers`, ... So the writes arrive evenly spread, one every
/// `1 / rate`, rather than all writers at once every `writers / rate` (a burst as large as the
/// number of writers, which is a different load). A writer that falls behind its slots writes
/// at once until it has caught up, as a closed-loop client does.
#[derive(Debug)]
pub struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    /// Writer `index` of `writers` sharing `rate` writes per second, placed by `pacing`,
    /// from now; `None` when `rate` is 0 (as fast as the store goes).
    pub fn new(rate: u64, pacing: Pacing, index: usize, writers: usize) -> Option<Pacer> {
        Pacer::starting_at(Instant::now(), rate, pacing, index, writers)
    }

    /// [`Pacer::new`] with the timeline starting at `start`.
    fn starting_at(
        start: Instant,
        rate: u64,
        pacing: Pacing,
        index: usize,
        writers: usize,
    ) -> Option<Pacer> {
        if rate == 0 {
            return None;
        }
        let writers = writers.max(1);
        let slot = Duration::from_secs_f64(1.0 / rate as f64);
        let offset = match pacing {
            Pacing::Interleaved => u32::try_from(index % writers).unwrap_or(0),
            Pacing::Aligned => 0,
        };
        Some(Pacer {
            next: start + slot * offset,
            interval: slot * u32::try_from(writers).unwrap_or(u32::MAX),
        })
    }

    /// This writer's next slot; the one after it is due next.
    fn take_slot(&mut self) -> Instant {
        let slot = self.next;
        self.next += self.interval;
        slot
    }

    /// Waits for this writer's next slot if it comes before `deadline` and says `true`; says
    /// `false` at once when it does not, so a run never waits past its end for a write it
    /// will not make (which would also stretch the run's measured duration).
    pub async fn wait_before(&mut self, deadline: std::time::Instant) -> bool {
        if self.next.into_std() >= deadline {
            return false;
        }
        let slot = self.take_slot();
        tokio::time::sleep_until(slot).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first two slots of each of four writers at 100 writes/s, in ms from the start.
    fn slots(pacing: Pacing) -> Vec<u128> {
        let start = Instant::now();
        let mut pacers: Vec<Pacer> = (0..4)
            .map(|i| Pacer::starting_at(start, 100, pacing, i, 4).unwrap())
            .collect();
        let mut times = Vec::new();
        for _ in 0..2 {
            for pacer in &mut pacers {
                times.push((pacer.take_slot() - start).as_millis());
            }
        }
        times
    }

    #[test]
    fn interleaved_writers_take_turns() {
        assert_eq!(slots(Pacing::Interleaved), [0, 10, 20, 30, 40, 50, 60, 70]);
        assert!(Pacer::new(0, Pacing::Interleaved, 0, 4).is_none());
    }

    #[test]
    fn aligned_writers_write_together() {
        assert_eq!(slots(Pacing::Aligned), [0, 0, 0, 0, 40, 40, 40, 40]);
    }

    #[tokio::test]
    async fn no_wait_for_a_slot_at_or_after_the_deadline() {
        let start = Instant::now();
        let mut pacer = Pacer::starting_at(start, 10, Pacing::Interleaved, 1, 2).unwrap();
        // The writer's first slot is 100 ms after the start: a deadline there refuses it.
        let deadline = (start + Duration::from_millis(100)).into_std();
        assert!(!pacer.wait_before(deadline).await);
        assert!(std::time::Instant::now() < deadline);
        // A later deadline lets it through, at its slot.
        assert!(pacer.wait_before(deadline + Duration::from_secs(1)).await);
        assert!(Instant::now() >= start + Duration::from_millis(100));
    }
}
