//! Deterministic tests with a simulated clock (a plain `i64`).

use scomo::result::ResultClass;

use super::*;

const SEC: Millis = 1000;

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

/// No pacing limits to speak of: everything startable starts at once.
fn fast(stages: Vec<StageSize>) -> CampaignSpec {
    CampaignSpec {
        stages: stages.into_iter().map(|size| Stage { size }).collect(),
        rate_per_sec: 1_000_000.0,
        burst: 100_000,
        max_concurrency: 100_000,
        ..CampaignSpec::default()
    }
}

fn starts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartJob(d) => Some(d.clone()),
            Action::WaitUntil(_) => None,
        })
        .collect()
}

fn stage_sizes(p: &Planner) -> Vec<u32> {
    p.status().stages.iter().map(|s| s.counts.devices).collect()
}

fn finish_all(p: &mut Planner, devices: &[String], outcome: Outcome, now: Millis) {
    for d in devices {
        assert!(p.job_finished(d, outcome, now), "{d} was not in flight");
    }
}

fn assert_counts_add_up(p: &Planner) {
    let st = p.status();
    let mut sum = Counts::default();
    for s in &st.stages {
        let c = s.counts;
        assert_eq!(c.devices, c.pending + c.in_flight + c.outcomes.finished());
        sum.devices += c.devices;
        sum.pending += c.pending;
        sum.in_flight += c.in_flight;
    }
    let t = st.totals;
    assert_eq!(t.devices, t.pending + t.in_flight + t.outcomes.finished());
    assert_eq!(
        (sum.devices, sum.pending, sum.in_flight),
        (t.devices, t.pending, t.in_flight)
    );
}

#[test]
fn staging_by_percent() {
    let mut p = Planner::new(fast(vec![
        StageSize::Percent(20),
        StageSize::Percent(30),
        StageSize::Percent(10),
    ]))
    .unwrap();
    let mut rng = XorShift64::new(1);
    assert_eq!(p.add_devices(ids("d", 10), 0), 10);
    // 20% of 10, 30% of 10, the last takes the rest.
    assert_eq!(stage_sizes(&p), vec![2, 3, 5]);
    let first = starts(&p.next_actions(0, &mut rng));
    assert_eq!(first, vec!["d000", "d001"]);
    assert_eq!(p.status().current_stage, Some(0));
    assert_eq!(p.state(), CampaignState::Running);
    // Percentages round up.
    let mut q = Planner::new(fast(vec![StageSize::Percent(1), StageSize::Percent(100)])).unwrap();
    q.add_devices(ids("d", 7), 0);
    assert_eq!(stage_sizes(&q), vec![1, 6]);
}

#[test]
fn staging_by_count_caps_at_what_is_left() {
    let mut p = Planner::new(fast(vec![
        StageSize::Count(1),
        StageSize::Count(3),
        StageSize::Count(100),
        StageSize::Count(1),
    ]))
    .unwrap();
    p.add_devices(ids("d", 6), 0);
    assert_eq!(stage_sizes(&p), vec![1, 3, 2, 0]);
    let mut rng = XorShift64::new(1);
    assert_eq!(starts(&p.next_actions(0, &mut rng)), vec!["d000"]);
}

#[test]
fn success_threshold_gates_next_stage() {
    let mut spec = fast(vec![StageSize::Count(4), StageSize::Percent(100)]);
    spec.success_threshold_pct = 75;
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 10), 0);
    let s0 = starts(&p.next_actions(0, &mut rng));
    assert_eq!(s0.len(), 4);
    finish_all(&mut p, &s0[..2], Outcome::Succeeded, 10);
    p.job_finished(&s0[2], Outcome::Failed(ResultClass::DeviceFault), 10);
    // 2 of 4 succeeded: 50% < 75%, nothing more starts.
    assert!(p.next_actions(20, &mut rng).is_empty());
    assert_eq!(p.status().current_stage, Some(0));
    p.job_finished(&s0[3], Outcome::Succeeded, 30);
    // 3 of 4 = 75%: stage 1 opens.
    assert_eq!(p.status().current_stage, Some(1));
    let s1 = starts(&p.next_actions(30, &mut rng));
    assert_eq!(s1.len(), 6);
    finish_all(&mut p, &s1, Outcome::Succeeded, 40);
    assert_eq!(p.state(), CampaignState::Completed);
    assert_eq!(p.status().totals.outcomes.succeeded, 9);
    assert_counts_add_up(&p);
}

#[test]
fn stage_below_success_threshold_pauses_and_resume_opens_next() {
    let mut p = Planner::new(fast(vec![StageSize::Count(2), StageSize::Count(2)])).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 4), 0);
    let s0 = starts(&p.next_actions(0, &mut rng));
    p.job_finished(&s0[0], Outcome::Succeeded, 5);
    p.job_finished(&s0[1], Outcome::Cancelled, 6);
    assert_eq!(
        p.state(),
        CampaignState::Paused {
            reason: PauseReason::SuccessThresholdNotMet {
                stage: 0,
                succeeded: 1,
                devices: 2
            }
        }
    );
    assert_eq!(p.status().since, 6);
    assert!(p.next_actions(7, &mut rng).is_empty());
    assert!(p.resume(8));
    assert_eq!(starts(&p.next_actions(8, &mut rng)), vec!["d002", "d003"]);
}

fn threshold(
    class: ErrorClass,
    max_pct: u8,
    min_finished: u32,
    action: ThresholdAction,
) -> ErrorThreshold {
    ErrorThreshold {
        class,
        max_pct,
        min_finished,
        action,
    }
}

#[test]
fn device_fault_threshold_pauses_and_resume_continues() {
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.max_concurrency = 4;
    spec.error_thresholds = vec![threshold(
        ErrorClass::DeviceFault,
        20,
        3,
        ThresholdAction::Pause,
    )];
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 10), 0);
    let s = starts(&p.next_actions(0, &mut rng));
    assert_eq!(s.len(), 4);
    // One fault out of one finished: below the sample size, no trip.
    p.job_finished(&s[0], Outcome::TimedOut, 10);
    assert_eq!(p.state(), CampaignState::Running);
    p.job_finished(&s[1], Outcome::Succeeded, 11);
    p.job_finished(&s[2], Outcome::Succeeded, 12);
    // 1 of 3 = 33% > 20%: paused.
    let CampaignState::Paused {
        reason: PauseReason::ErrorThreshold(trip),
    } = p.state()
    else {
        panic!("not paused: {:?}", p.state());
    };
    assert_eq!(
        (trip.stage, trip.class, trip.failures, trip.finished),
        (0, ErrorClass::DeviceFault, 1, 3)
    );
    assert!(p.next_actions(13, &mut rng).is_empty());
    // Jobs in flight still report while paused.
    assert!(p.job_finished(&s[3], Outcome::Succeeded, 14));
    assert!(p.resume(15));
    assert_eq!(p.state(), CampaignState::Running);
    let more = starts(&p.next_actions(15, &mut rng));
    assert_eq!(more.len(), 4);
    finish_all(&mut p, &more, Outcome::Succeeded, 16);
    assert_eq!(p.status().totals.outcomes.timed_out, 1);
    assert_counts_add_up(&p);
}

#[test]
fn download_server_threshold_aborts() {
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.max_concurrency = 2;
    spec.error_thresholds = vec![
        threshold(ErrorClass::DeviceFault, 0, 1, ThresholdAction::Pause),
        threshold(
            ErrorClass::DownloadServerFault,
            10,
            2,
            ThresholdAction::Abort,
        ),
    ];
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 10), 0);
    let s = starts(&p.next_actions(0, &mut rng));
    p.job_finished(&s[0], Outcome::Succeeded, 1);
    p.job_finished(&s[1], Outcome::Failed(ResultClass::DownloadServerFault), 2);
    let CampaignState::Aborted {
        reason: AbortReason::ErrorThreshold(trip),
    } = p.state()
    else {
        panic!("not aborted: {:?}", p.state());
    };
    assert_eq!(trip.class, ErrorClass::DownloadServerFault);
    assert!(p.state().is_terminal());
    assert!(p.next_actions(3, &mut rng).is_empty());
    assert!(!p.resume(4));
    assert_eq!(p.add_devices(ids("late", 3), 5), 0);
    assert_eq!(p.status().totals.outcomes.download_server_fault, 1);
}

#[test]
fn abort_wins_over_pause_and_trips_while_paused() {
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.error_thresholds = vec![
        threshold(ErrorClass::UserDeclined, 0, 1, ThresholdAction::Pause),
        threshold(ErrorClass::DeviceFault, 40, 3, ThresholdAction::Abort),
    ];
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 4), 0);
    let s = starts(&p.next_actions(0, &mut rng));
    p.job_finished(&s[0], Outcome::Failed(ResultClass::UserDeclined), 1);
    assert!(matches!(p.state(), CampaignState::Paused { .. }));
    // User declines are not device faults; 1 of 2 is below the sample.
    p.job_finished(&s[1], Outcome::Mismatch, 2);
    assert!(matches!(p.state(), CampaignState::Paused { .. }));
    // 2 device faults (mismatch, unknown class) of 3: abort while paused.
    p.job_finished(&s[2], Outcome::Failed(ResultClass::Unknown), 3);
    assert!(matches!(p.state(), CampaignState::Aborted { .. }));
    let o = p.status().totals.outcomes;
    assert_eq!((o.user_declined, o.mismatch, o.other_failure), (1, 1, 1));
    assert_eq!(o.failed(), 3);
}

/// Runs a single-stage campaign against a simulated clock until `end`,
/// finishing every job as soon as it starts; returns the start times.
fn simulate(spec: CampaignSpec, seed: u64, end: Millis) -> Vec<Millis> {
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(seed);
    p.add_devices(ids("d", 1000), 0);
    let mut now = 0;
    let mut times = Vec::new();
    while now <= end {
        let actions = p.next_actions(now, &mut rng);
        let mut wait = None;
        for a in actions {
            match a {
                Action::StartJob(d) => {
                    times.push(now);
                    p.job_finished(&d, Outcome::Succeeded, now);
                }
                Action::WaitUntil(t) => wait = Some(t),
            }
        }
        let Some(t) = wait else { break };
        assert!(t > now, "WaitUntil({t}) at {now} does not advance");
        now = t;
    }
    times
}

#[test]
fn rate_limit_paces_starts() {
    let spec = CampaignSpec {
        rate_per_sec: 2.0,
        max_concurrency: 100,
        ..CampaignSpec::default()
    };
    let times = simulate(spec, 1, 10 * SEC);
    let want: Vec<Millis> = (0..=20).map(|i| i * 500).collect();
    assert_eq!(times, want);

    // A burst of 5, then 5 per second.
    let spec = CampaignSpec {
        rate_per_sec: 5.0,
        burst: 5,
        max_concurrency: 100,
        ..CampaignSpec::default()
    };
    let times = simulate(spec, 1, 3 * SEC);
    assert_eq!(times.iter().filter(|&&t| t == 0).count(), 5);
    assert_eq!(times.len(), 5 + 15);
    for sec in 0..3 {
        let n = times
            .iter()
            .filter(|&&t| t > sec * SEC && t <= (sec + 1) * SEC)
            .count();
        assert_eq!(n, 5, "second {sec}");
    }
}

#[test]
fn jitter_is_bounded_and_reproducible() {
    let spec = CampaignSpec {
        rate_per_sec: 1.0,
        jitter_ms: 300,
        max_concurrency: 100,
        ..CampaignSpec::default()
    };
    let a = simulate(spec.clone(), 42, 60 * SEC);
    let b = simulate(spec.clone(), 42, 60 * SEC);
    let c = simulate(spec, 7, 60 * SEC);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.first(), Some(&0));
    let gaps: Vec<Millis> = a.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 45, "{} starts", a.len());
    assert!(gaps.iter().all(|g| (1000..=1300).contains(g)), "{gaps:?}");
    assert!(gaps.iter().any(|&g| g != gaps[0]), "no jitter: {gaps:?}");
}

#[test]
fn max_concurrency_caps_jobs_in_flight() {
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.max_concurrency = 3;
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 10), 0);
    let s = starts(&p.next_actions(0, &mut rng));
    assert_eq!(s.len(), 3);
    // Nothing to do but wait for a job to finish.
    assert!(p.next_actions(SEC, &mut rng).is_empty());
    p.job_finished(&s[1], Outcome::Succeeded, SEC);
    assert_eq!(starts(&p.next_actions(SEC, &mut rng)), vec!["d003"]);
    assert_eq!(p.status().totals.in_flight, 3);
    assert_counts_add_up(&p);
}

#[test]
fn start_time_and_window() {
    const HOUR: Millis = 3_600 * SEC;
    const DAY: Millis = 24 * HOUR;
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.max_concurrency = 1;
    spec.start_at = 10 * DAY; // midnight UTC
    spec.window = Some(Window {
        start_minute: 60,
        end_minute: 120,
    }); // 01:00–02:00 UTC
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 3), 0);
    assert_eq!(
        p.next_actions(0, &mut rng),
        vec![Action::WaitUntil(10 * DAY)]
    );
    assert_eq!(p.state(), CampaignState::Scheduled);
    // Started, but outside the window.
    let t = 10 * DAY;
    assert_eq!(
        p.next_actions(t, &mut rng),
        vec![Action::WaitUntil(t + HOUR)]
    );
    assert_eq!(p.state(), CampaignState::Running);
    let s = starts(&p.next_actions(t + HOUR, &mut rng));
    assert_eq!(s, vec!["d000"]);
    // The job finishes after the window closed: no start until tomorrow.
    p.job_finished(&s[0], Outcome::Succeeded, t + 2 * HOUR);
    assert_eq!(
        p.next_actions(t + 2 * HOUR, &mut rng),
        vec![Action::WaitUntil(t + DAY + HOUR)]
    );
    assert_eq!(
        starts(&p.next_actions(t + DAY + HOUR + 1, &mut rng)),
        vec!["d001"]
    );

    // A window across midnight.
    let w = Window {
        start_minute: 23 * 60,
        end_minute: 60,
    };
    assert!(w.contains(23 * HOUR) && w.contains(30 * 60 * SEC) && !w.contains(HOUR));
    assert_eq!(w.next_open(2 * HOUR), 23 * HOUR);
    assert_eq!(w.next_open(DAY + 5), DAY + 5);
}

#[test]
fn cancel_stops_starts() {
    let mut spec = fast(vec![StageSize::Percent(100)]);
    spec.max_concurrency = 2;
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 5), 0);
    let s = starts(&p.next_actions(0, &mut rng));
    assert!(p.cancel(100));
    assert!(!p.cancel(101));
    assert_eq!(p.state(), CampaignState::Cancelled);
    assert_eq!(p.status().since, 100);
    // In-flight outcomes still count; nothing more starts, nobody joins.
    p.job_finished(&s[0], Outcome::Succeeded, 200);
    assert!(p.next_actions(300, &mut rng).is_empty());
    assert_eq!(p.add_devices(ids("late", 2), 300), 0);
    assert!(!p.pause(300) && !p.resume(300));
    let t = p.status().totals;
    assert_eq!((t.pending, t.in_flight, t.outcomes.succeeded), (3, 1, 1));
    assert_eq!(p.state(), CampaignState::Cancelled);
    assert_counts_add_up(&p);
}

#[test]
fn operator_pause_and_resume() {
    let mut p = Planner::new(fast(vec![StageSize::Percent(100)])).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(ids("d", 2), 0);
    assert!(p.pause(0));
    assert!(!p.pause(1));
    // Paused before the start: stays unstarted.
    assert!(p.next_actions(5, &mut rng).is_empty());
    assert!(p.resume(6));
    assert_eq!(p.state(), CampaignState::Scheduled);
    let s = starts(&p.next_actions(6, &mut rng));
    assert_eq!(s.len(), 2);
    finish_all(&mut p, &s, Outcome::Succeeded, 7);
    assert_eq!(p.state(), CampaignState::Completed);
}

#[test]
fn late_joiners_are_picked_up() {
    let mut spec = fast(vec![StageSize::Percent(50), StageSize::Percent(50)]);
    spec.max_concurrency = 100;
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(1);
    // Before the start the split follows the whole pool.
    p.add_devices(ids("a", 2), 0);
    assert_eq!(stage_sizes(&p), vec![1, 1]);
    p.add_devices(ids("b", 2), 0);
    assert_eq!(stage_sizes(&p), vec![2, 2]);
    let s0 = starts(&p.next_actions(0, &mut rng));
    assert_eq!(s0, vec!["a000", "a001"]);
    // After the start a joiner goes to the current stage (0) and starts.
    assert_eq!(p.add_devices(["c0", "a000"], 1), 1);
    assert_eq!(starts(&p.next_actions(1, &mut rng)), vec!["c0"]);
    finish_all(&mut p, &s0, Outcome::Succeeded, 2);
    // 2 of 3 succeeded: the joiner holds the gate.
    assert_eq!(p.status().current_stage, Some(0));
    p.job_finished("c0", Outcome::Succeeded, 3);
    assert_eq!(p.status().current_stage, Some(1));
    let s1 = starts(&p.next_actions(3, &mut rng));
    assert_eq!(s1, vec!["b000", "b001"]);
    finish_all(&mut p, &s1, Outcome::Succeeded, 4);
    assert_eq!(p.state(), CampaignState::Completed);
    // A joiner keeps the last stage open until its job finishes.
    let mut q = Planner::new(fast(vec![StageSize::Percent(100)])).unwrap();
    q.add_devices(["x"], 0);
    let s = starts(&q.next_actions(0, &mut rng));
    q.add_devices(["y"], 1);
    finish_all(&mut q, &s, Outcome::Succeeded, 2);
    assert_eq!(q.state(), CampaignState::Running);
    assert_eq!(starts(&q.next_actions(2, &mut rng)), vec!["y"]);
    q.job_finished("y", Outcome::Succeeded, 3);
    assert_eq!(q.state(), CampaignState::Completed);
    let st = p.status();
    assert_eq!(
        st.stages
            .iter()
            .map(|s| s.counts.devices)
            .collect::<Vec<_>>(),
        vec![3, 2]
    );
}

#[test]
fn counts_add_up_across_stages_and_outcomes() {
    let mut spec = fast(vec![StageSize::Percent(30), StageSize::Percent(100)]);
    spec.success_threshold_pct = 50;
    spec.max_concurrency = 7;
    let mut p = Planner::new(spec).unwrap();
    let mut rng = XorShift64::new(99);
    p.add_devices(ids("d", 20), 0);
    let outcomes = [
        Outcome::Succeeded,
        Outcome::Succeeded,
        Outcome::Failed(ResultClass::DeviceFault),
        Outcome::Succeeded,
        Outcome::Failed(ResultClass::UserDeclined),
        Outcome::TimedOut,
        Outcome::Failed(ResultClass::DownloadServerFault),
        Outcome::Mismatch,
        Outcome::Cancelled,
    ];
    let mut now = 0;
    let mut in_flight: Vec<String> = Vec::new();
    let mut k = 0;
    for _ in 0..100 {
        in_flight.extend(starts(&p.next_actions(now, &mut rng)));
        assert_counts_add_up(&p);
        if in_flight.is_empty() {
            if matches!(p.state(), CampaignState::Paused { .. }) {
                p.resume(now);
                continue;
            }
            break;
        }
        let d = in_flight.remove(0);
        assert!(p.job_finished(&d, outcomes[k % outcomes.len()], now));
        k += 1;
        now += 10;
        assert_counts_add_up(&p);
    }
    let st = p.status();
    assert_eq!(st.state, CampaignState::Completed);
    assert_eq!(st.totals.devices, 20);
    assert_eq!(st.totals.outcomes.finished(), 20);
    assert_eq!(st.stages[0].counts.devices, 6);
    assert_eq!(
        st.stages[0].counts.outcomes.finished() + st.stages[1].counts.outcomes.finished(),
        20
    );
    assert_eq!(st.totals.outcomes.cancelled, 2);
}

#[test]
fn unknown_or_repeated_reports_are_ignored() {
    let mut p = Planner::new(fast(vec![StageSize::Percent(100)])).unwrap();
    let mut rng = XorShift64::new(1);
    p.add_devices(["a", "b"], 0);
    assert!(!p.job_finished("a", Outcome::Succeeded, 0)); // not started yet
    let s = starts(&p.next_actions(0, &mut rng));
    assert!(!p.job_finished("zzz", Outcome::Succeeded, 1));
    assert!(p.job_finished(&s[0], Outcome::Succeeded, 1));
    assert!(!p.job_finished(&s[0], Outcome::Succeeded, 2));
    assert_eq!(p.status().totals.outcomes.succeeded, 1);
}

#[test]
fn spec_validation() {
    let ok = CampaignSpec::default();
    assert_eq!(ok.validate(), Ok(()));
    let bad = |f: fn(&mut CampaignSpec)| {
        let mut s = CampaignSpec::default();
        f(&mut s);
        Planner::new(s).is_err()
    };
    assert!(bad(|s| s.stages = vec![Stage {
        size: StageSize::Percent(0)
    }]));
    assert!(bad(|s| s.stages = vec![Stage {
        size: StageSize::Count(0)
    }]));
    assert!(bad(|s| s.success_threshold_pct = 101));
    assert!(bad(|s| s.rate_per_sec = f64::NAN));
    assert!(bad(|s| s.rate_per_sec = 0.0));
    assert!(bad(|s| s.max_concurrency = 0));
    assert!(bad(|s| s.burst = 0));
    assert!(bad(|s| s.window = Some(Window {
        start_minute: 5,
        end_minute: 5
    })));
    assert!(bad(|s| s.window = Some(Window {
        start_minute: 0,
        end_minute: 1440
    })));
}

#[test]
fn rng_is_seeded() {
    let mut a = XorShift64::new(5);
    let mut b = XorShift64::new(5);
    let xs: Vec<u64> = (0..10).map(|_| a.up_to(300)).collect();
    let ys: Vec<u64> = (0..10).map(|_| b.up_to(300)).collect();
    assert_eq!(xs, ys);
    assert!(xs.iter().all(|&x| x <= 300));
    assert_eq!(XorShift64::new(0).up_to(0), 0);
}

/// What a driver would have saved of `p`: every device with the stage its
/// job started in (if it started), its progress, and `initial`.
fn save(
    p: &Planner,
    order: &[String],
    started: &[String],
    failed: &[&String],
    counted: bool,
) -> Saved {
    let st = p.status();
    let devices = order
        .iter()
        .map(|id| {
            let progress = if !started.contains(id) {
                Progress::Pending
            } else {
                match failed.contains(&id) {
                    true => Progress::Finished {
                        outcome: Outcome::Failed(ResultClass::DeviceFault),
                        counted,
                    },
                    false => Progress::InFlight,
                }
            };
            SavedDevice {
                id: id.clone(),
                stage: started.contains(id).then(|| p.stage_of(id)).flatten(),
                progress,
            }
        })
        .collect();
    Saved {
        state: st.state,
        since: st.since,
        current: st.current_stage,
        initial: order.len(),
        devices,
    }
}

#[test]
fn a_restored_planner_has_the_same_status_and_goes_on_alike() {
    let spec = CampaignSpec {
        error_thresholds: vec![ErrorThreshold {
            class: ErrorClass::DeviceFault,
            max_pct: 50,
            min_finished: 2,
            action: ThresholdAction::Pause,
        }],
        ..fast(vec![StageSize::Count(4), StageSize::Percent(100)])
    };
    let devs = ids("d", 10);
    let mut p = Planner::new(spec.clone()).unwrap();
    p.add_devices(devs.clone(), 0);
    let mut rng = XorShift64::new(7);
    let first = starts(&p.next_actions(SEC, &mut rng));
    assert_eq!(first, devs[..4]);
    // One failure of four finished so far: below the threshold.
    p.job_finished(&devs[0], Outcome::Failed(ResultClass::DeviceFault), 2 * SEC);
    let saved = save(&p, &devs, &first, &[&devs[0]], true);
    let mut q = Planner::restore(spec.clone(), saved, 3 * SEC).unwrap();
    assert_eq!(q.status().totals, p.status().totals);
    assert_eq!(q.status().stages, p.status().stages);
    assert_eq!(q.state(), p.state());
    for d in &devs {
        assert_eq!(q.stage_of(d), p.stage_of(d), "{d}");
    }
    // The same next failure trips the threshold in both.
    for x in [&mut p, &mut q] {
        x.job_finished(&devs[1], Outcome::Failed(ResultClass::DeviceFault), 4 * SEC);
        assert!(matches!(
            x.state(),
            CampaignState::Paused {
                reason: PauseReason::ErrorThreshold(_)
            }
        ));
    }
    // Outcomes of an earlier epoch (before a resume) do not count again.
    let failed = [&devs[0], &devs[1]];
    let saved = save(&p, &devs, &first, &failed, false);
    let q = Planner::restore(spec, saved, 5 * SEC).unwrap();
    let r = Planner::restore(
        q.spec().clone(),
        Saved {
            state: CampaignState::Running,
            ..save(&q, &devs, &first, &failed, false)
        },
        5 * SEC,
    )
    .unwrap();
    assert_eq!(r.state(), CampaignState::Running);
}

#[test]
fn a_planner_restored_before_its_start_splits_its_pool() {
    let spec = fast(vec![StageSize::Count(2), StageSize::Percent(100)]);
    let devs = ids("p", 5);
    let saved = Saved {
        state: CampaignState::Scheduled,
        since: 0,
        current: None,
        initial: 0,
        devices: devs
            .iter()
            .map(|d| SavedDevice {
                id: d.clone(),
                stage: None,
                progress: Progress::Pending,
            })
            .collect(),
    };
    let mut p = Planner::restore(spec, saved, 0).unwrap();
    assert_eq!(stage_sizes(&p), [2, 3]);
    let mut rng = XorShift64::new(1);
    assert_eq!(starts(&p.next_actions(SEC, &mut rng)), devs[..2]);
}
