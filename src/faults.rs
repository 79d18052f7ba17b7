//! The fault schedule: which fault hits which device when, as plain data derived from the
//! fleet, produced as the run goes. The runner only sends each injection at its time, so the
//! same fleet always gives the same schedule. Faults with a probability are not scheduled:
//! each device draws them per request or answer from its own seeded stream ([`per_device`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::device::Chance;
use crate::fleet::{FaultClass, FaultKind, FaultParams, Fleet, Schedule};

/// One fault hitting one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// From the start of the run.
    pub at: Duration,
    /// Index into `Fleet::devices`.
    pub device: usize,
    pub kind: FaultKind,
    pub down_for: Duration,
    pub params: FaultParams,
}

/// Every injection of the run, by time (then fleet order, then file order of the faults),
/// produced as the run goes: a fault every second on a thousand devices for a day is not a
/// list of 86 million injections made up front.
pub fn schedule(fleet: &Fleet) -> Injections<'_> {
    let mut next = BinaryHeap::new();
    for (index, fault) in fleet.faults.iter().enumerate() {
        let first = match fault.schedule {
            Schedule::At(at) => Some(at),
            Schedule::Every(every) if !every.is_zero() => Some(every),
            Schedule::Every(_) | Schedule::Probability(_) => None,
        };
        if let Some(at) = first.filter(|at| *at < fleet.duration) {
            next.push(Reverse((at, index, 1)));
        }
    }
    Injections {
        fleet,
        next,
        batch: VecDeque::new(),
    }
}

/// See [`schedule`].
#[derive(Debug, Clone)]
pub struct Injections<'a> {
    fleet: &'a Fleet,
    /// When each fault fires next: (time, fault index, occurrence).
    next: BinaryHeap<Reverse<(Duration, usize, u32)>>,
    /// The injections due at one instant, in fleet order.
    batch: VecDeque<Injection>,
}

impl Iterator for Injections<'_> {
    type Item = Injection;

    fn next(&mut self) -> Option<Injection> {
        if let Some(injection) = self.batch.pop_front() {
            return Some(injection);
        }
        let Reverse((at, _, _)) = *self.next.peek()?;
        let mut due = Vec::new();
        while let Some(&Reverse((time, index, k))) = self.next.peek() {
            if time != at {
                break;
            }
            self.next.pop();
            due.push(index);
            let fault = &self.fleet.faults[index];
            if let Schedule::Every(every) = fault.schedule {
                let later = every
                    .checked_mul(k + 1)
                    .filter(|t| *t < self.fleet.duration);
                if let Some(later) = later {
                    self.next.push(Reverse((later, index, k + 1)));
                }
            }
        }
        // Equal times: fleet order, then the order of the faults in the file.
        let mut batch: Vec<(usize, usize)> = due
            .iter()
            .flat_map(|&f| self.fleet.faults[f].targets.iter().map(move |&d| (d, f)))
            .collect();
        batch.sort_unstable();
        self.batch = batch
            .into_iter()
            .map(|(device, f)| {
                let fault = &self.fleet.faults[f];
                Injection {
                    at,
                    device,
                    kind: fault.kind,
                    down_for: fault.down_for,
                    params: fault.params,
                }
            })
            .collect();
        self.batch.pop_front()
    }
}

/// What a device needs to know of the faults before it starts.
#[derive(Debug, Clone, Default)]
pub struct DeviceFaults {
    /// Faults it draws by probability, per request or answer, in file order.
    pub chances: Vec<Chance>,
    /// A network fault may act on it: it connects through a proxy.
    pub proxied: bool,
}

/// [`DeviceFaults`] for every device, in one pass over the faults' targets.
pub fn per_device(fleet: &Fleet) -> Vec<DeviceFaults> {
    let mut devices = vec![DeviceFaults::default(); fleet.devices.len()];
    for fault in &fleet.faults {
        for &target in &fault.targets {
            let Some(device) = devices.get_mut(target) else {
                continue;
            };
            if fault.kind.class() == FaultClass::Network {
                device.proxied = true;
            }
            if let Schedule::Probability(p) = fault.schedule {
                device.chances.push(Chance {
                    kind: fault.kind,
                    p,
                    params: fault.params,
                });
            }
        }
    }
    devices
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
            expect: Vec::new(),
            supervisor: None,
            id_prefix: String::new(),
            ramp: None,
            source_addresses: Vec::new(),
            show_exchanges: None,
            shard: Default::default(),
        }
    }

    fn test_device() -> crate::fleet::Device {
        crate::fleet::parse("name: d\ndevices:\n  - {kind: light, id: l}\n", "<test>")
            .expect("valid")
            .devices
            .remove(0)
    }

    fn fault(kind: FaultKind, schedule: Schedule, targets: Vec<usize>) -> Fault {
        Fault {
            kind,
            schedule,
            targets,
            down_for: Duration::from_secs(1),
            params: FaultParams::default(),
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
        let at: Vec<u64> = schedule(&f).map(|i| i.at.as_secs()).collect();
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
        let s: Vec<Injection> = schedule(&f).collect();
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
        assert_eq!(schedule(&f).next(), None);
    }

    #[test]
    fn probability_faults_are_drawn_by_devices_not_scheduled() {
        let f = fleet(
            10,
            vec![
                fault(FaultKind::NoAnswer, Schedule::Probability(0.3), vec![1]),
                fault(
                    FaultKind::Slow,
                    Schedule::At(Duration::from_secs(2)),
                    vec![1],
                ),
            ],
        );
        let scheduled: Vec<FaultKind> = schedule(&f).map(|i| i.kind).collect();
        assert_eq!(scheduled, [FaultKind::Slow]);
        let f = Fleet {
            devices: vec![test_device(); 2],
            ..f
        };
        let devices = per_device(&f);
        let drawn = &devices[1].chances;
        assert_eq!(drawn.len(), 1);
        assert_eq!((drawn[0].kind, drawn[0].p), (FaultKind::NoAnswer, 0.3));
        assert!(devices[0].chances.is_empty());
        assert!(!devices[1].proxied);
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
        let once: Vec<Injection> = schedule(&f).collect();
        assert_eq!(once, schedule(&f).collect::<Vec<_>>());
        assert_eq!(once.len(), 14);
    }
}
