//! The device's occasional timed steps (dial again, come back after a fault, a delayed answer,
//! a toxic that lapses...), kept in time order. The actor keeps one timer for the earliest of
//! these and of the device's periodic ones (keepalive, pacing, request deadlines): no timer per
//! request, none per delayed answer.

use std::collections::VecDeque;
use std::time::Instant;

/// Timed steps in time order; equal times keep insertion order.
#[derive(Debug)]
pub struct Timers<T> {
    items: VecDeque<(Instant, T)>,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }
}

impl<T> Timers<T> {
    /// Most steps come later than all others (a constant delay after each request), so the
    /// search runs from the back and is usually one comparison.
    pub fn add(&mut self, at: Instant, step: T) {
        let position = self
            .items
            .iter()
            .rposition(|(other, _)| *other <= at)
            .map_or(0, |i| i + 1);
        self.items.insert(position, (at, step));
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.items.front().map(|(at, _)| *at)
    }

    /// The earliest step, if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.items.front() {
            Some((at, _)) if *at <= now => self.items.pop_front().map(|(_, step)| step),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_come_out_in_time_order_and_only_when_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        timers.add(ms(30), "c");
        timers.add(ms(10), "a");
        timers.add(ms(20), "b1");
        timers.add(ms(20), "b2");
        assert_eq!(timers.next_at(), Some(ms(10)));
        assert_eq!(timers.pop_due(ms(5)), None);
        assert_eq!(timers.pop_due(ms(20)), Some("a"));
        assert_eq!(timers.pop_due(ms(20)), Some("b1"));
        assert_eq!(
            timers.pop_due(ms(20)),
            Some("b2"),
            "equal times keep their order"
        );
        assert_eq!(timers.pop_due(ms(20)), None);
        assert_eq!(timers.pop_due(ms(30)), Some("c"));
        assert!(timers.is_empty());
    }
}
