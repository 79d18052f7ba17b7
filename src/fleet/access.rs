//! Who may connect and what they may do: the embedded broker's `users`, `acl` and
//! `allow_anonymous`, and the `username` and `password` each group connects with. Device user
//! names are matched against the embedded broker's users once ids are expanded.

use std::collections::HashSet;
use std::collections::hash_map::{Entry as MapEntry, HashMap};

use serde_saphyr::{Location, Spanned};

use super::fields::Located;
use super::model::{self, Access, AclRule, EmbeddedSettings, Secret, User};
use super::raw::{RawAclRule, RawEmbedded, RawGroup, RawSecret, RawSupervisor, RawUser};
use super::response_info::check_prefix;
use super::secret::{Env, expand_secret};
use super::template::{Template, Var, Vars, check_filter, unsafe_char};
use super::values::Problems;
use crate::output::Escaped;

/// MQTT strings (user names) carry a two-byte length.
const MAX_STRING_BYTES: usize = 65_535;

/// The settings under `broker: {embedded: ...}`, port aside.
pub(super) fn check_embedded(
    problems: &mut Problems,
    raw: &RawEmbedded,
    env: Env<'_>,
) -> EmbeddedSettings {
    if let Some(info) = &raw.response_information {
        check_prefix(
            problems,
            info,
            "broker.embedded.response_information",
            false,
        );
    }
    let users = check_users(problems, raw.users.as_ref(), env);
    let acl = check_acl(problems, raw.acl.as_ref(), &user_names(raw));
    let listed_users = raw.users.as_ref().is_some_and(|u| !u.value.is_empty());
    EmbeddedSettings {
        response_information: raw.response_information.as_ref().map(|r| r.value.clone()),
        users,
        acl,
        allow_anonymous: raw
            .allow_anonymous
            .as_ref()
            .map_or(!listed_users, |a| a.value),
    }
}

/// Every user name written, even those with problems: a rule or device naming one of them
/// should not add "unknown user" to the problem already reported.
fn user_names(raw: &RawEmbedded) -> HashSet<&str> {
    raw.users
        .iter()
        .flat_map(|u| &u.value)
        .filter_map(|u| u.value.name.as_ref())
        .map(|n| n.value.as_str())
        .collect()
}

fn check_users(
    problems: &mut Problems,
    raw: Option<&Spanned<Vec<Spanned<RawUser>>>>,
    env: Env<'_>,
) -> Vec<User> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut users = Vec::with_capacity(raw.value.len());
    let mut first_line: HashMap<&str, u64> = HashMap::new();
    for (i, u) in raw.value.iter().enumerate() {
        let at = |name: &str| format!("broker.embedded.users[{i}].{name}");
        let name = required(problems, &u.value.name, u.referenced, &at("name"), "");
        if let Some(name) = name {
            if let Err(message) = check_user_name(&name.value) {
                problems.at(name.referenced, at("name"), message);
            }
            match first_line.entry(name.value.as_str()) {
                MapEntry::Occupied(line) => problems.at(
                    name.referenced,
                    at("name"),
                    format!(
                        "duplicate user `{}`, also listed on line {}",
                        name.value,
                        line.get()
                    ),
                ),
                MapEntry::Vacant(slot) => {
                    slot.insert(name.referenced.line());
                }
            }
        }
        let password = required(
            problems,
            &u.value.password,
            u.referenced,
            &at("password"),
            " (write `password: \"\"` for an empty one)",
        )
        .and_then(|p| secret(problems, p, &at("password"), env));
        if let (Some(name), Some(password)) = (name, password) {
            users.push(User {
                name: name.value.clone(),
                password,
            });
        }
    }
    users
}

/// A user name goes into ACL topics wherever `%u` stands, so it must not change their levels.
fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("user name must not be empty".to_string());
    }
    if name == "*" {
        return Err("`*` cannot be a user name: in `acl` it means every user".to_string());
    }
    // The broker would take one account for both, and the supervisor's random password would
    // silently replace the fleet's.
    if name == crate::supervisor::CLIENT_ID {
        return Err(format!(
            "`{name}` cannot be a user name: it is the account fleetsim gives its supervisor on a locked-down embedded broker"
        ));
    }
    if let Some(what) = unsafe_char(name) {
        return Err(format!(
            "user name `{}` contains {what}",
            Escaped::value(name)
        ));
    }
    if let Some(bad) = name.chars().find(|c| matches!(c, '+' | '#' | '/')) {
        return Err(format!(
            "user name `{name}` contains `{bad}`; names stand for `%u` in ACL topics, where + # / would change the topic's levels"
        ));
    }
    if name.len() > MAX_STRING_BYTES {
        return Err(format!(
            "user name is {} bytes long (max {MAX_STRING_BYTES})",
            name.len()
        ));
    }
    Ok(())
}

fn check_acl(
    problems: &mut Problems,
    raw: Option<&Spanned<Vec<Spanned<RawAclRule>>>>,
    names: &HashSet<&str>,
) -> Vec<AclRule> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut rules = Vec::with_capacity(raw.value.len());
    for (i, r) in raw.value.iter().enumerate() {
        let at = |name: &str| format!("broker.embedded.acl[{i}].{name}");
        let user = required(
            problems,
            &r.value.user,
            r.referenced,
            &at("user"),
            " (a name from `users`, or \"*\" for every user)",
        )
        .filter(|user| {
            let known = user.value == "*" || names.contains(user.value.as_str());
            if !known {
                problems.at(
                    user.referenced,
                    at("user"),
                    format!(
                        "user `{}` is not among the embedded broker's users (name one of them, or \"*\" for every user)",
                        user.value
                    ),
                );
            }
            known
        });
        let topic = required(problems, &r.value.topic, r.referenced, &at("topic"), "")
            // `%u` is ordinary text to a filter, and a user name holds no + # /: the levels
            // checked here are those of every user's filter.
            .filter(|topic| match check_filter(&topic.value) {
                Ok(()) => true,
                Err(message) => {
                    problems.at(topic.referenced, at("topic"), message);
                    false
                }
            });
        let access = required(
            problems,
            &r.value.access,
            r.referenced,
            &at("access"),
            " (read, write, readwrite or deny)",
        )
        .and_then(|access| {
            let parsed = match access.value.as_str() {
                "read" => Some(Access::Read),
                "write" => Some(Access::Write),
                "readwrite" => Some(Access::ReadWrite),
                "deny" => Some(Access::Deny),
                _ => None,
            };
            if parsed.is_none() {
                problems.at(
                    access.referenced,
                    at("access"),
                    format!(
                        "access must be read, write, readwrite or deny, got `{}`",
                        access.value
                    ),
                );
            }
            parsed
        });
        if let (Some(user), Some(topic), Some(access)) = (user, topic, access) {
            rules.push(AclRule {
                user: user.value.clone(),
                topic: topic.value.clone(),
                access,
            });
        }
    }
    rules
}

/// The field, or a "missing required field" problem at the mapping that lacks it.
fn required<'a, T>(
    problems: &mut Problems,
    value: &'a Option<Spanned<T>>,
    mapping: Location,
    field: &str,
    hint: &str,
) -> Option<&'a Spanned<T>> {
    if value.is_none() {
        let name = field.rsplit('.').next().unwrap_or(field);
        problems.at(
            mapping,
            field,
            format!("missing required field `{name}`{hint}"),
        );
    }
    value.as_ref()
}

/// `supervisor:`: a user name (required, non-empty) and an optional password.
pub(super) fn check_supervisor(
    problems: &mut Problems,
    raw: Option<&Spanned<RawSupervisor>>,
    env: Env<'_>,
) -> Option<model::Login> {
    let raw = raw?;
    let username = match &raw.value.username {
        None => {
            problems.at(
                raw.referenced,
                "supervisor",
                "missing required field `username`",
            );
            return None;
        }
        Some(name) => {
            let complaint = if name.value.is_empty() {
                Some("user name must not be empty".to_string())
            } else {
                unsafe_char(&name.value).map(|what| {
                    format!(
                        "user name `{}` contains {what}",
                        Escaped::value(&name.value)
                    )
                })
            };
            if let Some(message) = complaint {
                problems.at(name.referenced, "supervisor.username", message);
                return None;
            }
            name.value.clone()
        }
    };
    let password = match &raw.value.password {
        Some(p) => Some(secret(problems, p, "supervisor.password", env)?),
        None => None,
    };
    Some(model::Login { username, password })
}

/// A password with its `${VAR}`s replaced; every problem is recorded at the value, none
/// quoting it.
fn secret(
    problems: &mut Problems,
    raw: &Spanned<RawSecret>,
    field: &str,
    env: Env<'_>,
) -> Option<Secret> {
    match expand_secret(&raw.value.0, env) {
        Ok(secret) => Some(secret),
        Err(messages) => {
            for message in messages {
                problems.at(raw.referenced, field, message);
            }
            None
        }
    }
}

/// A group's checked `username` and `password`.
#[derive(Debug)]
pub(super) struct Login {
    /// Expanded per device (`{id}`, `{n}`).
    pub username: Option<Located<Template>>,
    pub password: Option<Secret>,
}

pub(super) fn check_login(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
    env: Env<'_>,
) -> Login {
    let username = g.username.as_ref().and_then(|u| {
        let field = format!("devices[{index}].username");
        let checked = Template::parse(&u.value, &[Var::Id, Var::N])
            .and_then(|t| check_username(&u.value).map(|()| t));
        match checked {
            Ok(value) => Some(Located {
                value,
                loc: u.referenced,
                field,
            }),
            Err(message) => {
                problems.at(u.referenced, field, message);
                None
            }
        }
    });
    let password = g.password.as_ref().and_then(|p| {
        let field = format!("devices[{index}].password");
        if g.username.is_none() {
            problems.at(
                p.referenced,
                &field,
                "a password needs a username: set `username` too",
            );
        }
        secret(problems, p, &field, env)
    });
    Login { username, password }
}

/// The template as written; `{id}` and `{n}` add only id characters and digits.
fn check_username(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("username must not be empty (leave it out to connect without one)".into());
    }
    if let Some(what) = unsafe_char(text) {
        return Err(format!(
            "username `{}` contains {what}",
            Escaped::value(text)
        ));
    }
    if text.len() > MAX_STRING_BYTES {
        return Err(format!(
            "username is {} bytes long (max {MAX_STRING_BYTES})",
            text.len()
        ));
    }
    Ok(())
}

/// With the embedded broker and its `users`, every device user name must be one of them (a
/// device that could never log in is a typo, not a test). Once per group.
/// `usernames`: each group's `username` template, by group index; `devices`: every device as
/// (group index, id as written, `n`).
pub(super) fn check_usernames<'a>(
    problems: &mut Problems,
    usernames: &[Option<&Located<Template>>],
    devices: impl IntoIterator<Item = (usize, &'a str, u32)>,
    embedded: &RawEmbedded,
) {
    let names = user_names(embedded);
    if names.is_empty() {
        return;
    }
    for (group, id, n) in devices {
        let Some(username) = usernames.get(group).copied().flatten() else {
            continue;
        };
        let name = username.value.expand(Vars {
            id,
            n,
            target: None,
        });
        if !names.contains(name.as_str()) {
            problems.once(
                &username.field,
                username.loc,
                &username.field,
                format!("user `{name}` is not among the embedded broker's users"),
            );
        }
    }
}
