//! Transforms in Python and JavaScript: the `filter` and `mask` examples give byte-identical
//! output in Rust, Python and JavaScript through `sluice transform test`; an exception reports
//! the language's own message and the failing event; a Python transform runs in the real
//! pipeline to Kafka, keeps its state across batches, and hot-reloads.
//!
//! The components are built by `scripts/build-transforms.sh` (target/wasm/py, target/wasm/js)
//! with the pinned componentize-py and componentize-js that `scripts/guest-tools.sh` installs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_tests::*;

/// 40 events of a spread of kinds, tables and JSON types: text (with non-ASCII), integers
/// (negative, past i64), doubles, NULLs, JSON objects and arrays, booleans, and table-level
/// truncates.
fn mixed_events() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 1..=40i64 {
        let status = ["paid", "new", "shipped", "Paid ✓", "10", "9.5"][(i % 6) as usize];
        let email = match i % 5 {
            0 => serde_json::Value::Null,
            1 => serde_json::json!(format!("user{i}@example.com")),
            2 => serde_json::json!(format!("zoë{i}@exämple.de")),
            3 => serde_json::json!(i * 1000),
            _ => serde_json::json!(format!("no-at-sign-{i}")),
        };
        let total = match i % 4 {
            0 => serde_json::json!(i as f64 * 2.5),
            1 => serde_json::json!(i * 3),
            2 => serde_json::json!(format!("{}.{:02}", i, i % 100)),
            _ => serde_json::json!(-(i as f64) / 8.0),
        };
        let meta = match i % 3 {
            0 => serde_json::json!({"tags": ["a", "ü"], "n": i, "ok": true}),
            1 => serde_json::json!([i, null, 1.5]),
            _ => serde_json::Value::Null,
        };
        let big = if i % 7 == 0 {
            serde_json::json!(u64::MAX - i as u64)
        } else {
            serde_json::json!(-i)
        };
        let cols = ["id", "status", "email", "total", "meta", "big", "flag"];
        let vals = serde_json::json!([i, status, email, total, meta, big, i % 2 == 0]);
        let before = serde_json::json!([
            i,
            "old",
            format!("before{i}@example.com"),
            0,
            null,
            0,
            false
        ]);
        let table = if i % 9 == 0 { "audit" } else { "orders" };
        let schema = if i % 11 == 0 { "other" } else { "shop" };
        let line = match i % 8 {
            0 | 3 => {
                serde_json::json!({"kind": "insert", "schema": schema, "table": table, "columnnames": cols, "columnvalues": vals, "oldkeys": {}})
            }
            1 => {
                serde_json::json!({"kind": "snapshot_insert", "schema": schema, "table": table, "columnnames": cols, "columnvalues": vals, "oldkeys": {}})
            }
            2 | 5 => {
                serde_json::json!({"kind": "update", "schema": schema, "table": table, "columnnames": cols, "columnvalues": vals, "oldkeys": {"keynames": cols, "keyvalues": before}})
            }
            4 | 6 => {
                serde_json::json!({"kind": "delete", "schema": schema, "table": table, "columnnames": [], "columnvalues": [], "oldkeys": {"keynames": cols, "keyvalues": vals}})
            }
            _ => {
                serde_json::json!({"kind": "truncate", "schema": schema, "table": table, "columnnames": [], "columnvalues": [], "oldkeys": {}})
            }
        };
        lines.push(line.to_string());
    }
    lines
}

/// The five configurations: (transforms in order, `--set` values).
fn configs() -> Vec<(Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (vec!["filter"], vec!["column=status", "op===", "value=paid"]),
        // Numbers compare as numbers, text as text (the status "10" and "9.5" too).
        (vec!["filter"], vec!["column=total", "op=>=", "value=10"]),
        (
            vec!["filter"],
            vec![
                "drop_tables=shop.audit,other.*",
                "column=email",
                "op=contains",
                "value=@ex",
            ],
        ),
        // Text, JSON documents and numbers (redacted) in both row images.
        (
            vec!["mask"],
            vec!["columns=email,meta,total,big", "salt=pepper"],
        ),
        // A chain: filter then mask.
        (
            vec!["filter", "mask"],
            vec![
                "filter:column=status",
                "filter:op=!=",
                "filter:value=new",
                "mask:columns=email,status",
                "mask:mode=redact",
            ],
        ),
    ]
}

fn run(lang: &str, transforms: &[&str], sets: &[&str], input: &str) -> String {
    let mut args: Vec<String> = transforms
        .iter()
        .map(|t| {
            let name = if lang == "rust" {
                t.to_string()
            } else {
                format!("{lang}/{t}")
            };
            wasm(&name).to_string_lossy().into_owned()
        })
        .collect();
    args.push("--envelope".into());
    for s in sets {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = transform_test(&args, input).unwrap();
    assert_eq!(code, 0, "{lang} {transforms:?} {sets:?}: {err}");
    out
}

#[test]
fn filter_and_mask_give_byte_identical_output_in_rust_python_and_javascript() {
    let input = mixed_events().join("\n");
    for (transforms, sets) in configs() {
        let rust = run("rust", &transforms, &sets, &input);
        let lines = rust.lines().count();
        // Each configuration does something: drops some events, or changes some values.
        assert!(lines > 0, "{transforms:?} {sets:?} published nothing");
        assert!(
            lines < 40 || rust.contains("<redacted>") || rust.len() > input.len(),
            "{transforms:?} {sets:?} changed nothing:\n{rust}"
        );
        for lang in ["py", "js"] {
            let got = run(lang, &transforms, &sets, &input);
            if got != rust {
                let first = got
                    .lines()
                    .zip(rust.lines())
                    .position(|(g, r)| g != r)
                    .unwrap_or(got.lines().count().min(lines));
                panic!(
                    "{lang} {transforms:?} {sets:?}: differs from Rust at output line {first} ({} lines against {lines}):\n{lang}:  {:?}\nrust: {:?}",
                    got.lines().count(),
                    got.lines().nth(first),
                    rust.lines().nth(first)
                );
            }
        }
        eprintln!("{transforms:?} {sets:?}: {lines} events, identical in 3 languages");
    }
}

#[test]
fn an_exception_reports_the_language_s_message_and_the_failing_event() {
    let input = (1..=5)
        .map(|i| {
            serde_json::json!({"kind": "insert", "schema": "shop", "table": "orders", "columnnames": ["id"], "columnvalues": [i], "oldkeys": {}})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    for (lang, message) in [
        ("py", "ValueError: id 3 is not allowed"),
        ("js", "Error: id 3 is not allowed"),
    ] {
        let path = wasm(&format!("{lang}/fails"));
        let (code, out, err) = transform_test(&[path.to_str().unwrap()], &input).unwrap();
        assert_eq!(code, 1, "{lang}: {err}");
        assert!(out.is_empty(), "{lang}: a halt publishes nothing: {out}");
        let error = err
            .lines()
            .skip_while(|l| !l.starts_with("error:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            error.contains("failed on the event at input:3#0 (shop.orders)"),
            "{lang}: the failing event's position: {err}"
        );
        assert!(error.contains(message), "{lang}: {message:?} in {error}");
        if lang == "py" {
            // The traceback starts at the author's code, and what it printed is there.
            assert!(
                error.contains("Traceback (most recent call last):")
                    && error.contains("in process")
                    && !error.contains("_component.py"),
                "{error}"
            );
            assert!(error.contains("checked 3 rows"), "its stderr: {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_transform_masks_in_the_pipeline_to_kafka() -> anyhow::Result<()> {
    let (mask, filter) = (wasm("py/mask"), wasm("py/filter"));
    let (mut p, mut sluice) = TestPipeline::new("pymask")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, email VARCHAR(50), status VARCHAR(10), total DECIMAL(10,2), doc JSON)")
        .config(format!(
            "[[transforms]]\npath = {filter:?}\n[transforms.config]\ncolumn = \"status\"\nop = \"!=\"\nvalue = \"test\"\n\n[[transforms]]\npath = {mask:?}\n[transforms.config]\ncolumns = \"email,total,doc\"\n"
        ))
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'a@x.io', 'paid', 9.90, '{\"k\": [1, \"ü\"]}'), (2, 'b@x.io', 'test', 1, NULL), (3, NULL, 'new', NULL, NULL)")
        .await?;
    p.sql("UPDATE {t} SET email = 'c@x.io' WHERE id = 1")
        .await?;
    let records = p.consume_settled(3, Duration::from_secs(2))?;
    let sha = |s: &str| sluice_transform_mask::hash_hex("", s.as_bytes());
    let vals: Vec<serde_json::Value> = records
        .iter()
        .map(|r| r.value["columnvalues"].clone())
        .collect();
    // MariaDB stores JSON as text: the mask hashes it as Sluice publishes it.
    let doc = "{\"k\": [1, \"ü\"]}";
    assert_eq!(
        vals,
        vec![
            serde_json::json!([1, sha("a@x.io"), "paid", sha("9.90"), sha(doc)]),
            serde_json::json!([3, null, "new", null, null]),
            serde_json::json!([1, sha("c@x.io"), "paid", sha("9.90"), sha(doc)]),
        ],
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(
        records[2].value["oldkeys"]["keyvalues"][1],
        serde_json::json!(sha("a@x.io")),
        "the row before the change is masked too"
    );
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_transform_hot_reloads_and_keeps_its_state_across_batches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("tag.wasm");
    install_wasm(&wasm("py/tag_v1"), &live)?;
    // An empty artifact cache: the new version is compiled for real while the old one runs.
    let cache = tempfile::tempdir()?;
    let (mut p, mut sluice) = TestPipeline::new("pyreload")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .env("TRANSFORMS", live.to_str().unwrap())
        .env("SLUICE_CACHE_DIR", cache.path().to_str().unwrap())
        .arg("--watch")
        .start()
        .await?;
    // Three transactions, so three batches for one instance: its count goes on.
    for id in 1..=3 {
        p.sql(format!("INSERT INTO {{t}} VALUES ({id})")).await?;
        p.consume_settled(id, Duration::from_millis(300))?;
    }
    let swap = Instant::now();
    install_wasm(&wasm("py/tag_v2"), &live)?;
    // The old version goes on while the new one compiles (an 18 MB component: seconds).
    p.sql("INSERT INTO {t} VALUES (4)").await?;
    p.consume_settled(4, Duration::from_millis(300))?;
    let during_compile = !sluice.log_contains("new version compiled and initialised");
    assert!(
        wait_until(Duration::from_secs(120), || sluice
            .log_contains("new version compiled and initialised")),
        "{}",
        sluice.stderr_text()
    );
    let prepared = swap.elapsed();
    for id in 5..=6 {
        p.sql(format!("INSERT INTO {{t}} VALUES ({id})")).await?;
    }
    let records = p.consume_settled(6, Duration::from_secs(2))?;
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    let tags: BTreeMap<i64, (String, String)> = records
        .iter()
        .map(|r| {
            let h = |k: &str| r.headers.get(k).cloned().unwrap_or_default();
            (
                r.value["columnvalues"][0].as_i64().unwrap(),
                (h("tag-version"), h("tag-count")),
            )
        })
        .collect();
    let want: BTreeMap<i64, (String, String)> = [
        (1, ("1", "1")),
        (2, ("1", "2")),
        (3, ("1", "3")),
        (4, ("1", "4")),
        (5, ("2", "1")),
        (6, ("2", "2")),
    ]
    .into_iter()
    .map(|(i, (v, c))| (i, (v.to_owned(), c.to_owned())))
    .collect();
    assert_eq!(tags, want, "{}", sluice.stderr_text());
    let stderr = sluice.stderr_text();
    let prepare_ms = stderr
        .lines()
        .find(|l| l.contains("new version compiled and initialised"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["fields"]["prepare_ms"].as_u64());
    let prepare_ms = prepare_ms.expect("the reload logs its compile and init time");
    eprintln!(
        "python hot reload: file replaced -> new version ready in {prepared:?} (compile and init: {prepare_ms} ms); row 4 published by the old version during the compile: {during_compile}"
    );
    Ok(())
}

#[test]
fn a_python_component_publishes_what_its_native_harness_says() {
    // Every op and every kind of value, through the built component and under plain CPython:
    // a module the component could not import, or a value it encodes differently, shows here.
    let input = mixed_events().join("\n");
    let path = wasm("py/every_op");
    let (code, out, err) = transform_test(&[path.to_str().unwrap(), "--envelope"], &input).unwrap();
    assert_eq!(code, 0, "{err}");
    let harness = r#"
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
from sluice.testing import Harness, TestEvent
from every_op import EveryOp
events = [TestEvent.from_json(l) for l in sys.stdin.read().splitlines()]
for o in Harness(EveryOp).run(events):
    print(json.dumps(o.envelope_json(), ensure_ascii=False))
"#;
    let python = root().join(".work/guest-tools/py/bin/python");
    let mut child = std::process::Command::new(&python)
        .args(["-c", harness])
        .arg(root().join("guest-sdk/python"))
        .arg(root().join("tests/fixtures/guests"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/guest-tools.sh", python.display()));
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let native = child.wait_with_output().unwrap();
    assert!(
        native.status.success(),
        "{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (component, native) = (parse(&out), parse(&String::from_utf8_lossy(&native.stdout)));
    assert!(
        component.len() > 40,
        "splits add events: {}",
        component.len()
    );
    assert_eq!(component.len(), native.len(), "event count");
    for (i, (c, n)) in component.iter().zip(&native).enumerate() {
        assert_eq!(c, n, "output {i}");
    }
    // Spot checks of what the values became.
    let first = component
        .iter()
        .find(|e| e["value"]["kind"] == "insert")
        .expect("an insert");
    let names = first["value"]["columnnames"].as_array().unwrap();
    assert!(
        names.contains(&serde_json::json!("contact"))
            && !names.contains(&serde_json::json!("flag"))
    );
    let values = first["value"]["columnvalues"].as_array().unwrap();
    let tail: Vec<&serde_json::Value> = values.iter().rev().take(6).rev().collect();
    assert_eq!(
        tail,
        [
            &serde_json::json!("2024-01-02"),
            &serde_json::json!("2024-01-02T03:04:05.600000"),
            &serde_json::json!("1.50"),
            &serde_json::json!({"a": [1, null, "ü"]}),
            &serde_json::json!(0.1),
            &serde_json::json!("AP8="),
        ],
        "{first}"
    );
}

#[test]
fn an_instance_that_wears_out_its_memory_is_renewed_and_nothing_is_lost() {
    // `leaky` keeps 1 KB per event for good: under a 16 MiB cap its instance is full after
    // about fifty calls of 128 events. Each time, the call is tried again on a fresh instance.
    let input = (1..=12_000)
        .map(|i| {
            serde_json::json!({"kind": "insert", "schema": "shop", "table": "orders", "columnnames": ["id"], "columnvalues": [i], "oldkeys": {}})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = wasm("py/leaky");
    let (code, out, err) = transform_test(
        &[path.to_str().unwrap(), "--memory-mb", "16", "--envelope"],
        &input,
    )
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let ids: Vec<i64> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["value"]["columnvalues"][0].as_i64().unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        (1..=12_000).collect::<Vec<_>>(),
        "every event, once, in order"
    );
    let renewals = err.matches("reached its memory cap after").count();
    assert!(renewals >= 1, "the instance was renewed: {err}");
    // The counter on the instance starts again with each new one.
    let restarts = out
        .lines()
        .filter(|l| l.contains(r#"["leaky-kept","1"]"#))
        .count();
    assert_eq!(restarts, renewals + 1, "{renewals} renewals");
    eprintln!("12000 events under a 16 MiB cap: {renewals} renewals");
}
