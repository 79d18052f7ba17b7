//! The fleet file's JSON Schema: `docs/fleet.schema.json` is what `fleetsim schema` prints,
//! every shipped fleet passes it (and points editors at it on its first line), and it refuses
//! what the parser refuses for its shape.

mod common;

use std::path::{Path, PathBuf};

use common::repo_file;
use common::schema::{SCHEMA_FILE, committed_schema, schema_errors, validator};

fn shipped_fleets() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read fleets/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_file("fleets"), &mut out);
    out.sort();
    out
}

#[test]
fn the_committed_schema_is_what_fleetsim_schema_prints() {
    let out = common::fleetsim_command()
        .arg("schema")
        .output()
        .expect("run fleetsim");
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8(out.stdout).expect("UTF-8");
    let committed = std::fs::read_to_string(repo_file(SCHEMA_FILE)).expect("read the schema");
    assert!(
        printed == committed,
        "{SCHEMA_FILE} is out of date: run `cargo run -- schema > {SCHEMA_FILE}`"
    );
    assert!(printed.ends_with("}\n"), "{printed}");
}

#[test]
fn the_schema_is_a_valid_draft_07_schema() {
    let schema = committed_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::meta::validate(&schema).expect("valid against its meta-schema");
}

#[test]
fn every_shipped_fleet_passes_the_schema_and_names_it_first() {
    let validator = validator();
    let fleets = shipped_fleets();
    assert!(fleets.len() >= 10, "{fleets:?}");
    let schema_path = repo_file(SCHEMA_FILE).canonicalize().unwrap();
    for path in fleets {
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{}:\n{errors}", path.display());
        // The modeline editors read: its path, taken from the file's directory, is the schema.
        let first = text.lines().next().unwrap_or_default();
        let relative = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: first line is {first:?}", path.display()));
        let target = path.parent().unwrap().join(relative);
        assert_eq!(
            target.canonicalize().ok().as_ref(),
            Some(&schema_path),
            "{}",
            path.display()
        );
    }
}

#[test]
fn the_schema_refuses_what_the_parser_refuses_for_its_shape() {
    let validator = validator();
    let good = "name: t\ndevices:\n  - kind: light\n    id: l\n    count: 2\n";
    assert_eq!(schema_errors(&validator, good), "");
    for (bad, expected) in [
        // An unknown top-level key (a typo).
        (
            "name: t\ncolour: red\ndevices: [{kind: light, id: l}]\n",
            "colour",
        ),
        // A count that is not a number.
        (
            "name: t\ndevices:\n  - {kind: light, id: l, count: ten}\n",
            "\"ten\"",
        ),
        // A device kind fleetsim does not have.
        ("name: t\ndevices:\n  - {kind: robot, id: r}\n", "\"robot\""),
        // A fault kind fleetsim does not have.
        (
            "name: t\ndevices: [{kind: light, id: l}]\nfaults: [{kind: explode, target: l, at: 1s}]\n",
            "\"explode\"",
        ),
        // An unknown field in a group.
        (
            "name: t\ndevices:\n  - {kind: light, id: l, colour: red}\n",
            "colour",
        ),
        // No devices.
        ("name: t\n", "devices"),
    ] {
        let errors = schema_errors(&validator, bad);
        assert!(errors.contains(expected), "{bad}: {errors:?}");
        assert!(
            fleetsim::fleet::parse(bad, "bad.yaml").is_err(),
            "the parser accepts {bad}"
        );
    }
}
