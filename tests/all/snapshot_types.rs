//! The snapshot reads values exactly as the binlog path decodes them: for every type in the
//! contract's table (and MariaDB's own types and column kinds), a row read by the snapshot and
//! the same row read from the binlog give identical `columnvalues`, and both equal the golden
//! file.

use std::time::Duration;

use sluice_tests::*;

use crate::roundtrip::{golden, CREATE, INSERT};

/// Columns where the text and binary protocols, or the stored and printed forms, differ:
/// FLOAT digits, ZEROFILL, a latin1 ENUM and SET, INVISIBLE and generated columns, MariaDB's
/// UUID/INET types, compressed columns, negative TIME with a fraction, TIMESTAMP, zero dates.
const EXTRAS: &str = "CREATE TABLE {t}_x (
  id INT PRIMARY KEY,
  f FLOAT, f2 FLOAT, dz DECIMAL(10,3) ZEROFILL, iz INT(6) ZEROFILL,
  e ENUM('é','b','') CHARACTER SET latin1, st SET('z','é') CHARACTER SET latin1,
  hidden INT INVISIBLE, gen INT AS (id * 2) VIRTUAL, gs INT AS (id + 1) STORED,
  u UUID, i4 INET4, i6 INET6,
  vc VARCHAR(100) COMPRESSED, tc TEXT COMPRESSED,
  tm TIME(2), ts TIMESTAMP(6) NULL, d DATE, dt DATETIME(3),
  bi BINARY(4), bt BIT(1)
) ENGINE=InnoDB";

const EXTRAS_ROWS: &str = "INSERT INTO {t}_x (id, f, f2, dz, iz, e, st, hidden, u, i4, i6, vc, tc, tm, ts, d, dt, bi, bt) VALUES
  (1, 1.2345678, 16777216, 19.99, 42, 'é', 'é,z', 7, '123e4567-e89b-12d3-a456-426614174000',
   '192.0.2.1', '2001:db8::1', REPEAT('compress me ', 5), REPEAT('x', 300), '-12:34:56.78',
   '2024-03-31 01:30:00.123456', '2015-00-21', '0000-00-00 00:00:00', X'01', b'1'),
  (2, NULL, -0.0, 0, 0, '', '', NULL, NULL, NULL, '::', '', '', '838:59:59.00', NULL, '0000-00-00',
   '2024-01-31 12:00:00.250', X'00000000', b'0')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_rows_equal_binlog_rows_for_every_type() -> anyhow::Result<()> {
    // Stream first, so the rows arrive from the binlog; then force a snapshot of the same rows.
    let (mut p, sluice) = TestPipeline::new("snaptypes")
        .kafka()
        .tables("{t},{t}_x,{t}_v,{t}_w")
        .setup(CREATE)
        .setup(EXTRAS)
        // System-versioned tables, with implicit (hidden) and explicit period columns: both
        // paths publish what `SELECT *` shows.
        .setup("CREATE TABLE {t}_v (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
        .setup(
            "CREATE TABLE {t}_w (id INT PRIMARY KEY, v INT, \
             s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, \
             e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, \
             PERIOD FOR SYSTEM_TIME(s, e)) WITH SYSTEM VERSIONING",
        )
        .start()
        .await?;
    p.sql("SET time_zone = '+00:00', sql_mode = ''").await?;
    p.sql(INSERT).await?;
    p.sql(EXTRAS_ROWS).await?;
    p.sql("INSERT INTO {t}_v VALUES (1, 10)").await?;
    p.sql("INSERT INTO {t}_w (id, v) VALUES (1, 10)").await?;
    let streamed = p.consume(5)?;
    assert_eq!(streamed.len(), 5, "{}", sluice.stderr_text());
    assert_eq!(sluice.stop()?, 0);

    let mut forced = p.cfg.clone();
    forced.set("FORCE_SNAPSHOT", "true");
    let sluice = forced.start()?;
    let all = p.consume_settled(10, Duration::from_secs(2))?;
    assert_eq!(all.len(), 10, "{}", sluice.stderr_text());
    let (binlog, snapshot) = all.split_at(5);
    for s in snapshot {
        assert_eq!(s.value["kind"], "snapshot_insert", "{}", s.value);
        assert_eq!(s.value["oldkeys"], serde_json::json!({}));
        let same = |r: &&Record| {
            r.value["table"] == s.value["table"]
                && r.value["columnvalues"][0] == s.value["columnvalues"][0]
        };
        let b = binlog.iter().find(same).expect("the streamed row");
        assert_eq!(b.value["kind"], "insert");
        assert_eq!(
            s.value["columnnames"], b.value["columnnames"],
            "column names"
        );
        let (sv, bv) = (&s.value["columnvalues"], &b.value["columnvalues"]);
        if sv != bv {
            let names = s.value["columnnames"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let diff: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| sv.get(*i) != bv.get(*i))
                .map(|(i, n)| format!("{n}: snapshot {:?} binlog {:?}", sv.get(i), bv.get(i)))
                .collect();
            panic!("{}: values differ: {diff:#?}", s.value["table"]);
        }
    }
    // And the all-types row equals the golden file, kind aside.
    let row = snapshot
        .iter()
        .find(|r| r.value["table"] == p.table.as_str())
        .expect("the all-types row");
    let mut want = golden("all_types.insert.json", &p.table);
    want["kind"] = "snapshot_insert".into();
    assert_eq!(row.value, want);
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
