//! `route`: chooses the Kafka topic and/or key from column values.
//!
//! Config:
//! - `topic`: a template such as `orders.{region}` (each `{column}` is replaced by the value);
//! - `key`: a column whose value becomes the message key.
//!
//! An event whose template column is NULL or missing keeps the configured topic.
//!
//! A table-level `truncate` event has no values, so it keeps the configured topic and key. A
//! consumer of a routed topic (`orders.{region}`) does not see it: route truncates yourself, or
//! do not combine a column-based topic with `ON_TABLE_RESET=event`. With `key`, the rows spread
//! over the partitions by that column; the truncate reaches every partition only with
//! `KAFKA_KEY=primary_key` (or a one-partition topic).

use sluice_guest::{export_transform, json, Config, Event, Interest, Transform, Value};

pub struct Route {
    topic: Option<String>,
    key: Option<String>,
}

fn template_columns(t: &str) -> Vec<String> {
    t.split('{')
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(c, _)| c.to_owned()))
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) | Value::Decimal(s) => Some(s.clone()),
        other => Some(json::value(other).to_string().trim_matches('"').to_owned()),
    }
}

impl Transform for Route {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let topic = config.get("topic").map(str::to_owned);
        let key = config.get("key").map(str::to_owned);
        if topic.is_none() && key.is_none() {
            return Err(
                "set `topic` (a template like orders.{region}) and/or `key` (a column)".into(),
            );
        }
        let mut cols: Vec<String> = topic.as_deref().map(template_columns).unwrap_or_default();
        cols.extend(key.clone());
        Ok((Route { topic, key }, Interest::columns(cols)))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        if let Some(t) = &self.topic {
            let mut out = t.clone();
            let mut complete = true;
            for col in template_columns(t) {
                match event.get(&col).and_then(text) {
                    Some(v) => out = out.replace(&format!("{{{col}}}"), &v),
                    None => complete = false,
                }
            }
            if complete {
                event.set_topic(out);
            }
        }
        if let Some(k) = &self.key {
            if let Some(v) = event.get(k).and_then(text) {
                event.set_key(v.into_bytes());
            }
        }
        Ok(())
    }
}

export_transform!(Route);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_guest::testing::{Harness, TestEvent};

    #[test]
    fn topic_and_key_from_columns() {
        let mut h =
            Harness::<Route>::new(&[("topic", "orders.{region}"), ("key", "customer")]).unwrap();
        let ev = TestEvent::insert(
            "shop",
            "orders",
            &[
                ("id", Value::Int(1)),
                ("region", Value::Text("eu".into())),
                ("customer", Value::Int(42)),
            ],
        );
        let out = h.run(&[ev]).unwrap();
        assert_eq!(out[0].topic.as_deref(), Some("orders.eu"));
        assert_eq!(out[0].key.as_deref(), Some(&b"42"[..]));
    }

    #[test]
    fn truncate_keeps_the_configured_topic_and_key() {
        let mut h =
            Harness::<Route>::new(&[("topic", "orders.{region}"), ("key", "customer")]).unwrap();
        let out = h.run(&[TestEvent::truncate("shop", "orders")]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, sluice_guest::Kind::Truncate);
        assert_eq!((out[0].topic.as_ref(), out[0].key.as_ref()), (None, None));
    }

    #[test]
    fn null_keeps_the_default_topic() {
        let mut h = Harness::<Route>::new(&[("topic", "orders.{region}")]).unwrap();
        let out = h
            .run(&[TestEvent::insert(
                "shop",
                "orders",
                &[("region", Value::Null)],
            )])
            .unwrap();
        assert_eq!(out[0].topic, None);
    }
}
