//! The contract's JSON form of values and events (`shared/CONTRACT.md`), for transforms that
//! build their own payloads (such as a Debezium-style envelope) and for the test harness.
//! It produces the same JSON as the host's encoder.

use serde_json::{json, Map, Value as Json};

use crate::Value;

/// A value as the contract publishes it.
pub fn value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(x) => json!(x),
        Value::UInt(x) => json!(x),
        // The shortest text of the f32 (as the host writes it), not the widened f64.
        Value::Float(x) => x
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Double(x) => serde_json::Number::from_f64(*x)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Decimal(s) | Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64(b)),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone())),
        Value::Date { year, month, day } => Json::String(format!("{year:04}-{month:02}-{day:02}")),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        } => Json::String(format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{}",
            fraction(*micros, *fsp)
        )),
        Value::Timestamp { secs, micros, fsp } => {
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let r = secs.rem_euclid(86_400);
            Json::String(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{}Z",
                r / 3600,
                r / 60 % 60,
                r % 60,
                fraction(*micros, *fsp)
            ))
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => Json::String(format!(
            "{}{hours:02}:{minutes:02}:{seconds:02}{}",
            if *negative { "-" } else { "" },
            fraction(*micros, *fsp)
        )),
    }
}

/// Reads a JSON value from a contract event back into a [`Value`]. Types the JSON does not
/// carry (DECIMAL, dates, …) come back as text, which publishes identically.
pub fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Int(i64::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

/// A contract event object from its parts.
pub fn event(
    kind: &str,
    schema: &str,
    table: &str,
    columns: &[String],
    after: &[Value],
    before: &[Value],
) -> Json {
    let names: Vec<Json> = columns.iter().map(|c| Json::String(c.clone())).collect();
    let mut m = Map::new();
    m.insert("kind".into(), json!(kind));
    m.insert("schema".into(), json!(schema));
    m.insert("table".into(), json!(table));
    if kind == "delete" {
        m.insert("columnnames".into(), json!([]));
        m.insert("columnvalues".into(), json!([]));
    } else {
        m.insert("columnnames".into(), Json::Array(names.clone()));
        m.insert(
            "columnvalues".into(),
            Json::Array(after.iter().map(value).collect()),
        );
    }
    let oldkeys = if kind == "update" || kind == "delete" {
        json!({"keynames": names, "keyvalues": before.iter().map(value).collect::<Vec<_>>()})
    } else {
        json!({})
    };
    m.insert("oldkeys".into(), oldkeys);
    Json::Object(m)
}

fn fraction(micros: u32, fsp: u8) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", &format!("{micros:06}")[..fsp.min(6) as usize])
    }
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Standard base64 with padding, as the contract publishes binary columns.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_match_the_contract() {
        assert_eq!(base64(&[0xDE, 0xAD, 0xBE, 0xEF, 0x00]), "3q2+7wA=");
        assert_eq!(value(&Value::Float(2.71)), json!(2.71));
        assert_eq!(
            value(&Value::Timestamp {
                secs: 1_706_702_400,
                micros: 250_000,
                fsp: 3
            }),
            json!("2024-01-31T12:00:00.250Z")
        );
        assert_eq!(
            value(&Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
                fsp: 0
            }),
            json!("-838:59:59")
        );
    }
}
