//! MySQL's partial JSON updates: the diffs of a `PARTIAL_UPDATE_ROWS_EVENT`, applied to the
//! before image's document to give the full after image.
//!
//! Design note: with `binlog_row_value_options=PARTIAL_JSON`, MySQL 8 logs an update that
//! changes a JSON column through `JSON_SET`, `JSON_REPLACE` or `JSON_REMOVE` as a list of diffs
//! (an operation, a path and for REPLACE/INSERT a binary JSON value) instead of the new
//! document. A MySQL replica applies them to its own copy; Sluice applies them to the before
//! image, which `binlog_row_image=FULL` always carries, so consumers get the whole document as
//! with any other update. The rules follow MySQL's `Json_diff_vector` application: REPLACE
//! needs the path to exist, INSERT adds an object member or inserts into an array (appending
//! past its end), REMOVE drops a member or an element. A path or an operation that does not
//! apply is an error, never a guess: the pipeline stops at that event. Pure: bytes and
//! documents in, a document out.

use mysql_common::binlog::jsonb;
use mysql_common::binlog::jsondiff::{JsonDiff, JsonDiffOperation};
use serde_json::Value as Json;

/// One step of a JSON path: an object member, an array element, or an element counted from
/// the end (`[last]` is `FromEnd(0)`, `[last-2]` is `FromEnd(2)`: MySQL logs the path as the
/// statement wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Index(usize),
    FromEnd(usize),
}

impl Step {
    /// The array position this step names in an array of `len` elements (MySQL's
    /// `first_array_index`): `None` for a member, or an element counted from the end of an
    /// array too short for it (position 0 for an INSERT, `insert` true).
    fn position(&self, len: usize, insert: bool) -> Option<usize> {
        match self {
            Step::Member(_) => None,
            Step::Index(i) => Some(*i),
            Step::FromEnd(n) if *n < len => Some(len - 1 - n),
            Step::FromEnd(_) => insert.then_some(0),
        }
    }
}

/// Applies the diffs of one column (`raw`: the column's bytes in the after image, one diff
/// after another) to `before`, the before image's document.
pub(crate) fn apply_diffs(before: &Json, raw: &[u8]) -> Result<Json, String> {
    let mut buf = mysql_common::io::ParseBuf(raw);
    let mut diffs = Vec::new();
    while !buf.is_empty() {
        let diff: JsonDiff<'_> = buf.parse(()).map_err(|e| {
            format!(
                "partial JSON update: diff {} cannot be read: {e}",
                diffs.len()
            )
        })?;
        diffs.push(diff);
    }
    apply_list(before, &diffs)
}

/// Applies parsed diffs, in order, to a copy of `before`.
fn apply_list(before: &Json, diffs: &[JsonDiff<'_>]) -> Result<Json, String> {
    let mut doc = before.clone();
    for diff in diffs {
        let path = diff.path_str().into_owned();
        let value = match diff.value() {
            Some(v) => Some(json_of(v).map_err(|e| format!("partial JSON update at {path}: {e}"))?),
            None => None,
        };
        apply(&mut doc, diff.operation(), &path, value)
            .map_err(|e| format!("partial JSON update: {e}"))?;
    }
    Ok(doc)
}

fn json_of(v: &jsonb::Value<'_>) -> Result<Json, String> {
    let dom = v
        .clone()
        .parse()
        .map_err(|e| format!("bad binary JSON: {e}"))?;
    Ok(Json::from(dom))
}

/// Applies one diff to `doc`.
fn apply(
    doc: &mut Json,
    op: JsonDiffOperation,
    path: &str,
    value: Option<Json>,
) -> Result<(), String> {
    let steps = parse_path(path)?;
    let missing = || format!("{op:?} at {path}: the path is not in the before image's document");
    // MySQL never logs a diff of the whole document (it logs the document instead).
    let (last, parents) = steps
        .split_last()
        .ok_or_else(|| format!("{op:?} of the whole document ({path})"))?;
    let mut parent = &mut *doc;
    for s in parents {
        parent = match (s, parent) {
            (Step::Member(k), Json::Object(m)) => m.get_mut(k).ok_or_else(missing)?,
            (s, Json::Array(a)) => {
                let i = s.position(a.len(), false).ok_or_else(missing)?;
                a.get_mut(i).ok_or_else(missing)?
            }
            _ => return Err(missing()),
        };
    }
    let insert = op == JsonDiffOperation::INSERT;
    match (op, last, parent, value) {
        (JsonDiffOperation::REPLACE, Step::Member(k), Json::Object(m), Some(v)) => {
            *m.get_mut(k).ok_or_else(missing)? = v;
        }
        (JsonDiffOperation::INSERT, Step::Member(k), Json::Object(m), Some(v)) => {
            if m.contains_key(k) {
                return Err(format!("INSERT at {path}: the member exists already"));
            }
            m.insert(k.clone(), v);
            // Members in the order a whole document decodes to (sorted), so an update reads
            // the same whether MySQL logged a diff or the document.
            m.sort_keys();
        }
        (JsonDiffOperation::REMOVE, Step::Member(k), Json::Object(m), None) => {
            m.shift_remove(k).ok_or_else(missing)?;
        }
        (JsonDiffOperation::REPLACE, s, Json::Array(a), Some(v)) => {
            let i = s.position(a.len(), insert).ok_or_else(missing)?;
            *a.get_mut(i).ok_or_else(missing)? = v;
        }
        (JsonDiffOperation::INSERT, s, Json::Array(a), Some(v)) => {
            let i = s.position(a.len(), insert).ok_or_else(missing)?;
            a.insert(i.min(a.len()), v);
        }
        (JsonDiffOperation::REMOVE, s, Json::Array(a), None) => {
            let i = s.position(a.len(), insert).ok_or_else(missing)?;
            if i >= a.len() {
                return Err(missing());
            }
            a.remove(i);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

/// Parses the path a diff carries: `$`, then `.member`, `."quoted member"`, `[index]`.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("the path `{path}` cannot be read: {why}");
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| bad("it does not start with `$`"))?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'"') {
                    i += 1;
                    let mut key = String::new();
                    loop {
                        match chars.get(i) {
                            None => return Err(bad("an unterminated quoted member")),
                            Some('"') => break,
                            Some('\\') => {
                                let c = chars.get(i + 1).ok_or_else(|| bad("a lone `\\`"))?;
                                i += 2;
                                key.push(match c {
                                    'n' => '\n',
                                    't' => '\t',
                                    'r' => '\r',
                                    'b' => '\u{8}',
                                    'f' => '\u{c}',
                                    '"' | '\\' | '/' => *c,
                                    'u' => {
                                        let hex: String = chars
                                            .get(i..i + 4)
                                            .unwrap_or_default()
                                            .iter()
                                            .collect();
                                        i += 4;
                                        u32::from_str_radix(&hex, 16)
                                            .ok()
                                            .and_then(char::from_u32)
                                            .ok_or_else(|| {
                                                bad("a `\\u` escape that is not a character")
                                            })?
                                    }
                                    _ => return Err(bad("an unknown escape")),
                                });
                            }
                            Some(c) => {
                                key.push(*c);
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                    steps.push(Step::Member(key));
                } else {
                    let start = i;
                    while i < chars.len() && !matches!(chars[i], '.' | '[') {
                        i += 1;
                    }
                    let key: String = chars[start..i].iter().collect();
                    if key.is_empty() || key == "*" {
                        return Err(bad("an empty or wildcard member"));
                    }
                    steps.push(Step::Member(key));
                }
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| bad("an unterminated `[`"))?;
                let text: String = chars[i + 1..i + end].iter().collect();
                let text = text.trim();
                let not_index = || bad("an array index that is neither a number nor `last[-N]`");
                let step = match text.strip_prefix("last") {
                    Some("") => Step::FromEnd(0),
                    Some(rest) => Step::FromEnd(
                        rest.trim()
                            .strip_prefix('-')
                            .and_then(|n| n.trim().parse().ok())
                            .ok_or_else(not_index)?,
                    ),
                    None => Step::Index(text.parse().map_err(|_| not_index())?),
                };
                steps.push(step);
                i += end + 1;
            }
            _ => return Err(bad("an unexpected character")),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Json, op: JsonDiffOperation, path: &str, v: Option<Json>) -> Result<Json, String> {
        let mut d = doc;
        apply(&mut d, op, path, v).map(|_| d)
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path("$.a[2].\"b c\".d").unwrap(),
            vec![
                Step::Member("a".into()),
                Step::Index(2),
                Step::Member("b c".into()),
                Step::Member("d".into())
            ]
        );
        assert_eq!(
            parse_path("$.\"q\\\"x\"").unwrap(),
            vec![Step::Member("q\"x".into())]
        );
        assert_eq!(
            parse_path("$.\"a\\u0001b\"[last][last - 2]").unwrap(),
            vec![
                Step::Member("a\u{1}b".into()),
                Step::FromEnd(0),
                Step::FromEnd(2)
            ]
        );
        for bad in [
            "a.b",
            "$.*",
            "$[1 to 3]",
            "$[1",
            "$.\"open",
            "$.\"\\q\"",
            "$[last+1]",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operations_follow_mysql() {
        use JsonDiffOperation::*;
        let doc = json!({"a": 1, "l": [1, 2, 3], "o": {"x": true}});
        assert_eq!(
            run(doc.clone(), REPLACE, "$.a", Some(json!(2))).unwrap()["a"],
            2
        );
        assert_eq!(
            run(doc.clone(), REPLACE, "$.l[1]", Some(json!("b"))).unwrap()["l"],
            json!([1, "b", 3])
        );
        assert_eq!(
            run(doc.clone(), INSERT, "$.o.y", Some(json!(null))).unwrap()["o"],
            json!({"x": true, "y": null})
        );
        assert_eq!(
            run(doc.clone(), INSERT, "$.l[0]", Some(json!(0))).unwrap()["l"],
            json!([0, 1, 2, 3])
        );
        // Past the end: appended.
        assert_eq!(
            run(doc.clone(), INSERT, "$.l[9]", Some(json!(4))).unwrap()["l"],
            json!([1, 2, 3, 4])
        );
        assert_eq!(
            run(doc.clone(), REMOVE, "$.l[0]", None).unwrap()["l"],
            json!([2, 3])
        );
        assert_eq!(
            run(doc.clone(), REMOVE, "$.o.x", None).unwrap()["o"],
            json!({})
        );
        // Counted from the end, as the statement wrote it.
        assert_eq!(
            run(doc.clone(), REMOVE, "$.l[last]", None).unwrap()["l"],
            json!([1, 2])
        );
        assert_eq!(
            run(doc.clone(), REPLACE, "$.l[last-2]", Some(json!(0))).unwrap()["l"],
            json!([0, 2, 3])
        );
        assert_eq!(
            run(json!([]), INSERT, "$[last]", Some(json!(1))).unwrap(),
            json!([1])
        );
        // Members keep the order a whole document decodes to.
        let out = run(json!({"a": 1, "c": 3}), INSERT, "$.b", Some(json!(2))).unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let out = run(json!({"a": 1, "b": 2, "c": 3}), REMOVE, "$.a", None).unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "c"]);
        // What does not apply is an error, never a guess.
        for (op, path, v) in [
            (REPLACE, "$.missing", Some(json!(1))),
            (REPLACE, "$.l[7]", Some(json!(1))),
            (INSERT, "$.a", Some(json!(1))),
            (INSERT, "$.nope.x", Some(json!(1))),
            (REMOVE, "$.l[3]", None),
            (REMOVE, "$.a.b", None),
            (REMOVE, "$", None),
            (REPLACE, "$", Some(json!(1))),
            (REPLACE, "$.l[last-3]", Some(json!(1))),
        ] {
            assert!(run(doc.clone(), op, path, v).is_err(), "{op:?} {path}");
        }
    }

    /// MySQL's own diffs, from a real binlog (`json.binlog.000001`, MySQL 8, MINIMAL row image):
    /// a `PARTIAL_UPDATE_ROWS_EVENT` of `UPDATE t SET doc = JSON_SET(doc, '$.age', …)` on a table
    /// whose generated columns `name` and `age` are taken from `doc`. Applied to the documents
    /// the file's earlier full UPDATE left, each gives the document the generated columns of
    /// the same after image agree with.
    #[test]
    fn mysqls_diffs_from_a_real_binlog_give_the_full_document() {
        use mysql_common::binlog::consts::BinlogVersion;
        use mysql_common::binlog::events::{EventData, RowsEventData, TableMapEvent};
        use mysql_common::binlog::value::BinlogValue;
        use mysql_common::binlog::BinlogFile;
        use mysql_common::Value as My;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mysql-binlogs/json.binlog.000001");
        let bytes = std::fs::read(path).unwrap();
        let file = BinlogFile::new(BinlogVersion::Version4, std::io::Cursor::new(bytes)).unwrap();
        let mut maps: std::collections::HashMap<u64, TableMapEvent<'static>> = Default::default();
        let mut docs: std::collections::HashMap<i64, Json> = Default::default();
        let mut checked = 0;
        let int = |v: Option<&BinlogValue<'_>>| match v {
            Some(BinlogValue::Value(My::Int(i))) => *i,
            other => panic!("not an int: {other:?}"),
        };
        for ev in file {
            let ev = ev.unwrap();
            let Ok(Some(data)) = ev.read_data() else {
                continue;
            };
            match data {
                EventData::TableMapEvent(t) => {
                    maps.insert(t.table_id(), t.into_owned());
                }
                EventData::RowsEvent(r) => {
                    let tm = &maps[&r.table_id()];
                    if tm.table_name() != "t" {
                        continue;
                    }
                    let partial = matches!(r, RowsEventData::PartialUpdateRowsEvent(_));
                    for row in r.rows(tm) {
                        let (before, after) = row.unwrap();
                        let Some(after) = after else { continue };
                        if !partial {
                            if let (Some(BinlogValue::Jsonb(j)), Some(_)) =
                                (after.as_ref(1), after.as_ref(0))
                            {
                                docs.insert(int(after.as_ref(0)), json_of(j).unwrap());
                            }
                            continue;
                        }
                        // MINIMAL images: the before image holds `id`, the after image
                        // `doc`, `name` and `age` (a row's values are its present columns).
                        let id = int(before.as_ref().and_then(|b| b.as_ref(0)));
                        let Some(BinlogValue::JsonDiff(diffs)) = after.as_ref(0) else {
                            panic!("row {id}: no diffs");
                        };
                        let was = &docs[&id];
                        let doc = apply_list(was, diffs).unwrap();
                        assert_eq!(doc["age"], json!(int(after.as_ref(2))), "row {id}");
                        let name = match after.as_ref(1) {
                            Some(BinlogValue::Value(My::Bytes(b))) => {
                                String::from_utf8(b.clone()).unwrap()
                            }
                            other => panic!("{other:?}"),
                        };
                        assert_eq!(doc["name"], json!(name), "row {id}");
                        // Only `age` changed.
                        let mut rest = doc.clone();
                        rest["age"] = was["age"].clone();
                        assert_eq!(&rest, was, "row {id}");
                        assert_ne!(doc["age"], was["age"], "row {id}");
                        checked += 1;
                    }
                }
                _ => {}
            }
        }
        assert!(
            checked >= 3,
            "the file's partial updates were applied: {checked}"
        );
    }

    #[test]
    fn diffs_in_their_binary_form() {
        // REPLACE `$.a` with the int16 26, then REMOVE `$.b`, as MySQL writes them: the
        // operation, the path (length-encoded), and for a value its length-encoded binary JSON.
        let mut raw = vec![0u8, 3];
        raw.extend_from_slice(b"$.a");
        raw.extend_from_slice(&[3, 0x05, 26, 0]);
        raw.extend_from_slice(&[2, 3]);
        raw.extend_from_slice(b"$.b");
        let doc = apply_diffs(&json!({"a": 25, "b": "x", "c": [1]}), &raw).unwrap();
        assert_eq!(doc, json!({"a": 26, "c": [1]}));
        // A diff cut short, or an unknown operation, is an error.
        assert!(apply_diffs(&json!({"a": 1}), &raw[..5]).is_err());
        assert!(apply_diffs(&json!({"a": 1}), &[9, 1, b'$']).is_err());
    }
}
