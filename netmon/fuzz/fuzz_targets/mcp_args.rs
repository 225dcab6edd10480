//! The arguments of every tool, as any MCP client may send them: arbitrary JSON values (objects
//! with the tools' keys more often than not). Decoding ends in a request or an error.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use netmon::mcp::args::{InterfacesArgs, TrafficArgs};
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "iface", "sample_seconds", "top", "sort", "group_by", "filter", "networks", "host", "port",
    "username", "password", "resolve_names", "resolve_services", "x",
];

fn value(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
    let pick = if depth == 0 { u.int_in_range(0..=4)? } else { u.int_in_range(0..=6)? };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(u.arbitrary()?),
        5 => Value::Array(
            (0..u.int_in_range(0..=4)?)
                .map(|_| value(u, depth - 1))
                .collect::<arbitrary::Result<_>>()?,
        ),
        _ => Value::Object(object(u, depth - 1)?),
    })
}

fn object(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Map<String, Value>> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let key = if u.arbitrary()? {
            (*u.choose(KEYS)?).to_string()
        } else {
            String::arbitrary(u)?
        };
        m.insert(key, value(u, depth)?);
    }
    Ok(m)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(args) = object(&mut u, 4) else {
        return;
    };
    let raw = if args.is_empty() { None } else { Some(args) };
    let _ = TrafficArgs::parse("get_interface_traffic", raw.clone());
    let _ = InterfacesArgs::parse("list_network_interfaces", raw);
});
