//! The wire encodings against their golden files: each payload of [`super::payloads`], filled
//! with fixed values, must encode exactly as `golden/v{PROTOCOL_VERSION}/<name>.json` says,
//! and each golden file must still decode (a node of this protocol version may send it).
//!
//! A change of an encoding fails here, and the message says which kind it is: fields only
//! added (allowed within a protocol version: add them to the golden file) or a field renamed,
//! removed or retyped (a new protocol version: bump [`PROTOCOL_VERSION`], and run this test
//! with `MP3C_WRITE_GOLDEN=1` to write the new version's files, keeping the old ones). The
//! switch never writes a break over the files of the version it breaks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::payloads::*;
use super::{PROTOCOL_VERSION, decode, encode};
use crate::ids::Id;
use crate::storage::JobState;

fn id(hex: &str) -> Id {
    hex.parse().expect("a fixed id")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("src/cluster/protocol/golden/v{PROTOCOL_VERSION}"))
}

/// Every leaf of a JSON value, by its path, with its type (`null` standing for any type, as an
/// optional field's absence does).
fn leaves(value: &Value, path: String, into: &mut BTreeMap<String, &'static str>) {
    match value {
        Value::Object(fields) => fields.iter().for_each(|(key, field)| leaves(field, format!("{path}.{key}"), into)),
        Value::Array(items) => items.iter().for_each(|item| leaves(item, format!("{path}[]"), into)),
        Value::Null => drop(into.insert(path, "null")),
        Value::Bool(_) => drop(into.insert(path, "bool")),
        Value::Number(_) => drop(into.insert(path, "number")),
        Value::String(_) => drop(into.insert(path, "string")),
    }
}

/// How `written` differs from `golden`: the leaves renamed, removed or retyped (a break), and
/// the leaves added (allowed within a protocol version).
fn difference(golden: &Value, written: &Value) -> (Vec<String>, Vec<String>) {
    let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
    leaves(golden, String::new(), &mut old);
    leaves(written, String::new(), &mut new);
    let broken = old
        .iter()
        .filter(|(path, kind)| new.get(*path).is_none_or(|now| now != *kind && **kind != "null" && *now != "null"))
        .map(|(path, _)| path.clone())
        .collect();
    let added = new.keys().filter(|path| !old.contains_key(*path)).cloned().collect();
    (broken, added)
}

/// Checks one payload against its golden file; the reason it does not match, if it does not.
/// With `MP3C_WRITE_GOLDEN=1` a missing file is written, and an existing one only gains added
/// fields: a break is never written over the files of the version it breaks.
fn check<T: Serialize + DeserializeOwned>(name: &str, sample: &T) -> Option<String> {
    let written: Value = serde_json::from_slice(&encode(sample)).expect("an encoding is JSON");
    let path = golden_dir().join(format!("{name}.json"));
    let write = || {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&written).unwrap() + "\n").unwrap();
    };
    let may_write = std::env::var_os("MP3C_WRITE_GOLDEN").is_some();
    let Ok(text) = std::fs::read_to_string(&path) else {
        if may_write {
            write();
            return None;
        }
        return Some(format!("{name}: no golden file {} (MP3C_WRITE_GOLDEN=1 writes it)", path.display()));
    };
    let golden: Value = serde_json::from_str(&text).expect("a golden file is JSON");
    if let Err(error) = decode::<T>(text.as_bytes()) {
        return Some(format!("{name}: its golden file no longer decodes ({error}): a node of this version sends it"));
    }
    if golden == written {
        return None;
    }
    match difference(&golden, &written) {
        (broken, _) if !broken.is_empty() => Some(format!(
            "{name}: fields renamed, removed or retyped ({broken:?}): that needs a new protocol version \
             (bump PROTOCOL_VERSION, then MP3C_WRITE_GOLDEN=1 writes its files)"
        )),
        _ if may_write => {
            write();
            None
        }
        (_, added) => Some(format!(
            "{name}: fields added ({added:?}): allowed within protocol version {PROTOCOL_VERSION}; \
             MP3C_WRITE_GOLDEN=1 adds them to the golden file"
        )),
    }
}

fn hello() -> Hello {
    Hello {
        node: "gw".into(),
        version: "0.1.0".into(),
        protocol: PROTOCOL_VERSION,
        advertise: "10.0.0.7:4697".into(),
        roles: vec!["gateway".into(), "auth".into()],
        peers: vec!["10.0.0.8:4697".into()],
    }
}

fn job_event() -> JobEvent {
    JobEvent {
        job_id: id("65a1b2c3d4e5f60718293a4b"),
        version: 7,
        state: JobState::Done,
        percent: Some(100.0),
        mp3_fid: Some(id("65a1b2c3d4e5f60718293a4c")),
        media_seconds: Some(61.5),
        error: None,
    }
}

fn node_status() -> NodeStatus {
    NodeStatus {
        node: "work".into(),
        version: "0.1.0".into(),
        protocol: PROTOCOL_VERSION,
        roles: vec!["converter".into()],
        uptime_seconds: 3600,
        actors: vec!["converter-1".into(), "node-agent".into()],
        converting: vec![Holding { actor: "converter-1".into(), job_id: id("65a1b2c3d4e5f60718293a4b") }],
        jobs_done: 12,
        jobs_failed: 1,
    }
}

#[test]
fn every_payload_is_encoded_as_its_golden_file_says() {
    let granted: LoginReply = Ok(LoginGranted { token: "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(), expires_in: 86400 });
    let failures = [
        check("login_request", &LoginRequest { email: "you@example.com".into(), password: "a long password".into() }),
        check("login_reply_granted", &granted),
        check("login_reply_invalid", &LoginReply::Err(LoginError::InvalidCredentials)),
        check("login_reply_busy", &LoginReply::Err(LoginError::Busy)),
        check("login_reply_unavailable", &LoginReply::Err(LoginError::Unavailable("the database is away".into()))),
        check("hello", &hello()),
        check("node_status", &node_status()),
        check("job_event", &job_event()),
        check("job_event_progress", &JobEvent { state: JobState::Converting, mp3_fid: None, ..job_event() }),
    ];
    let failures: Vec<String> = failures.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_check_tells_an_addition_from_a_break() {
    let golden = serde_json::json!({ "node": "gw", "peers": ["a"], "error": null });
    let added = serde_json::json!({ "node": "gw", "peers": ["a"], "error": null, "zone": "b" });
    assert_eq!(difference(&golden, &added), (vec![], vec![".zone".to_owned()]));
    let renamed = serde_json::json!({ "name": "gw", "peers": ["a"], "error": null });
    assert_eq!(difference(&golden, &renamed).0, [".node"]);
    let retyped = serde_json::json!({ "node": 7, "peers": ["a"], "error": null });
    assert_eq!(difference(&golden, &retyped).0, [".node"]);
    let filled = serde_json::json!({ "node": "gw", "peers": ["a"], "error": "why" });
    assert!(difference(&golden, &filled).0.is_empty(), "an optional field given a value is no break");
}

#[test]
fn a_newer_node_of_this_version_may_add_fields() {
    let mut json: Value = serde_json::from_slice(&encode(&hello())).unwrap();
    json["from_a_newer_node"] = serde_json::json!(true);
    json.as_object_mut().unwrap().remove("peers");
    let read: Hello = decode(json.to_string().as_bytes()).unwrap();
    assert_eq!(read, Hello { peers: Vec::new(), ..hello() }, "unknown fields ignored, missing ones defaulted");
}
