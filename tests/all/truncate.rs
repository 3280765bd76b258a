//! The `event` mode for table resets (`ON_TABLE_RESET=event`, issue 15 item 1), against the real
//! MariaDB and the real broker. A consumer that applies the published events keyed by the
//! declared primary key (`id`), with `truncate` clearing its copy of the table, ends equal to
//! the table's `SELECT *` after TRUNCATE, DROP + CREATE with another column list, and CREATE OR
//! REPLACE … SELECT. Statements that no event can describe still stop in this mode: a table
//! that takes a captured name (it arrives with rows), partition TRUNCATE/DROP/EXCHANGE and
//! ALTER IGNORE. With `KAFKA_KEY=primary_key` on a 3-partition topic, the truncate reaches every
//! partition. The example transforms pass a truncate as documented, natively and as wasm.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value as Json;
use sluice_guest::testing::{Harness, TestEvent};
use sluice_tests::*;

/// One table's rows, keyed by the declared primary key `id`: column name → value.
type Rows = BTreeMap<String, BTreeMap<String, Json>>;

fn events(lines: &[String]) -> Vec<Json> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .collect()
}

fn row(names: &Json, values: &Json) -> BTreeMap<String, Json> {
    let names = names.as_array().expect("column names");
    let values = values.as_array().expect("column values");
    assert_eq!(names.len(), values.len(), "{names:?} {values:?}");
    names
        .iter()
        .map(|n| n.as_str().expect("a name").to_owned())
        .zip(values.iter().cloned())
        .collect()
}

fn key(r: &BTreeMap<String, Json>) -> String {
    r.get("id").expect("every test table has `id`").to_string()
}

/// Applies one contract event to a consumer's copy of `table`, as a consumer keyed by the
/// declared primary key does; `truncate` clears the copy.
fn apply(rows: &mut Rows, e: &Json) {
    match e["kind"].as_str().expect("kind") {
        "insert" | "snapshot_insert" => {
            let r = row(&e["columnnames"], &e["columnvalues"]);
            rows.insert(key(&r), r);
        }
        "update" => {
            let old = row(&e["oldkeys"]["keynames"], &e["oldkeys"]["keyvalues"]);
            rows.remove(&key(&old));
            let r = row(&e["columnnames"], &e["columnvalues"]);
            rows.insert(key(&r), r);
        }
        "delete" => {
            let old = row(&e["oldkeys"]["keynames"], &e["oldkeys"]["keyvalues"]);
            rows.remove(&key(&old));
        }
        "truncate" => {
            assert_eq!(e["columnnames"], serde_json::json!([]), "{e}");
            assert_eq!(e["columnvalues"], serde_json::json!([]), "{e}");
            assert_eq!(e["oldkeys"], serde_json::json!({}), "{e}");
            rows.clear();
        }
        k => panic!("unexpected kind {k:?}: {e}"),
    }
}

/// The consumer's copy of `table` after every published event.
fn replay(published: &[Json], table: &str) -> Rows {
    let mut rows = Rows::new();
    for e in published.iter().filter(|e| e["table"] == table) {
        apply(&mut rows, e);
    }
    rows
}

/// The table's `SELECT *`, as the contract would publish it (the tests use INT and text only).
async fn select_star(db: &mut mysql_async::Conn, table: &str) -> anyhow::Result<Rows> {
    // The binary protocol types the values (the text protocol gives every value as bytes).
    let result: Vec<mysql_async::Row> = db.exec(format!("SELECT * FROM {table}"), ()).await?;
    let mut rows = Rows::new();
    for r in result {
        let mut m = BTreeMap::new();
        for (i, c) in r.columns_ref().iter().enumerate() {
            let v = match r.as_ref(i).expect("a value") {
                mysql_async::Value::NULL => Json::Null,
                mysql_async::Value::Int(x) => Json::from(*x),
                mysql_async::Value::UInt(x) => Json::from(*x),
                mysql_async::Value::Bytes(b) => Json::from(String::from_utf8(b.clone())?),
                other => anyhow::bail!("the test tables hold INT and text only, not {other:?}"),
            };
            m.insert(c.name_str().into_owned(), v);
        }
        rows.insert(key(&m), m);
    }
    Ok(rows)
}

/// A pipeline in the `event` mode on `{t}` (stdout sink), after `setup`.
fn event_mode(prefix: &str, setup: &[&str]) -> TestPipeline {
    let mut pipeline = TestPipeline::new(prefix).env("ON_TABLE_RESET", "event");
    for s in setup {
        pipeline = pipeline.setup(*s);
    }
    pipeline
}

/// Runs `statements` (`{t}` is the table) against a running Sluice in the `event` mode, waits
/// until the consumer's copy equals `SELECT *`, and returns the published events.
async fn replays_to_select_star(
    prefix: &str,
    setup: &[&str],
    statements: &[&str],
) -> anyhow::Result<(String, Vec<Json>)> {
    let (mut p, sluice) = event_mode(prefix, setup).start().await?;
    for s in statements {
        p.sql(s).await?;
    }
    let t = p.table.clone();
    let expected = select_star(&mut p.db, &t).await?;
    assert!(!expected.is_empty(), "the scenario leaves rows to compare");
    let settled = wait_until(Duration::from_secs(30), || {
        replay(&events(&sluice.stdout_lines()), &t) == expected
    });
    let published = events(&sluice.stdout_lines());
    assert!(
        settled,
        "the consumer's copy {:?} != SELECT * {expected:?}\nevents: {published:#?}\n{}",
        replay(&published, &t),
        sluice.stderr_text()
    );
    assert!(
        sluice.log_contains("published a table-level truncate event"),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok((t, published))
}

const PLAIN: &str = "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB";

/// The golden truncate event for `table`.
fn golden(table: &str) -> Json {
    let path = root().join("tests/golden/truncate.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: Json = serde_json::from_str(&text).unwrap();
    v["table"] = Json::String(table.to_owned());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_then_inserts_replays_to_select_star() -> anyhow::Result<()> {
    let (t, published) = replays_to_select_star(
        "tr_trunc",
        &[PLAIN],
        &[
            "INSERT INTO {t} VALUES (1, 1), (2, 2), (3, 3)",
            "TRUNCATE TABLE {t}",
            "INSERT INTO {t} VALUES (2, 20), (4, 40)",
            "UPDATE {t} SET v = 41 WHERE id = 4",
        ],
    )
    .await?;
    let kinds: Vec<&str> = published
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["insert", "insert", "insert", "truncate", "insert", "insert", "update"]
    );
    // The published line is the golden file, byte for byte (the contract's key order).
    let truncate = published.iter().find(|e| e["kind"] == "truncate").unwrap();
    assert_eq!(truncate, &golden(&t));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_line_is_the_golden_file() -> anyhow::Result<()> {
    let (mut p, sluice) = event_mode("tr_gold", &[PLAIN]).start().await?;
    p.sql("TRUNCATE TABLE {t}").await?;
    assert!(
        wait_until(Duration::from_secs(30), || !sluice
            .stdout_lines()
            .is_empty()),
        "{}",
        sluice.stderr_text()
    );
    let lines = sluice.stdout_lines();
    assert_eq!(sluice.stop()?, 0);
    assert_eq!(lines, vec![serde_json::to_string(&golden(&p.table))?]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_then_create_with_other_columns_replays_to_select_star() -> anyhow::Result<()> {
    let (_, published) = replays_to_select_star(
        "tr_drop",
        &[PLAIN],
        &[
            "INSERT INTO {t} VALUES (1, 1), (2, 2)",
            "DROP TABLE {t}",
            "CREATE TABLE {t} (id INT PRIMARY KEY, w VARCHAR(20), n INT) ENGINE=InnoDB",
            "INSERT INTO {t} VALUES (1, 'new', 5), (9, 'nine', NULL)",
            "DELETE FROM {t} WHERE id = 9",
            "INSERT INTO {t} VALUES (3, 'three', 3)",
        ],
    )
    .await?;
    // The new table's rows carry its own column list: no old metadata was reused.
    let after: Vec<&Json> = published
        .iter()
        .skip_while(|e| e["kind"] != "truncate")
        .skip(1)
        .collect();
    assert_eq!(after.len(), 4, "{published:#?}");
    for e in after {
        let names = match e["kind"].as_str() {
            Some("delete") => &e["oldkeys"]["keynames"],
            _ => &e["columnnames"],
        };
        assert_eq!(names, &serde_json::json!(["id", "w", "n"]), "{e}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_replace_select_replays_to_select_star() -> anyhow::Result<()> {
    // MariaDB logs the CREATE OR REPLACE as a statement, then the SELECT's rows as row events
    // of the new table: the truncate comes first, then those rows.
    let (_, published) = replays_to_select_star(
        "tr_cor",
        &[PLAIN],
        &[
            "INSERT INTO {t} VALUES (1, 1), (2, 2)",
            "CREATE OR REPLACE TABLE {t} (PRIMARY KEY (id)) SELECT 5 AS id, 6 AS v, 'x' AS note",
            "INSERT INTO {t} VALUES (7, 8, 'y')",
        ],
    )
    .await?;
    let kinds: Vec<&str> = published
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["insert", "insert", "truncate", "insert", "insert"]);
    assert_eq!(
        published[3]["columnnames"],
        serde_json::json!(["id", "v", "note"])
    );
    Ok(())
}

/// Starts Sluice in the `event` mode on `{t}` after `setup`, publishes a marker row (id 1),
/// runs `statements`, and checks that Sluice stops with `expect` in its error, having published
/// exactly `kinds`, and that a restart stops again.
async fn stops_in_event_mode(
    prefix: &str,
    setup: &[&str],
    statements: &[&str],
    expect: &str,
    kinds: &[&str],
) -> anyhow::Result<()> {
    let (mut p, mut sluice) = event_mode(prefix, setup).start().await?;
    p.sql("INSERT INTO {t} (id) VALUES (1)").await?;
    assert!(
        wait_until(Duration::from_secs(30), || !events(&sluice.stdout_lines())
            .is_empty()),
        "{}",
        sluice.stderr_text()
    );
    for s in statements {
        p.sql(s).await?;
    }
    let code = sluice.wait(Duration::from_secs(30))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    for needle in [
        expect,
        p.table.as_str(),
        "changes the captured table",
        "sluice position skip",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let published = events(&sluice.stdout_lines());
    let got: Vec<&str> = published
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(got, kinds, "{published:?}");
    let (code, out, err2) = p.run_to_end()?;
    assert_ne!(code, 0, "{err2}");
    assert!(err2.contains(expect), "{err2}");
    assert!(events(&out.lines().map(str::to_owned).collect::<Vec<_>>()).is_empty());
    Ok(())
}

const PARTITIONED: &str = "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB \
                           PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), \
                           PARTITION p1 VALUES LESS THAN MAXVALUE)";
/// What the error says in the `event` mode about a statement no event can describe.
const NO_EVENT: &str = "ON_TABLE_RESET=event publishes a `truncate` event only";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_away_is_a_truncate_and_back_stops() -> anyhow::Result<()> {
    // Away: the captured name loses its rows (a truncate). Back: a table takes the captured
    // name with rows that no event describes (3 was inserted under the other name); without a
    // snapshot that stops.
    stops_in_event_mode(
        "tr_ren",
        &[PLAIN],
        &[
            "RENAME TABLE {t} TO {t}_away",
            "INSERT INTO {t}_away VALUES (3, 3)",
            "RENAME TABLE {t}_away TO {t}",
        ],
        "arrives with rows",
        &["insert", "truncate"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_truncate_still_stops() -> anyhow::Result<()> {
    stops_in_event_mode(
        "tr_ptrunc",
        &[PARTITIONED],
        &["ALTER TABLE {t} TRUNCATE PARTITION p0"],
        NO_EVENT,
        &["insert"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_drop_still_stops() -> anyhow::Result<()> {
    stops_in_event_mode(
        "tr_pdrop",
        &[PARTITIONED],
        &["ALTER TABLE {t} DROP PARTITION p0"],
        NO_EVENT,
        &["insert"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_exchange_still_stops() -> anyhow::Result<()> {
    stops_in_event_mode(
        "tr_pexch",
        &[
            PARTITIONED,
            "CREATE TABLE {t}_x (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
            "INSERT INTO {t}_x VALUES (7, 7)",
        ],
        &["ALTER TABLE {t} EXCHANGE PARTITION p0 WITH TABLE {t}_x"],
        NO_EVENT,
        &["insert"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_ignore_add_unique_still_stops() -> anyhow::Result<()> {
    stops_in_event_mode(
        "tr_ign",
        &[PLAIN],
        &[
            "INSERT INTO {t} VALUES (2, 1)",
            "UPDATE {t} SET v = 1 WHERE id = 1",
            "ALTER IGNORE TABLE {t} ADD UNIQUE (v)",
        ],
        NO_EVENT,
        &["insert", "insert", "update"],
    )
    .await
}

#[test]
fn resnapshot_is_refused_with_the_reason() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let mut cfg = SluiceConfig::new("whatever", None, 4242, state.path());
    cfg.set("ON_TABLE_RESET", "resnapshot");
    let (code, out, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("ON_TABLE_RESET") && err.contains("stop or event") && err.contains("snapshot"),
        "{err}"
    );
    Ok(())
}

/// One record with its partition.
struct PartRecord {
    partition: i32,
    key: Option<String>,
    value: Json,
    headers: BTreeMap<String, String>,
}

/// Reads every partition of `topic` from the beginning until `count` records arrived and
/// nothing more came for 2 s (or 60 s passed).
fn read_partitions(topic: &str, partitions: i32, count: usize) -> anyhow::Result<Vec<PartRecord>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env()["SLUICE_TEST_KAFKA"])
        .set("group.id", format!("sluice-test-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    let mut out = Vec::new();
    while Instant::now() < deadline {
        if out.len() >= count && quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None | Some(Err(_)) => {}
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        let v = String::from_utf8_lossy(hd.value.unwrap_or(b"")).into_owned();
                        headers.insert(hd.key.to_owned(), v);
                    }
                }
                out.push(PartRecord {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: serde_json::from_slice(m.payload().unwrap_or(b"null"))?,
                    headers,
                });
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_mode_sends_the_truncate_to_every_partition() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("tr_kafka")
        .kafka()
        .env("ON_TABLE_RESET", "event")
        .env("KAFKA_KEY", "primary_key")
        .setup(PLAIN)
        .build()
        .await?;
    let (t, topic) = (p.table.clone(), p.topic.clone());
    let admin_client: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env()["SLUICE_TEST_KAFKA"])
        .create()?;
    let created = admin_client
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    for r in created {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    let sluice = p.start()?;
    for s in [
        "INSERT INTO {t} VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)",
        "TRUNCATE TABLE {t}",
        "INSERT INTO {t} VALUES (2, 20), (7, 7), (8, 8)",
        "UPDATE {t} SET v = 70 WHERE id = 7",
    ] {
        p.sql(s).await?;
    }
    let expected = select_star(&mut p.db, &t).await?;
    // 6 inserts, a truncate on each of 3 partitions, 3 inserts and an update.
    let records = read_partitions(&topic, 3, 13)?;
    assert_eq!(sluice.stop()?, 0);
    assert_eq!(
        records.len(),
        13,
        "{:?}",
        records.iter().map(|r| &r.value).collect::<Vec<_>>()
    );

    let truncates: Vec<&PartRecord> = records
        .iter()
        .filter(|r| r.value["kind"] == "truncate")
        .collect();
    let mut parts: Vec<i32> = truncates.iter().map(|r| r.partition).collect();
    parts.sort();
    assert_eq!(parts, [0, 1, 2], "one truncate on every partition");
    for r in &truncates {
        assert_eq!(r.value, golden(&t));
        assert_eq!(r.key.as_deref(), Some(format!("{DB}.{t}").as_str()));
        // Its statement's group start, row 0; the same position on every partition.
        assert_eq!(r.headers["sluice.row"], "0");
        assert_eq!(r.headers["sluice.pos"], truncates[0].headers["sluice.pos"]);
        assert_eq!(
            r.headers.get("sluice.gtid"),
            truncates[0].headers.get("sluice.gtid")
        );
    }
    // The rows before the truncate were spread over several partitions: each needed it.
    let before: std::collections::BTreeSet<i32> = records
        .iter()
        .filter(|r| {
            r.value["kind"] == "insert"
                && r.headers["sluice.pos"].parse::<u64>().unwrap()
                    < truncates[0].headers["sluice.pos"].parse::<u64>().unwrap()
        })
        .map(|r| r.partition)
        .collect();
    assert!(
        before.len() > 1,
        "the 6 keys landed on partitions {before:?}"
    );

    // A consumer per partition applies its partition in order; its truncate clears the rows
    // that partition carries. Together they hold the table.
    let mut union = Rows::new();
    for p in 0..3 {
        let mut rows = Rows::new();
        for r in records.iter().filter(|r| r.partition == p) {
            apply(&mut rows, &r.value);
        }
        union.extend(rows);
    }
    assert_eq!(union, expected);
    Ok(())
}

fn through_host(name: &str, config: &[(&str, &str)], input: &str) -> Vec<Json> {
    let path = wasm(name);
    let mut args = vec![path.to_str().unwrap().to_owned(), "--envelope".to_owned()];
    for (k, v) in config {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = transform_test(&args, input).unwrap();
    assert_eq!(code, 0, "{name}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn native<T: sluice_guest::Transform>(config: &[(&str, &str)], input: &str) -> Vec<Json> {
    let events: Vec<TestEvent> = input
        .lines()
        .map(|l| TestEvent::from_json(l).unwrap())
        .collect();
    let mut h = Harness::<T>::new(config).unwrap();
    h.run(&events)
        .unwrap()
        .iter()
        .map(|o| o.envelope_json())
        .collect()
}

#[test]
fn example_transforms_pass_a_truncate_as_documented() {
    let truncate = serde_json::to_string(&golden("orders")).unwrap();
    let insert = r#"{"kind":"insert","schema":"sluicetest","table":"orders","columnnames":["id","status","email","region"],"columnvalues":[1,"new","a@b.c","eu"],"oldkeys":{}}"#;
    let input = format!("{insert}\n{truncate}\n");
    let unchanged =
        serde_json::json!({"topic": null, "key": null, "headers": [], "value": golden("orders")});
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<Json>);
    let cases: Vec<Case> = vec![
        {
            // The insert fails the predicate; the truncate passes it.
            let c = vec![("column", "status"), ("op", "=="), ("value", "paid")];
            let n = native::<sluice_transform_filter::Filter>(&c, &input);
            ("filter", c, n)
        },
        {
            let c = vec![("columns", "email")];
            let n = native::<sluice_transform_mask::Mask>(&c, &input);
            ("mask", c, n)
        },
        {
            let c = vec![("topic", "orders.{region}"), ("key", "id")];
            let n = native::<sluice_transform_route::Route>(&c, &input);
            ("route", c, n)
        },
        {
            let c = vec![("envelope", "debezium"), ("rename", "email:contact")];
            let n = native::<sluice_transform_reshape::Reshape>(&c, &input);
            ("reshape", c, n)
        },
    ];
    for (name, config, expected) in cases {
        let got = through_host(name, &config, &input);
        let last = expected.last().expect("an output");
        match name {
            "reshape" => {
                assert_eq!(last["value"]["op"], "t", "{last}");
                assert_eq!(last["value"]["before"], Json::Null);
                assert_eq!(last["value"]["after"], Json::Null);
            }
            _ => assert_eq!(last, &unchanged, "{name}"),
        }
        if name == "filter" {
            assert_eq!(
                expected.len(),
                1,
                "the insert is dropped, the truncate kept"
            );
        }
        // Native and wasm agree (the harness does not know positions).
        assert_eq!(got.len(), expected.len(), "{name}");
        for (g, e) in got.iter().zip(&expected) {
            let (mut g, mut e) = (g.clone(), e.clone());
            for v in [&mut g, &mut e] {
                if let Some(src) = v["value"].get_mut("source") {
                    src["pos"] = Json::Null;
                    src["row"] = Json::Null;
                }
            }
            assert_eq!(g, e, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_replace_select_is_one_group_with_its_rows() -> anyhow::Result<()> {
    // MariaDB writes `CREATE … SELECT` as one group: a GTID without FL_STANDALONE, the
    // statement, then the rows and an XID. The truncate and the rows share its position.
    let (mut p, sluice) = TestPipeline::new("tr_corpos")
        .kafka()
        .env("ON_TABLE_RESET", "event")
        .setup(PLAIN)
        .start()
        .await?;
    p.sql(
        "CREATE OR REPLACE TABLE {t} (PRIMARY KEY (id)) SELECT 5 AS id, 6 AS v, 'x' AS note \
         UNION ALL SELECT 6, 7, 'y'",
    )
    .await?;
    let records = read_topic(&p.topic, 3, Duration::from_secs(30))?;
    assert_eq!(sluice.stop()?, 0);
    let kinds: Vec<&str> = records
        .iter()
        .filter_map(|r| r.value["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["truncate", "insert", "insert"]);
    let header = |i: usize, k: &str| records[i].headers.get(k).cloned();
    for i in 1..3 {
        assert_eq!(
            header(i, "sluice.pos"),
            header(0, "sluice.pos"),
            "{records:?}"
        );
        assert_eq!(
            header(i, "sluice.gtid"),
            header(0, "sluice.gtid"),
            "{records:?}"
        );
        assert_eq!(header(i, "sluice.row"), Some(i.to_string()), "{records:?}");
    }
    Ok(())
}
