//! The deadline thread: SIGKILLs a child at its kill time, on time.
//!
//! Long native operations (JSON of huge values, `repeat`, BigInt, typed-array sort, `join`)
//! poll QuickJS's interrupt handler rarely or never, so a SIGKILL is what ends them. Sent from
//! a tokio timer, that kill waits for a runtime thread to be scheduled (and for the timer
//! wheel's millisecond tick), which on a loaded host is many milliseconds. One dedicated thread
//! instead sleeps on a condition variable (a futex, nanosecond timeouts) until the earliest
//! armed deadline and kills then; it asks for real-time priority (`SCHED_FIFO`, when the
//! supervisor may) so a host full of busy children cannot delay it. It only ever sleeps or
//! kills, so the priority cannot starve anything.
//!
//! Pid reuse: an entry is disarmed ([`Armed::disarm`]) before anything reaps the child (the
//! invocation does it right after its run ends), and a child is not reaped while its lease
//! holds it; so the pid killed is always our own, possibly exited but unreaped, child.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
struct State {
    next: u64,
    /// (kill time, id) → (pid, what the kill sets).
    entries: BTreeMap<(Instant, u64), (u32, Arc<Fired>)>,
    stop: bool,
    /// When the thread looks at the entries again on its own: `None` while it waits for a
    /// notification only. An entry due before then must wake it; any other need not, so a warm
    /// call (armed and disarmed well before its deadline) costs the thread no wake-up: two
    /// futex calls and a context switch of a real-time thread fewer per call.
    wakes_at: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The deadline thread's handle; stops the thread when dropped.
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
}

/// One armed deadline. Dropping it disarms it.
pub(crate) struct Armed {
    shared: Arc<Shared>,
    key: (Instant, u64),
    fired: Arc<Fired>,
}

/// Set by the deadline thread when it kills: a flag, and a wake-up for the invocation, which
/// then reports the Timeout at once — without waiting for the kernel to tear the child down
/// (freeing a large heap takes milliseconds) and close its pipe.
#[derive(Default)]
struct Fired {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Deadlines {
    pub(crate) fn start() -> Deadlines {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("cs-deadlines".into())
            .spawn(move || run(&s));
        if let Err(e) = spawned {
            // The tokio timer in the invocation still kills, later.
            tracing::warn!(error = %e, "cannot start the deadline thread");
        }
        Deadlines { shared }
    }

    /// Kills `pid` with SIGKILL at `at` unless disarmed before.
    pub(crate) fn arm(&self, at: Instant, pid: u32) -> Armed {
        let fired = Arc::new(Fired::default());
        let key = {
            let mut st = self.shared.lock();
            st.next += 1;
            let key = (at, st.next);
            st.entries.insert(key, (pid, fired.clone()));
            let wake = st.wakes_at.is_none_or(|w| at < w);
            (key, wake)
        };
        let (key, wake) = key;
        if wake {
            self.shared.wake.notify_one();
        }
        Armed {
            shared: self.shared.clone(),
            key,
            fired,
        }
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

impl Armed {
    /// Disarms the deadline; whether the kill was already sent.
    pub(crate) fn disarm(self) -> bool {
        // Drop removes the entry under the lock; the kill happens under it too, so after this
        // no kill can follow.
        let fired = self.fired.clone();
        drop(self);
        fired.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the deadline thread has killed the child.
    pub(crate) async fn killed(&self) {
        loop {
            let n = self.fired.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.fired.flag.load(Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.shared.lock().entries.remove(&self.key);
    }
}

fn run(shared: &Shared) {
    raise_priority();
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let Some((&(at, id), _)) = st.entries.iter().next() else {
            st.wakes_at = None;
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let now = Instant::now();
        if at > now {
            st.wakes_at = Some(at);
            st = shared
                .wake
                .wait_timeout(st, at - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        if let Some((pid, fired)) = st.entries.remove(&(at, id)) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // A pid of our own child that has not been reaped (see the module
                // documentation), so it cannot name another process.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            fired.flag.store(true, Ordering::SeqCst);
            fired.notify.notify_waiters();
        }
    }
}

/// `SCHED_FIFO` priority 1 for this thread when the process may (CAP_SYS_NICE), else a nice
/// value of -10 when it may, else nothing.
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return;
    }
    // nix makes the raw syscall: glibc's gettid() wrapper is 2.30, newer than the packages'
    // glibc 2.28 floor (`make bins` fails to link it).
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority on this thread's own tid; failure only leaves the default.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_kills_on_time_and_a_disarmed_one_never() {
        let d = Deadlines::start();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let armed = d.arm(Instant::now() + Duration::from_millis(20), sleeper.id());
        let t = Instant::now();
        let status = sleeper.wait().unwrap();
        let waited = t.elapsed();
        assert!(armed.disarm(), "the kill was sent");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(waited >= Duration::from_millis(19), "{waited:?}");

        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let armed = d.arm(Instant::now() + Duration::from_millis(30), other.id());
        assert!(!armed.disarm());
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            other.try_wait().unwrap().is_none(),
            "a disarmed deadline does not kill"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    /// Arming no longer wakes the thread unless the new deadline is earlier than the one it
    /// sleeps for: one that is must still kill on time, and a later one (the common case: the
    /// previous call's deadline was disarmed) must still be found.
    #[test]
    fn an_earlier_deadline_wakes_the_thread_and_a_later_one_is_still_kept() {
        use std::os::unix::process::ExitStatusExt;
        let d = Deadlines::start();
        let far = d.arm(Instant::now() + Duration::from_secs(30), u32::MAX);
        std::thread::sleep(Duration::from_millis(20)); // the thread now sleeps for `far`
        let mut a = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let armed = d.arm(Instant::now() + Duration::from_millis(30), a.id());
        let t = Instant::now();
        assert_eq!(a.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(armed.disarm());
        drop(far);
        // The thread now sleeps for nothing earlier than 30 ms from now; a later deadline
        // armed while it sleeps (no wake-up) is found when it wakes.
        let near = d.arm(Instant::now() + Duration::from_millis(40), u32::MAX);
        std::thread::sleep(Duration::from_millis(5));
        let mut b = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let armed = d.arm(Instant::now() + Duration::from_millis(80), b.id());
        assert_eq!(b.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(armed.disarm());
        drop(near);
    }
}
