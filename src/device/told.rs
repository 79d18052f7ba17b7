//! What a device tells the narration about its connection set-up: the CONNECT properties the
//! lessons are about, the CONNACK's answer, and each subscription with what it is for. Only
//! called while the narration tells set-up (small fleets, exchanges still to tell).

use mqtt5_protocol::QoS;
use mqtt5_protocol::packet::suback::SubAckReasonCode;

use super::core::{Device, Out, Role};
use super::will::will_correlation;
use crate::fleet::Role as Spec;
use crate::narrate::{ConnackFacts, ConnectFacts, Filter, Granted, Purpose, WillFacts};

impl Device {
    pub(super) fn tell_connect(&self, out: &mut Out<'_>) {
        let spec = self.spec();
        let c = &spec.connection;
        let facts = ConnectFacts {
            clean_start: c.clean_start,
            keepalive_s: u16::try_from(c.keepalive.as_secs()).unwrap_or(u16::MAX),
            request_response_information: c.request_response_info,
            username: c.username.clone(),
            will: spec.will.as_ref().map(|w| WillFacts {
                topic: w.topic.clone(),
                response_topic: w.response_topic.clone(),
                correlation: will_correlation(self.id(), self.incarnation),
                delay_s: w.delay.as_secs(),
            }),
        };
        out.shared.narration.tell(|n| n.connect(self.id(), &facts));
    }

    pub(super) fn tell_connack(&self, facts: ConnackFacts, out: &mut Out<'_>) {
        out.shared.narration.tell(|n| n.connack(self.id(), &facts));
    }

    pub(super) fn tell_subscribe(&self, filters: &[(String, QoS)], out: &mut Out<'_>) {
        let filters: Vec<Filter> = filters
            .iter()
            .map(|(filter, _)| Filter {
                filter: filter.clone(),
                purpose: self.purpose(filter),
            })
            .collect();
        out.shared
            .narration
            .tell(|n| n.subscribe(self.id(), &filters));
    }

    pub(super) fn tell_suback(
        &self,
        filters: &[(String, QoS)],
        reasons: &[SubAckReasonCode],
        out: &mut Out<'_>,
    ) {
        let results: Vec<(String, Granted)> = filters
            .iter()
            .zip(reasons)
            .map(|((filter, _), reason)| {
                let result = match reason {
                    SubAckReasonCode::GrantedQoS0 => Granted::Qos(0),
                    SubAckReasonCode::GrantedQoS1 => Granted::Qos(1),
                    SubAckReasonCode::GrantedQoS2 => Granted::Qos(2),
                    other => Granted::Refused(format!("{other:?} (0x{:02X})", *other as u8)),
                };
                (filter.clone(), result)
            })
            .collect();
        out.shared.narration.tell(|n| n.suback(self.id(), &results));
    }

    /// What a subscription of this device is for (the narration words it).
    fn purpose(&self, filter: &str) -> Purpose {
        let spec = self.spec();
        if spec
            .will
            .as_ref()
            .is_some_and(|w| w.response_topic == filter)
        {
            return Purpose::WillAcks;
        }
        if spec
            .consume_wills
            .as_ref()
            .is_some_and(|c| c.filters.iter().any(|f| f == filter))
        {
            return Purpose::Wills;
        }
        match (&self.role, &spec.role) {
            (Role::Phone(_), _) => Purpose::Answers,
            (_, Spec::Light(_)) => Purpose::Commands,
            (_, Spec::Sensor(_)) => Purpose::Requests,
            _ => Purpose::Other,
        }
    }
}
