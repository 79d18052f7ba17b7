//! The request tracker and the pacer, without a device around them.

use super::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const TIMEOUT: Duration = Duration::from_secs(2);

fn ms(t: Instant, n: u64) -> Instant {
    t + Duration::from_millis(n)
}

#[test]
fn correlation_data_is_unique_per_request_and_names_the_phone() {
    let mut t = RequestTracker::new("phone-1", TIMEOUT);
    let now = Instant::now();
    let (s1, c1) = t.open(now);
    let (s2, c2) = t.open(now);
    assert_eq!((s1, s2), (1, 2));
    assert_eq!(&c1[..], b"phone-1:1");
    assert_eq!(&c2[..], b"phone-1:2");
    assert_eq!(t.sent(), 2);
    assert_eq!(&t.correlation(1234567890)[..], b"phone-1:1234567890");
}

#[test]
fn first_answer_matches_with_its_latency_and_second_is_a_duplicate() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    let (seq, corr) = t.open(now);
    let later = ms(now, 7);
    assert_eq!(
        t.answer(Some(&corr), later),
        Verdict::Matched {
            seq,
            latency: Duration::from_millis(7)
        }
    );
    assert_eq!(t.answer(Some(&corr), later), Verdict::Duplicate);
    assert_eq!(t.in_flight(), 0);
}

#[test]
fn answers_out_of_order_each_find_their_own_request_and_deadlines_follow_the_oldest() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    let (s1, c1) = t.open(now);
    let (s2, c2) = t.open(ms(now, 1));
    assert_eq!(t.next_deadline(), Some(now + TIMEOUT));
    let at = ms(now, 10);
    assert!(matches!(t.answer(Some(&c2), at), Verdict::Matched { seq, .. } if seq == s2));
    assert_eq!(
        t.next_deadline(),
        Some(now + TIMEOUT),
        "the oldest is still open"
    );
    assert!(matches!(t.answer(Some(&c1), at), Verdict::Matched { seq, .. } if seq == s1));
    assert_eq!(t.next_deadline(), None);
    assert_eq!(
        t.answer(Some(&c2), at),
        Verdict::Duplicate,
        "remembered once retired"
    );
}

#[test]
fn unknown_or_missing_correlation_is_unmatched() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    t.open(now);
    for bad in [
        &b"other:1"[..],
        b"p:99",
        b"p:x",
        b"p:",
        b"p:0",
        b"p:-1",
        b"p:99999999999999999999999",
        &[0xff, 0x00],
    ] {
        assert_eq!(t.answer(Some(bad), now), Verdict::Unmatched, "{bad:?}");
    }
    assert_eq!(t.answer(None, now), Verdict::Unmatched);
    assert_eq!(t.in_flight(), 1);
}

#[test]
fn expired_requests_time_out_once_and_a_later_answer_makes_each_late() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    let (s1, c1) = t.open(now);
    let (s2, _) = t.open(ms(now, 500));
    let (_, c3) = t.open(ms(now, 3000));
    let mut expired = Vec::new();
    t.expire(ms(now, 2600), |seq, waited| expired.push((seq, waited)));
    assert_eq!(
        expired,
        [
            (s1, Duration::from_millis(2600)),
            (s2, Duration::from_millis(2100))
        ]
    );
    t.expire(ms(now, 2700), |seq, _| panic!("{seq} timed out twice"));
    assert_eq!(t.in_flight(), 1);
    assert_eq!(
        t.answer(Some(&c1), ms(now, 4000)),
        Verdict::Late {
            seq: s1,
            latency: Duration::from_secs(4)
        }
    );
    assert_eq!(
        t.answer(Some(&c1), ms(now, 4000)),
        Verdict::Duplicate,
        "late once"
    );
    assert!(matches!(
        t.answer(Some(&c3), ms(now, 3100)),
        Verdict::Matched { .. }
    ));
}

#[test]
fn an_answer_after_the_timeout_is_late_even_before_the_deadline_was_looked_at() {
    let mut t = RequestTracker::new("p", Duration::from_millis(5));
    let now = Instant::now();
    let (seq, corr) = t.open(now);
    assert_eq!(
        t.answer(Some(&corr), ms(now, 6)),
        Verdict::Overdue {
            seq,
            latency: Duration::from_millis(6)
        }
    );
    t.expire(ms(now, 6), |seq, _| panic!("{seq} ended already"));
    assert_eq!(t.answer(Some(&corr), ms(now, 6)), Verdict::Duplicate);
    // Exactly at the timeout is still in time.
    let (seq, corr) = t.open(now);
    assert!(
        matches!(t.answer(Some(&corr), ms(now, 5)), Verdict::Matched { seq: s, .. } if s == seq)
    );
}

#[test]
fn a_failed_request_takes_no_answer() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    t.open(now);
    let (seq, corr) = t.open(now);
    assert!(t.fail(seq));
    assert!(!t.fail(seq), "fails once");
    assert!(!t.fail(99));
    assert_eq!(t.answer(Some(&corr), now), Verdict::Unmatched);
    assert_eq!(t.in_flight(), 1);
}

#[test]
fn memory_of_finished_requests_is_bounded_and_old_ones_are_forgotten() {
    let mut t = RequestTracker::new("p", TIMEOUT);
    let now = Instant::now();
    let first = t.open(now).1;
    t.answer(Some(&first), now);
    for _ in 0..REMEMBERED * 3 {
        let (_, corr) = t.open(now);
        t.answer(Some(&corr), now);
    }
    assert!(t.window.is_empty());
    assert_eq!(t.answer(Some(&first), now), Verdict::Unmatched, "forgotten");
    let recent = t.correlation(t.sent());
    assert_eq!(
        t.answer(Some(&recent), now),
        Verdict::Duplicate,
        "remembered"
    );
    // Timed-out requests are kept with their send time only while remembered.
    for _ in 0..REMEMBERED * 2 {
        t.open(now);
    }
    t.expire(now + TIMEOUT, |_, _| {});
    assert!(t.timed_out.len() as u64 <= REMEMBERED);
}

#[test]
fn a_rate_is_paced_against_its_start_not_after_each_send() {
    let mut rng = SmallRng::seed_from_u64(1);
    let start = Instant::now();
    let mut p = Pacer::new(Pace::Rate {
        per_second: 1000.0,
        offset: Some(Duration::ZERO),
    });
    p.begin(start, &mut rng);
    // However late each send happens, request k is due at start + k ms.
    for k in 0..10_000u64 {
        assert_eq!(p.next, Some(start + Duration::from_millis(k)), "{k}");
        p.advance(&mut rng);
    }
}

#[test]
fn every_with_jitter_averages_every() {
    let mut rng = SmallRng::seed_from_u64(2);
    let start = Instant::now();
    let every = Duration::from_millis(10);
    let mut p = Pacer::new(Pace::Every {
        every,
        jitter: Duration::from_millis(5),
    });
    p.begin(start, &mut rng);
    let first = p.next.unwrap();
    assert!(first < start + every);
    for _ in 0..1000 {
        p.advance(&mut rng);
    }
    let mean = (p.next.unwrap() - first).as_secs_f64() / 1000.0;
    assert!((mean - 0.010).abs() < 0.0005, "{mean}");
}

#[test]
fn a_closed_loop_owes_its_window_at_the_start() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut p = Pacer::new(Pace::InFlight(8));
    p.begin(Instant::now(), &mut rng);
    assert_eq!((p.owed, p.next), (8, None));
}

#[test]
fn only_json_objects_with_an_error_field_are_error_answers() {
    assert!(is_error_answer(
        br#"{"power":"OFF","error":"unknown command"}"#
    ));
    assert!(!is_error_answer(br#"{"power":"ON"}"#));
    assert!(!is_error_answer(br#"{"note":"no \"error\" here"}"#));
    assert!(!is_error_answer(b"error"));
    assert!(!is_error_answer(&[b'{'; 5000]));
}

#[test]
fn a_timeout_counts_at_its_deadline_whenever_it_is_noticed_and_never_in_the_future() {
    let sent = Instant::now();
    let timeout = Duration::from_secs(2);
    // Noticed 300 ms after the deadline, or answered late 5 s after sending: the same second.
    let noticed = sent + Duration::from_millis(2300);
    assert_eq!(
        super::deadline(noticed, noticed - sent, timeout),
        sent + timeout
    );
    let answered = sent + Duration::from_secs(5);
    assert_eq!(
        super::deadline(answered, answered - sent, timeout),
        sent + timeout
    );
    // A late answer whose sending time is lost (waited 0): not a second still to come.
    assert_eq!(super::deadline(answered, Duration::ZERO, timeout), answered);
}
