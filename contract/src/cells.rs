//! The mapping between [`Value`](crate::Value)s and the WIT `cell`s that carry a transform's
//! answer out of the sandbox (`wit/transform.wit`, `variant cell`; the request's cells are
//! packed bytes, [`crate::packed`]).
//!
//! Design note: the host (wasmtime's `bindgen!`) and the guest (`wit-bindgen`) each generate
//! their own Rust types for the same WIT, so no function can take both. This macro is the one
//! definition of the mapping, expanded on each side against that side's generated types: text,
//! decimals, bytes and JSON are spans of one shared byte buffer per batch; the rest are inline.

/// Defines `to_cell(&Value, &mut Vec<u8>) -> wit::Cell` and
/// `from_cell(&wit::Cell, &[u8]) -> Result<Value, String>` for the generated bindings in scope
/// as the module `wit` (with `wit::Cell`, `wit::Span`, `wit::Date`, `wit::Datetime`,
/// `wit::Timestamp` and `wit::Time`).
#[macro_export]
macro_rules! cell_codec {
    () => {
        /// A value as a cell; text and bytes are appended to `data`.
        #[allow(dead_code)]
        pub fn to_cell(v: &$crate::Value, data: &mut Vec<u8>) -> wit::Cell {
            use $crate::Value;
            fn span(data: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> wit::Span {
                let start = data.len();
                write(data);
                wit::Span {
                    start: start as u32,
                    len: (data.len() - start) as u32,
                }
            }
            match v {
                Value::Null => wit::Cell::Null,
                Value::Int(x) => wit::Cell::Int(*x),
                Value::UInt(x) => wit::Cell::Uint(*x),
                Value::Float(x) => wit::Cell::Float(*x),
                Value::Double(x) => wit::Cell::Double(*x),
                Value::Decimal(s) => {
                    wit::Cell::Decimal(span(data, |d| d.extend_from_slice(s.as_bytes())))
                }
                Value::Text(s) => {
                    wit::Cell::Text(span(data, |d| d.extend_from_slice(s.as_bytes())))
                }
                Value::Bytes(b) => wit::Cell::Bytes(span(data, |d| d.extend_from_slice(b))),
                &Value::Date { year, month, day } => {
                    wit::Cell::Date(wit::Date { year, month, day })
                }
                &Value::DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                    fsp,
                } => wit::Cell::Datetime(wit::Datetime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                    fsp,
                }),
                &Value::Timestamp { secs, micros, fsp } => {
                    wit::Cell::Timestamp(wit::Timestamp { secs, micros, fsp })
                }
                &Value::Time {
                    negative,
                    hours,
                    minutes,
                    seconds,
                    micros,
                    fsp,
                } => wit::Cell::Time(wit::Time {
                    negative,
                    hours,
                    minutes,
                    seconds,
                    micros,
                    fsp,
                }),
                // Compact JSON text; writing JSON into a Vec cannot fail.
                Value::Json(j) => wit::Cell::Json(span(data, |d| {
                    $crate::__serde_json::to_writer(d, j).expect("JSON into a Vec")
                })),
            }
        }

        /// A cell as a value. A span beyond `data`, text that is not UTF-8 and JSON that is not
        /// JSON are errors of the side that wrote the cell.
        #[allow(dead_code)]
        pub fn from_cell(c: &wit::Cell, data: &[u8]) -> Result<$crate::Value, String> {
            use $crate::Value;
            let bytes = |s: &wit::Span| -> Result<&[u8], String> {
                data.get(s.start as usize..s.start as usize + s.len as usize)
                    .ok_or_else(|| {
                        format!(
                            "a span {}+{} beyond its {} bytes",
                            s.start,
                            s.len,
                            data.len()
                        )
                    })
            };
            let text = |s: &wit::Span| -> Result<String, String> {
                String::from_utf8(bytes(s)?.to_vec())
                    .map_err(|_| "text that is not UTF-8".to_owned())
            };
            Ok(match c {
                wit::Cell::Null => Value::Null,
                wit::Cell::Int(x) => Value::Int(*x),
                wit::Cell::Uint(x) => Value::UInt(*x),
                wit::Cell::Float(x) => Value::Float(*x),
                wit::Cell::Double(x) => Value::Double(*x),
                wit::Cell::Decimal(s) => Value::Decimal(text(s)?),
                wit::Cell::Text(s) => Value::Text(text(s)?),
                wit::Cell::Bytes(s) => Value::Bytes(bytes(s)?.to_vec()),
                wit::Cell::Date(d) => Value::Date {
                    year: d.year,
                    month: d.month,
                    day: d.day,
                },
                wit::Cell::Datetime(d) => Value::DateTime {
                    year: d.year,
                    month: d.month,
                    day: d.day,
                    hour: d.hour,
                    minute: d.minute,
                    second: d.second,
                    micros: d.micros,
                    fsp: d.fsp,
                },
                wit::Cell::Timestamp(t) => Value::Timestamp {
                    secs: t.secs,
                    micros: t.micros,
                    fsp: t.fsp,
                },
                wit::Cell::Time(t) => Value::Time {
                    negative: t.negative,
                    hours: t.hours,
                    minutes: t.minutes,
                    seconds: t.seconds,
                    micros: t.micros,
                    fsp: t.fsp,
                },
                wit::Cell::Json(s) => Value::Json(
                    $crate::__serde_json::from_slice(bytes(s)?)
                        .map_err(|e| format!("a JSON value that is not JSON: {e}"))?,
                ),
            })
        }
    };
}

#[cfg(test)]
mod tests {
    /// A stand-in for the generated bindings, with the same shapes.
    #[allow(dead_code)]
    mod wit {
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Span {
            pub start: u32,
            pub len: u32,
        }
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Date {
            pub year: u16,
            pub month: u8,
            pub day: u8,
        }
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Datetime {
            pub year: u16,
            pub month: u8,
            pub day: u8,
            pub hour: u8,
            pub minute: u8,
            pub second: u8,
            pub micros: u32,
            pub fsp: u8,
        }
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Timestamp {
            pub secs: i64,
            pub micros: u32,
            pub fsp: u8,
        }
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Time {
            pub negative: bool,
            pub hours: u32,
            pub minutes: u8,
            pub seconds: u8,
            pub micros: u32,
            pub fsp: u8,
        }
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Cell {
            Null,
            Int(i64),
            Uint(u64),
            Float(f32),
            Double(f64),
            Decimal(Span),
            Text(Span),
            Bytes(Span),
            Date(Date),
            Datetime(Datetime),
            Timestamp(Timestamp),
            Time(Time),
            Json(Span),
        }
    }

    crate::cell_codec!();

    #[test]
    fn every_value_survives_the_round_trip() {
        use crate::Value;
        let values = vec![
            Value::Null,
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Double(-0.25),
            Value::Decimal("19.990".into()),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            Value::DateTime {
                year: 2024,
                month: 1,
                day: 31,
                hour: 23,
                minute: 59,
                second: 58,
                micros: 123_456,
                fsp: 6,
            },
            Value::Timestamp {
                secs: -1,
                micros: 5,
                fsp: 1,
            },
            Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
                fsp: 0,
            },
            Value::Json(serde_json::json!({"b": 1, "a": [true, null]})),
        ];
        let mut data = Vec::new();
        let cells: Vec<wit::Cell> = values.iter().map(|v| to_cell(v, &mut data)).collect();
        let back: Vec<Value> = cells.iter().map(|c| from_cell(c, &data).unwrap()).collect();
        assert_eq!(back, values);
        assert!(
            from_cell(&wit::Cell::Text(wit::Span { start: 0, len: 999 }), &data)
                .unwrap_err()
                .contains("beyond")
        );
        let bad = [0xff];
        assert!(
            from_cell(&wit::Cell::Text(wit::Span { start: 0, len: 1 }), &bad)
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
