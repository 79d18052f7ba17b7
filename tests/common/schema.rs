//! The committed JSON Schema of the fleet file, and fleets checked against it as an editor
//! checks them.

use serde_json::Value;

use super::repo_file;

pub const SCHEMA_FILE: &str = "docs/fleet.schema.json";

pub fn committed_schema() -> Value {
    let text = std::fs::read_to_string(repo_file(SCHEMA_FILE)).expect("read the schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

pub fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&committed_schema()).expect("the schema compiles")
}

/// The YAML as JSON, the way an editor's YAML support sees it: YAML 1.2, where only `true` and
/// `false` are booleans (`ON` and `OFF` are text, as in fleetsim's payloads).
pub fn yaml_value(text: &str) -> Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options::<Value>(text, options).expect("YAML")
}

/// Every problem the schema finds in `text`, one per line.
pub fn schema_errors(validator: &jsonschema::Validator, text: &str) -> String {
    let value = yaml_value(text);
    validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}
