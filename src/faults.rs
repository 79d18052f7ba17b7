//! The fault schedule: which fault hits which device when, as plain data computed from the
//! fleet before the run. The runner only sends each injection at its time, so the same fleet
//! always gives the same schedule.

use std::time::Duration;

use crate::fleet::{FaultKind, Fleet, Schedule};

/// One fault hitting one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// From the start of the run.
    pub at: Duration,
    /// Index into `Fleet::devices`.
    pub device: usize,
    pub kind: FaultKind,
    pub down_for: Duration,
}

/// Every injection of the run, by time (then fleet order, then file order of the faults).
pub fn schedule(fleet: &Fleet) -> Vec<Injection> {
    let mut injections = Vec::new();
    for fault in &fleet.faults {
        let times: Vec<Duration> = match fault.schedule {
            Schedule::At(at) => vec![at],
            Schedule::Every(every) if !every.is_zero() => (1..)
                .map(|k| every * k)
                .take_while(|at| *at < fleet.duration)
                .collect(),
            Schedule::Every(_) => Vec::new(),
        };
        for at in times.into_iter().filter(|at| *at < fleet.duration) {
            injections.extend(fault.targets.iter().map(|&device| Injection {
                at,
                device,
                kind: fault.kind,
                down_for: fault.down_for,
            }));
        }
    }
    // Stable: equal times keep fleet order, then the order of the faults in the file.
    injections.sort_by_key(|i| (i.at, i.device));
    injections
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fault;

    fn fleet(duration: u64, faults: Vec<Fault>) -> Fleet {
        Fleet {
            name: "f".into(),
            broker: crate::fleet::BrokerTarget::Embedded { port: 0 },
            duration: Duration::from_secs(duration),
            seed: 0,
            devices: Vec::new(),
            will_ack_timeout: Duration::from_secs(5),
            faults,
            embedded: Default::default(),
            tls: Default::default(),
        }
    }

    fn fault(kind: FaultKind, schedule: Schedule, targets: Vec<usize>) -> Fault {
        Fault {
            kind,
            schedule,
            targets,
            down_for: Duration::from_secs(1),
        }
    }

    #[test]
    fn every_fires_at_each_multiple_before_the_end() {
        let f = fleet(
            10,
            vec![fault(
                FaultKind::Kill,
                Schedule::Every(Duration::from_secs(3)),
                vec![0],
            )],
        );
        let at: Vec<u64> = schedule(&f).iter().map(|i| i.at.as_secs()).collect();
        assert_eq!(at, [3, 6, 9]);
    }

    #[test]
    fn at_hits_every_target_and_the_schedule_is_sorted_by_time() {
        let f = fleet(
            10,
            vec![
                fault(
                    FaultKind::Flap,
                    Schedule::At(Duration::from_secs(5)),
                    vec![2, 1],
                ),
                fault(
                    FaultKind::Stall,
                    Schedule::At(Duration::from_secs(2)),
                    vec![0],
                ),
            ],
        );
        let s = schedule(&f);
        let got: Vec<(u64, usize, FaultKind)> = s
            .iter()
            .map(|i| (i.at.as_secs(), i.device, i.kind))
            .collect();
        assert_eq!(
            got,
            [
                (2, 0, FaultKind::Stall),
                (5, 1, FaultKind::Flap),
                (5, 2, FaultKind::Flap)
            ]
        );
        assert!(s.iter().all(|i| i.down_for == Duration::from_secs(1)));
    }

    #[test]
    fn nothing_fires_at_or_after_the_end() {
        let f = fleet(
            5,
            vec![
                fault(
                    FaultKind::Kill,
                    Schedule::At(Duration::from_secs(5)),
                    vec![0],
                ),
                fault(
                    FaultKind::Kill,
                    Schedule::Every(Duration::from_secs(5)),
                    vec![0],
                ),
            ],
        );
        assert!(schedule(&f).is_empty());
    }

    #[test]
    fn the_same_fleet_gives_the_same_schedule() {
        let f = fleet(
            30,
            vec![fault(
                FaultKind::Kill,
                Schedule::Every(Duration::from_secs(4)),
                vec![0, 1],
            )],
        );
        assert_eq!(schedule(&f), schedule(&f));
        assert_eq!(schedule(&f).len(), 14);
    }
}
