//! Running jobs on a few worker threads as a stream yields them, with the
//! results in the stream's order: `copkg install` (and `install -`, which
//! starts each install as its line arrives) and `copkg.install_many`.

use std::sync::Mutex;
use std::sync::mpsc;

/// Runs `work` on each job as `source` yields it, `jobs` at a time, and
/// returns the jobs with their results in the order `source` yielded them.
/// `source` is read on the calling thread, so it may block on input (or
/// use state that stays on this thread) while earlier jobs run: `copkg
/// install -` starts each install as its line arrives. Each job waits for
/// a free worker; `source` is asked for the next once it has one.
pub fn in_parallel<J: Send, R: Send>(
    source: impl Iterator<Item = J>,
    jobs: usize,
    work: &(dyn Fn(usize, &J) -> R + Sync),
) -> Vec<(J, R)> {
    let (sender, receiver) = mpsc::sync_channel::<(usize, J)>(0);
    let receiver = Mutex::new(receiver);
    let done: Mutex<Vec<(usize, J, R)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((index, job)) = next else {
                        break;
                    };
                    let result = work(index, &job);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, job, result));
                }
            });
        }
        for job in source.enumerate() {
            if sender.send(job).is_err() {
                break;
            }
        }
        drop(sender);
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(index, ..)| *index);
    done.into_iter()
        .map(|(_, job, result)| (job, result))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_while_the_source_is_still_yielding_and_come_back_in_order() {
        let (started, seen) = mpsc::channel();
        // The source yields its second job only once the first has run.
        let mut first_done = false;
        let source = (0..5).inspect(|i| {
            if *i == 1 {
                first_done = seen
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .is_ok();
            }
        });
        let started = Mutex::new(started);
        let results = in_parallel(source, 3, &|index, job: &i32| {
            let _ = started.lock().unwrap().send(index);
            job * 10
        });
        assert!(
            first_done,
            "the first job did not run before the source went on"
        );
        assert_eq!(results, [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
        assert_eq!(in_parallel(std::iter::empty::<i32>(), 2, &|_, j| *j), []);
    }
}
