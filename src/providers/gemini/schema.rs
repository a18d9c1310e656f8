//! JSON Schema <-> Gemini `Schema` (an OpenAPI 3.0 subset).
//!
//! Gemini rejects keywords outside its subset (`additionalProperties`, `$schema`, `$ref`,
//! `const`...) with a 400, so tool parameters and response schemas are cleaned on the way out:
//! `$ref`s are inlined from `$defs`/`definitions`, `["string", "null"]` types become
//! `nullable`, `oneOf` becomes `anyOf`, `const` becomes a one-value `enum`, unsupported `format`s
//! and every unknown keyword are dropped. On the way in (the `/genai` route), Gemini's upper-case
//! type names (`STRING`, `OBJECT`) are lower-cased for JSON Schema consumers.

use serde_json::{Map, Value, json};

/// Keywords of Gemini's `Schema` object.
pub const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// How deep `$ref`s are followed before a recursive schema is cut off as a plain object.
const MAX_REF_DEPTH: usize = 8;

/// A JSON Schema as a Gemini `Schema`.
pub fn clean(schema: &Value) -> Value {
    let defs = definitions(schema);
    clean_at(schema, &defs, 0)
}

/// Tool parameters for a function declaration. `None` for an object without properties, which
/// Gemini wants expressed by leaving `parameters` out.
pub fn clean_parameters(schema: &Value) -> Option<Value> {
    let cleaned = clean(schema);
    let no_properties = cleaned
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let is_object = cleaned.get("type").and_then(Value::as_str) == Some("object");
    if is_object && no_properties {
        return None;
    }
    Some(cleaned)
}

fn definitions(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(m) = schema.get(key).and_then(Value::as_object) {
            for (k, v) in m {
                defs.insert(format!("#/{key}/{k}"), v.clone());
            }
        }
    }
    defs
}

fn clean_at(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        // `true` / `{}`-like schemas: anything goes, which Gemini can only say as "a string".
        return json!({"type": "string"});
    };
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        return match defs.get(target) {
            Some(def) if depth < MAX_REF_DEPTH => {
                let mut resolved = clean_at(def, defs, depth + 1);
                if let (Some(desc), Some(map)) = (obj.get("description"), resolved.as_object_mut())
                {
                    map.insert("description".into(), desc.clone());
                }
                resolved
            }
            _ => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    let mut nullable = false;

    // `allOf` of object schemas: merged into this one.
    let mut merged = obj.clone();
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for part in all {
            let part = resolve(part, defs);
            if let Some(p) = part.as_object() {
                for (k, v) in p {
                    match (k.as_str(), merged.get_mut(k)) {
                        ("properties", Some(Value::Object(existing))) => {
                            if let Some(more) = v.as_object() {
                                existing.extend(more.clone());
                            }
                        }
                        ("required", Some(Value::Array(existing))) => {
                            if let Some(more) = v.as_array() {
                                existing.extend(more.iter().cloned());
                            }
                        }
                        (_, None) => {
                            merged.insert(k.clone(), v.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    match merged.get("type") {
        Some(Value::Array(types)) => {
            let concrete: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            nullable = concrete.len() < types.len();
            match concrete.as_slice() {
                [] => {}
                [one] => {
                    out.insert("type".into(), Value::String(one.to_string()));
                }
                many => {
                    let alts = many.iter().map(|t| json!({"type": t})).collect();
                    out.insert("anyOf".into(), Value::Array(alts));
                }
            }
        }
        Some(Value::String(t)) if t == "null" => nullable = true,
        Some(Value::String(t)) => {
            out.insert("type".into(), Value::String(t.clone()));
        }
        _ => {}
    }

    let alternatives = merged
        .get("anyOf")
        .or_else(|| merged.get("oneOf"))
        .and_then(Value::as_array);
    if let Some(alts) = alternatives {
        let mut kept = Vec::new();
        for alt in alts {
            let alt = resolve(alt, defs);
            if alt.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
            } else {
                kept.push(clean_at(&alt, defs, depth + 1));
            }
        }
        match kept.len() {
            0 => {}
            // `anyOf: [X, null]` is X, nullable.
            1 if !out.contains_key("type") => {
                if let Value::Object(single) = kept.remove(0) {
                    for (k, v) in single {
                        out.entry(k).or_insert(v);
                    }
                }
            }
            _ => {
                out.insert("anyOf".into(), Value::Array(kept));
            }
        }
    }

    if let Some(c) = merged.get("const") {
        out.insert("enum".into(), json!([c]));
    }

    for (key, value) in &merged {
        let key = key.as_str();
        if !SCHEMA_KEYWORDS.contains(&key) || out.contains_key(key) {
            continue;
        }
        match key {
            "type" | "anyOf" => {}
            "properties" => {
                if let Some(props) = value.as_object() {
                    let cleaned: Map<String, Value> = props
                        .iter()
                        .map(|(k, v)| (k.clone(), clean_at(v, defs, depth + 1)))
                        .collect();
                    out.insert("properties".into(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert("items".into(), clean_at(value, defs, depth + 1));
            }
            "format" => {
                let ty = out.get("type").and_then(Value::as_str).unwrap_or("");
                let ok = match ty {
                    "string" => matches!(value.as_str(), Some("enum" | "date-time")),
                    "integer" | "number" => {
                        matches!(value.as_str(), Some("int32" | "int64" | "float" | "double"))
                    }
                    _ => false,
                };
                if ok {
                    out.insert("format".into(), value.clone());
                }
            }
            // Gemini enums are strings only.
            "enum" => {
                if value
                    .as_array()
                    .is_some_and(|v| v.iter().all(Value::is_string))
                {
                    out.insert("enum".into(), value.clone());
                }
            }
            _ => {
                out.insert(key.to_string(), value.clone());
            }
        }
    }

    // `required` may only name declared properties.
    if let Some(Value::Array(required)) = out.get("required").cloned() {
        let props = out.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = required
            .into_iter()
            .filter(|r| {
                r.as_str()
                    .is_some_and(|name| props.is_some_and(|p| p.contains_key(name)))
            })
            .collect();
        if kept.is_empty() {
            out.remove("required");
        } else {
            out.insert("required".into(), Value::Array(kept));
        }
    }
    if out.get("properties").and_then(Value::as_object).is_some() && !out.contains_key("type") {
        out.insert("type".into(), Value::String("object".into()));
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
    Value::Object(out)
}

fn resolve(schema: &Value, defs: &Map<String, Value>) -> Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => defs
            .get(target)
            .cloned()
            .unwrap_or(json!({"type": "object"})),
        None => schema.clone(),
    }
}

/// A Gemini schema as JSON Schema: type names lower-cased (`STRING` -> `string`), everything else
/// as written.
pub fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = match k.as_str() {
                    "type" => match v {
                        Value::String(s) => Value::String(s.to_ascii_lowercase()),
                        other => other.clone(),
                    },
                    "properties" => match v {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), to_json_schema(s)))
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    "items" => to_json_schema(v),
                    "anyOf" => match v {
                        Value::Array(alts) => {
                            Value::Array(alts.iter().map(to_json_schema).collect())
                        }
                        other => other.clone(),
                    },
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_what_gemini_rejects() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "strict": true,
            "properties": {
                "city": {"type": "string", "format": "uri", "description": "City"},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "unit": {"$ref": "#/$defs/Unit"},
                "tags": {"type": "array", "items": {"type": "string", "const": "x"}},
                "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "maybe": {"anyOf": [{"type": "number"}, {"type": "null"}]}
            },
            "required": ["city", "ghost"],
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "additionalProperties": false}}
        });
        assert_eq!(
            clean(&schema),
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City"},
                    "when": {"type": "string", "format": "date-time", "nullable": true},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}},
                    "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "maybe": {"type": "number", "nullable": true}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn recursive_refs_are_cut_off_and_empty_objects_omitted() {
        let schema = json!({"$ref": "#/definitions/Node", "definitions": {"Node": {
            "type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}});
        let cleaned = clean(&schema);
        let mut depth = 0;
        let mut node = &cleaned;
        while let Some(next) = node.pointer("/properties/next") {
            node = next;
            depth += 1;
        }
        assert!(depth <= MAX_REF_DEPTH + 1, "{depth}");
        assert_eq!(
            clean_parameters(&json!({"type": "object", "properties": {}})),
            None
        );
    }

    #[test]
    fn upper_case_types_become_json_schema() {
        let gemini = json!({"type": "OBJECT", "properties": {"a": {"type": "ARRAY", "items": {"type": "STRING"}}}});
        assert_eq!(
            to_json_schema(&gemini),
            json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}})
        );
    }
}
