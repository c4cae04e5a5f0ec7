//! The bounded, adaptive spin the supervisor does before it blocks waiting for a child's
//! reply (see [`super::reply`]).
//!
//! Why: on these VMs an idle vCPU is halted, and waking a thread blocked in `epoll_wait`
//! costs tens of microseconds; a warm call's answer comes ~6–10 µs after the request. Polling
//! the pipe without sleeping for a short while catches it on a thread that is still running.
//!
//! Bounded: a wait spins at most [`Spin::MAX`], then blocks as before. Adaptive, so an idle
//! pool burns no CPU: a wait that lasted longer than `MAX` (spinning would not have caught the
//! answer) halves the budget, and after a few such waits it is zero — a binding whose calls
//! run long (the realistic 12 KB handler) or a pool with sparse traffic does not spin at all.
//! A wait that ended within `MAX` restores the full budget. Cost: at most `MAX` of one
//! supervisor thread's CPU per wait, and only while answers keep coming within `MAX`.
//!
//! Only the supervisor spins. The child's side was measured too (zero-timeout `ppoll` on its
//! request pipe, with and without `sched_yield` between polls): it brought a warm call to
//! ~7 µs on a lightly loaded machine but cost a third of the throughput on a loaded one (two
//! spinning children take the CPU the supervisor and the other children need), so the child
//! blocks in `read` as before and its seccomp policy is unchanged.

use std::time::Duration;

/// The spin budget of one reply pipe.
#[derive(Debug, Clone)]
pub(crate) struct Spin {
    budget: Duration,
}

impl Spin {
    /// The longest a wait spins before it blocks.
    pub(crate) const MAX: Duration = Duration::from_micros(50);

    /// Budgets below this are zero (spinning that briefly catches nothing).
    const MIN: Duration = Duration::from_micros(2);

    /// A new pipe spins with the full budget until waits show it does not pay.
    pub(crate) const fn new() -> Self {
        Spin { budget: Self::MAX }
    }

    /// How long the next wait may spin before blocking.
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// Records how long a wait lasted in total (spinning plus blocking).
    pub(crate) fn record(&mut self, waited: Duration) {
        if waited <= Self::MAX {
            self.budget = Self::MAX;
        } else {
            self.budget /= 2;
            if self.budget < Self::MIN {
                self.budget = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_traffic_stops_the_spinning_and_dense_traffic_restores_it() {
        let mut s = Spin::new();
        assert_eq!(s.budget(), Spin::MAX);
        // Answers a second apart: the budget decays to zero within a few waits, and stays.
        for _ in 0..5 {
            s.record(Duration::from_secs(1));
        }
        assert_eq!(s.budget(), Duration::ZERO);
        s.record(Duration::from_secs(1));
        assert_eq!(s.budget(), Duration::ZERO);
        // One answer within the bound (caught while blocking) brings it back.
        s.record(Duration::from_micros(8));
        assert_eq!(s.budget(), Spin::MAX);
        // A single slow answer only halves it.
        s.record(Duration::from_micros(400));
        assert_eq!(s.budget(), Spin::MAX / 2);
    }
}
