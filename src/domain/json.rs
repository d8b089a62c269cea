//! Request bodies as JSON objects, read one way for every endpoint: a body with a key
//! repeated in any object, at any depth, is not valid JSON here. Parsers disagree on which
//! of two values wins (serde_json keeps the last, others the first), so a body whose
//! meaning depends on the reader is refused rather than guessed at.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The body as a JSON object; `None` when it is not JSON, not an object, or repeats a key.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique(Value::Object(map))) => Some(map),
        _ => None,
    }
}

/// A JSON value read with no repeated key in any of its objects.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json's own nesting limit still applies: deep bodies fail, never overflow.
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without repeated keys")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // Keys are compared decoded: "a" and "\u0061" are the same key.
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom("a key is repeated"));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Option<Value> {
        parse_object(text.as_bytes()).map(Value::Object)
    }

    #[test]
    fn an_object_reads_as_serde_json_reads_it() {
        let text = r#"{"a": [1, -2, 3.5, 1e300, 18446744073709551615, null, true, "x\u00e9"],
            "b": {"c": {}, "d": []}, "": 0}"#;
        assert_eq!(parse(text), Some(serde_json::from_str(text).unwrap()));
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_refused() {
        for text in [
            r#"{"a": 1, "a": 1}"#,
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"a": {"b": 1, "b": 2}}"#,
            r#"{"a": [{"x": 0}, {"b": 1, "c": 0, "b": 2}]}"#,
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        assert_eq!(
            parse(r#"{"a": {"b": 1}, "b": {"a": 1}}"#),
            Some(json!({"a": {"b": 1}, "b": {"a": 1}}))
        );
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for text in [
            "",
            "{",
            "[]",
            "null",
            "\"a\"",
            "1",
            "{} {}",
            "{}x",
            "\u{feff}{}",
            &deep,
        ] {
            assert_eq!(parse(text), None, "{text:.20}");
        }
        assert_eq!(parse_object(&[0xff, b'{', b'}']), None);
    }
}
