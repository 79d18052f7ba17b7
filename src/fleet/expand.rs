//! Turns checked group plans into devices: expands ids (finding duplicates), topics (checking
//! each expanded name), Wills and phone targets (resolving ids and globs against the whole
//! fleet).
//!
//! Problems found per expanded device are recorded once per field: a bad template in a group
//! of ten thousand lights is one mistake, not ten thousand.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use serde_saphyr::Location;

use super::fields::{Located, topic};
use super::group::{GroupPlan, MAX_DEVICES, RolePlan};
use super::model::{Connection, Device, Kind, Light, Pace, Phone, Role, Sensor, Targets};
use super::phone::{PacePlan, PhoneDest, PhonePlan, TargetPattern};
use super::response_info::expand_response_topic;
use super::template::{Template, Var, Vars, glob_match};
use super::values::Problems;
use super::will::check_ack_topic;

/// Most phone-to-device pairs in one fleet (each becomes a `Target` holding its topics), so a
/// thousand phones targeting `*` among a thousand lights cannot exhaust memory.
pub(super) const MAX_TARGETS: u64 = 1_000_000;

/// One expanded device id, in fleet order.
pub(super) struct Entry {
    /// As the file makes it: what targets, faults and user names are matched against.
    pub id: String,
    /// The MQTT client id: `id` behind the fleet's `id_prefix`. What `{id}` and `{target}`
    /// stand for in topics, so two runs with different prefixes share no topic.
    pub client_id: String,
    /// None when the group's kind was bad: the id still exists, so targets naming it do not add
    /// a misleading "matches nothing", but it yields no target.
    pub kind: Option<Kind>,
    /// Index of its plan (and group).
    pub group: usize,
    pub n: u32,
}

/// What `expand` made.
pub(super) struct Expanded {
    /// Only meaningful when no problem was recorded.
    pub devices: Vec<Device>,
    /// Every id made, in fleet order, even for devices that could not be built: when the fleet
    /// is complete, `entries[i]` is `devices[i]`. None when the fleet was too big to expand.
    pub entries: Option<Vec<Entry>>,
}

/// Expand every plan; `id_prefix` goes in front of every client id.
pub(super) fn expand(problems: &mut Problems, plans: &[GroupPlan], id_prefix: &str) -> Expanded {
    if !fits(problems, plans) {
        return Expanded {
            devices: Vec::new(),
            entries: None,
        };
    }
    let entries = expand_ids(plans, id_prefix);
    let devices = expand_devices(problems, plans, &entries);
    Expanded {
        devices,
        entries: Some(entries),
    }
}

fn expand_devices(problems: &mut Problems, plans: &[GroupPlan], entries: &[Entry]) -> Vec<Device> {
    let by_id = index_ids(problems, plans, entries);

    // Lights and sensors first: phones target them.
    let mut slots: Vec<Option<Device>> = Vec::new();
    for entry in entries {
        // In bounds: entries are made from `plans`, whose `index` is their position.
        let plan = &plans[entry.group];
        let vars = Vars {
            id: &entry.client_id,
            n: entry.n,
            target: None,
        };
        let role = match &plan.role {
            Some(RolePlan::Light {
                command_topic,
                delay,
                initially_on,
            }) => {
                let light = Light {
                    command_topic: topic(problems, command_topic, vars),
                    delay: *delay,
                    initially_on: *initially_on,
                };
                Some(Role::Light(light))
            }
            Some(RolePlan::Sensor {
                telemetry_topic,
                every,
                request_topic,
                unit,
                signal,
            }) => {
                let sensor = Sensor {
                    telemetry_topic: topic(problems, telemetry_topic, vars),
                    every: *every,
                    request_topic: topic(problems, request_topic, vars),
                    unit: unit.clone(),
                    signal: signal.clone(),
                };
                Some(Role::Sensor(sensor))
            }
            Some(RolePlan::Phone(_)) | None => None,
        };
        slots.push(role.map(|role| device(problems, plan, entry, role)));
    }

    let resolver = Resolver {
        entries,
        by_id: &by_id,
        globs: HashMap::new(),
    };
    expand_phones(problems, plans, entries, &mut slots, resolver);

    for device in slots.iter().flatten() {
        if let Some(will) = plans.get(device.group).and_then(|p| p.will.as_ref()) {
            check_ack_topic(problems, will, device);
        }
    }

    match slots.into_iter().collect::<Option<Vec<Device>>>() {
        Some(devices) => devices,
        None => {
            // Every unbuilt device comes from a plan part that recorded a problem; this guards
            // the invariant "no problems => complete fleet" without panicking.
            if problems.is_empty() {
                problems.at(
                    plans.first().map_or(Location::UNKNOWN, |p| p.loc),
                    "devices",
                    "internal error: a device could not be built although no problem was found",
                );
            }
            Vec::new()
        }
    }
}

/// Checks the total device count before anything is allocated per device.
fn fits(problems: &mut Problems, plans: &[GroupPlan]) -> bool {
    let mut total: u64 = 0;
    for plan in plans {
        let Some(ids) = &plan.ids else { continue };
        total += u64::from(ids.count);
        if total > u64::from(MAX_DEVICES) {
            problems.at(
                ids.loc,
                format!("devices[{}].count", plan.index),
                format!("the fleet would have {total} devices or more (max {MAX_DEVICES})"),
            );
            return false;
        }
    }
    true
}

fn expand_ids(plans: &[GroupPlan], id_prefix: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for plan in plans {
        let Some(ids) = &plan.ids else { continue };
        for n in 1..=ids.count {
            let id = ids.template.expand(Vars {
                id: "",
                n,
                target: None,
            });
            entries.push(Entry {
                client_id: format!("{id_prefix}{id}"),
                id,
                kind: plan.kind,
                group: plan.index,
                n,
            });
        }
    }
    entries
}

/// Map each id to its first entry, reporting duplicates once per pair of groups.
fn index_ids<'a>(
    problems: &mut Problems,
    plans: &[GroupPlan],
    entries: &'a [Entry],
) -> HashMap<&'a str, usize> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    // (later group, earlier group) -> (first clashing id, number of clashes)
    let mut clashes: BTreeMap<(usize, usize), (&str, u64)> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        match by_id.get(entry.id.as_str()) {
            Some(&first) => {
                let earlier = entries[first].group;
                let clash = clashes
                    .entry((entry.group, earlier))
                    .or_insert((entry.id.as_str(), 0));
                clash.1 += 1;
            }
            None => {
                by_id.insert(entry.id.as_str(), i);
            }
        }
    }
    for ((later, earlier), (id, count)) in clashes {
        let Some(ids) = plans.get(later).and_then(|p| p.ids.as_ref()) else {
            continue;
        };
        let earlier_line = plans
            .get(earlier)
            .and_then(|p| p.ids.as_ref())
            .map_or(0, |i| i.loc.line());
        let more = if count > 1 {
            format!(" ({count} ids clash in all)")
        } else {
            String::new()
        };
        let source = if later == earlier {
            "this same group".to_string()
        } else {
            format!("devices[{earlier}] (line {earlier_line})")
        };
        problems.at(
            ids.loc,
            format!("devices[{later}].id"),
            format!("duplicate device id `{id}`, also made by {source}{more}"),
        );
    }
    by_id
}

fn device(problems: &mut Problems, plan: &GroupPlan, entry: &Entry, role: Role) -> Device {
    let vars = Vars {
        id: &entry.client_id,
        n: entry.n,
        target: None,
    };
    // User names are the broker's accounts: an id prefix does not rename them.
    let login = Vars {
        id: &entry.id,
        ..vars
    };
    Device {
        id: entry.client_id.clone(),
        group: plan.index,
        n: entry.n,
        connection: Connection {
            username: plan.username.as_ref().map(|u| u.value.expand(login)),
            ..plan.connection.clone()
        },
        role,
        will: plan.will.as_ref().and_then(|w| w.expand(problems, vars)),
        consume_wills: plan
            .consume_wills
            .as_ref()
            .map(|c| c.expand(problems, vars)),
    }
}

/// Looks up target patterns against the expanded fleet, caching glob results. Every index it
/// hands out points into `entries`.
struct Resolver<'a> {
    entries: &'a [Entry],
    by_id: &'a HashMap<&'a str, usize>,
    globs: HashMap<String, Vec<usize>>,
}

impl Resolver<'_> {
    /// Entries a glob matches: lights and sensors (and ids of unknown kind), in fleet order.
    fn glob(&mut self, pattern: &str) -> &[usize] {
        let entries = self.entries;
        self.globs
            .entry(pattern.to_string())
            .or_insert_with(|| {
                entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.kind != Some(Kind::Phone) && glob_match(pattern, &e.id))
                    .map(|(i, _)| i)
                    .collect()
            })
            .as_slice()
    }

    /// The entry an exact id names, or why it cannot be a target.
    fn exact(&self, id: &str) -> Result<usize, String> {
        match self.by_id.get(id) {
            None => Err(format!("target `{id}` matches no device id in this fleet")),
            Some(&i) if self.entries[i].kind == Some(Kind::Phone) => Err(format!(
                "target `{id}` is a phone; phones can only target lights and sensors"
            )),
            Some(&i) => Ok(i),
        }
    }
}

fn expand_phones(
    problems: &mut Problems,
    plans: &[GroupPlan],
    entries: &[Entry],
    slots: &mut [Option<Device>],
    mut resolver: Resolver<'_>,
) {
    let mut pairs: u64 = 0;
    for plan in plans {
        let Some(RolePlan::Phone(phone)) = &plan.role else {
            continue;
        };
        let Some(ids) = &plan.ids else { continue };
        // Patterns without {n} resolve the same for every phone of the group: do them once.
        let mut shared: Vec<usize> = Vec::new();
        let mut per_phone: Vec<(&Located<TargetPattern>, &Template)> = Vec::new();
        if let PhoneDest::Targets { patterns, loc } = &phone.dest {
            let mut seen = HashSet::new();
            for pattern in patterns {
                let found: Vec<usize> = match &pattern.value {
                    TargetPattern::Exact(id) => match resolver.exact(id) {
                        Ok(i) => vec![i],
                        Err(message) => {
                            problems.at(pattern.loc, &pattern.field, message);
                            continue;
                        }
                    },
                    TargetPattern::Glob(glob) => {
                        let found = resolver.glob(glob).to_vec();
                        if found.is_empty() {
                            problems.at(
                                pattern.loc,
                                &pattern.field,
                                format!("target `{glob}` matches no light or sensor"),
                            );
                        }
                        found
                    }
                    TargetPattern::PerPhone(template) => {
                        per_phone.push((pattern, template));
                        continue;
                    }
                };
                shared.extend(found.into_iter().filter(|i| seen.insert(*i)));
            }
            // Phones that share one list (and one Response Topic for all its targets) cost one
            // list for the group; only lists and topics made per phone count per phone.
            let per_target_topics = phone.response_topic.value.uses(Var::Target);
            let each = if per_phone.is_empty() && !per_target_topics {
                1
            } else {
                (shared.len() + per_phone.len()) as u64
            };
            pairs = pairs.saturating_add(each.saturating_mul(u64::from(ids.count)));
            if pairs > MAX_TARGETS {
                problems.at(
                    *loc,
                    format!("devices[{}].targets", plan.index),
                    format!(
                        "phones would have {pairs} targets or more in all (max {MAX_TARGETS}); use fewer phones or narrower targets"
                    ),
                );
                return;
            }
        }

        let payloads: Option<Arc<[Bytes]>> = phone
            .payloads
            .as_ref()
            .map(|p| p.iter().map(|p| Bytes::from(p.clone())).collect());
        let shared: Arc<[u32]> = shared.iter().map(|&i| i as u32).collect();
        for (slot, entry) in slots.iter_mut().zip(entries) {
            if entry.group != plan.index {
                continue;
            }
            let fallback = &plan.connection.response_info_fallback;
            let mut targets = phone_targets(
                problems, phone, entry, fallback, &shared, &per_phone, &resolver,
            );
            targets.payloads = payloads.clone();
            let pace = match phone.pace {
                PacePlan::Phone(pace) => pace,
                // The group's rate, split evenly, each phone staggered by one group interval.
                PacePlan::GroupRate(rate) => Pace::Rate {
                    per_second: rate / f64::from(ids.count),
                    offset: Some(Duration::from_secs_f64(f64::from(entry.n - 1) / rate)),
                },
            };
            let role = Role::Phone(Phone {
                targets,
                pace,
                timeout: phone.timeout,
                max_requests: phone.max_requests,
                correlation_data: phone.correlation_data,
                expect_answer: phone.expect_answer.clone(),
            });
            *slot = Some(device(problems, plan, entry, role));
        }
    }
}

fn phone_targets(
    problems: &mut Problems,
    phone: &PhonePlan,
    me: &Entry,
    fallback: &str,
    shared: &Arc<[u32]>,
    per_phone: &[(&Located<TargetPattern>, &Template)],
    resolver: &Resolver<'_>,
) -> Targets {
    let vars = Vars {
        id: &me.client_id,
        n: me.n,
        target: None,
    };
    // Target patterns name devices as the file does, before any id prefix.
    let as_written = Vars { id: &me.id, ..vars };
    if let PhoneDest::Topic(request_topic) = &phone.dest {
        let response = expand_response_topic(problems, &phone.response_topic, vars, fallback);
        return Targets {
            devices: Arc::from([]),
            topic: Some(topic(problems, request_topic, vars).into()),
            response_topics: Arc::from([Arc::from(response)]),
            payloads: None,
        };
    }

    let devices = if per_phone.is_empty() {
        shared.clone()
    } else {
        let mut chosen: Vec<u32> = shared.to_vec();
        for (pattern, template) in per_phone {
            let id = template.expand(as_written);
            match resolver.exact(&id) {
                Ok(i) if !chosen.contains(&(i as u32)) => chosen.push(i as u32),
                Ok(_) => {}
                Err(message) => problems.once(
                    &pattern.field,
                    pattern.loc,
                    &pattern.field,
                    format!("for phone `{}`: {message}", me.id),
                ),
            }
        }
        chosen.into()
    };
    let response_topics = if phone.response_topic.value.uses(Var::Target) {
        devices
            .iter()
            .map(|&i| {
                let target = Vars {
                    target: Some(&resolver.entries[i as usize].client_id),
                    ..vars
                };
                expand_response_topic(problems, &phone.response_topic, target, fallback).into()
            })
            .collect()
    } else {
        let response = expand_response_topic(problems, &phone.response_topic, vars, fallback);
        Arc::from([Arc::from(response)])
    };
    Targets {
        devices,
        topic: None,
        response_topics,
        payloads: None,
    }
}
