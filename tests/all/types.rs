//! MariaDB's own column types (UUID, INET4, INET6, COMPRESSED columns) and the contract's value
//! forms for GEOMETRY, FLOAT and dates with a zero part, each compared with what the server
//! prints, with FULL row metadata (main server) and MINIMAL (scratch server).

use mysql_async::prelude::Queryable;
use serde_json::Value as J;
use sluice_tests::*;

/// Columns: (name, definition, the server's text for the contract's form).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("u", "UUID", "CAST(u AS CHAR)"),
    ("i4", "INET4", "CAST(i4 AS CHAR)"),
    ("i6", "INET6", "CAST(i6 AS CHAR)"),
    ("b16", "BINARY(16)", "REPLACE(TO_BASE64(b16), '\\n', '')"),
    (
        "vc",
        "VARCHAR(1000) COMPRESSED CHARACTER SET cp1251",
        "CONVERT(vc USING utf8mb4)",
    ),
    ("tc", "TEXT COMPRESSED", "CONVERT(tc USING utf8mb4)"),
    ("bc", "BLOB COMPRESSED", "REPLACE(TO_BASE64(bc), '\\n', '')"),
    (
        "after_c",
        "VARCHAR(20) CHARACTER SET koi8r",
        "CONVERT(after_c USING utf8mb4)",
    ),
    (
        "g",
        "GEOMETRY",
        "REPLACE(TO_BASE64(CAST(g AS BINARY)), '\\n', '')",
    ),
    // The exact stored float, as a double.
    ("f", "FLOAT", "CAST(CAST(f AS DOUBLE) AS CHAR)"),
    ("d", "DATE", "CAST(d AS CHAR)"),
    ("dt", "DATETIME", "CAST(dt AS CHAR)"),
];

/// Rows: id, then each column's SQL value.
fn rows() -> Vec<Vec<String>> {
    let long = "REPEAT(CONVERT(_utf8mb4'Привет, мир! ' USING cp1251), 40)";
    let mut rows = vec![
        vec![
            "'123e4567-e89b-12d3-a456-426614174000'", // version 1: stored swapped
            "'192.0.2.1'",
            "'2001:db8::1'",
            "X'0102030405060708090A0B0C0D0E0F00'",
            long,
            "REPEAT('compressible text ', 100)",
            "REPEAT(X'00FF', 500)",
            "CONVERT(_utf8mb4'Привет' USING koi8r)",
            "ST_GeomFromText('POINT(1 2)', 4326)",
            "42.42",
            "'2015-00-21'",
            "'2015-11-00 10:00:00'",
        ],
        vec![
            "'550e8400-e29b-41d4-a716-446655440000'", // version 4
            "'0.0.0.0'",
            "'::ffff:1.2.3.4'",
            "NULL",
            "'short'",
            "''",
            "X'01'",
            "NULL",
            "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)')",
            "3.4028235e38",
            "'0000-00-00'",
            "'0000-00-00 00:00:00'",
        ],
        vec![
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'255.255.255.255'",
            "'::'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "-0.1",
            "'2024-02-29'",
            "'2024-02-29 23:59:59'",
        ],
        vec![
            "'00000000-0000-0000-0000-000000000000'",
            "'10.0.0.1'",
            "'::1.2.3.4'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "1e-10",
            "NULL",
            "NULL",
        ],
    ];
    // More UUID versions and variants, and INET6 shapes (zero runs of every length and place).
    let more = [
        ("'6ba7b810-9dad-11d1-80b4-00c04fd430c8'", "'1::'"),
        (
            "'01234567-89ab-5def-8123-456789abcdef'",
            "'1:0:2:0:0:3:0:4'",
        ),
        (
            "'01234567-89ab-6def-8123-456789abcdef'",
            "'2001:db8:0:0:1:0:0:1'",
        ),
        (
            "'01234567-89ab-1def-0123-456789abcdef'",
            "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'",
        ),
        ("'01234567-89ab-0def-c123-456789abcdef'", "'0:0:1::'"),
        ("'01234567-89ab-7def-f123-456789abcdef'", "'::ffff:0:1'"),
        ("'01234567-89ab-8def-8123-456789abcdef'", "'fe80::1:0:0:0'"),
    ];
    for (u, i6) in more {
        let mut r = vec!["NULL"; COLUMNS.len()];
        r[0] = u;
        r[2] = i6;
        rows.push(r);
    }
    rows.into_iter()
        .map(|r| r.into_iter().map(str::to_owned).collect())
        .collect()
}

async fn types_on(scratch: bool) -> anyhow::Result<()> {
    let defs: Vec<String> = COLUMNS.iter().map(|(n, d, _)| format!("{n} {d}")).collect();
    let mut pipeline = TestPipeline::new("mtypes").kafka().setup(format!(
        "CREATE TABLE {{t}} (id INT PRIMARY KEY, {}) ENGINE=InnoDB",
        defs.join(", ")
    ));
    if scratch {
        pipeline = pipeline.scratch();
    }
    let (mut p, sluice) = pipeline.start().await?;
    let table = p.table.clone();
    p.sql("SET time_zone = '+00:00', sql_mode = ''").await?;
    let rows = rows();
    for (i, r) in rows.iter().enumerate() {
        p.sql(format!(
            "INSERT INTO {table} VALUES ({}, {})",
            i + 1,
            r.join(", ")
        ))
        .await?;
    }
    let records = p.consume(rows.len())?;
    assert_eq!(records.len(), rows.len(), "{}", sluice.stderr_text());

    let exprs: Vec<&str> = COLUMNS.iter().map(|c| c.2).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for rec in &records {
        let vals = rec.value["columnvalues"].as_array().expect("values");
        let id = vals[0].as_i64().expect("id");
        let row: mysql_async::Row =
            p.db.query_first(format!(
                "SELECT {} FROM {table} WHERE id = {id}",
                exprs.join(", ")
            ))
            .await?
            .expect("row");
        for (c, (name, def, _)) in COLUMNS.iter().enumerate() {
            let server: Option<String> = row.get(c).expect("a column");
            let got = &vals[c + 1];
            let expected = match (server, *name) {
                (None, _) => J::Null,
                // Contract: FLOAT is the shortest decimal that reads back as the same float.
                // (The server's own `CAST(f AS CHAR)` keeps only 6 digits, so 3.4028235e38
                // would not read back; Rust's `Display` for f32 is the shortest round trip.)
                (Some(s), "f") => {
                    let exact = s.parse::<f64>()? as f32;
                    let shortest = format!("{exact}");
                    if got.as_f64() != Some(shortest.parse::<f64>()?) {
                        wrong.push(format!("row {id} f: float {exact}: sluice {got}"));
                    }
                    checked += 1;
                    continue;
                }
                // Contract: a date or datetime with a zero part is null.
                (Some(s), "d" | "dt") if has_zero_part(&s) => J::Null,
                (Some(s), "d") => J::String(s),
                (Some(s), "dt") => J::String(s.replace(' ', "T")),
                (Some(s), _) => J::String(s),
            };
            checked += 1;
            if *got != expected {
                wrong.push(format!(
                    "row {id} {name} {def}: server {expected}, sluice {got}"
                ));
            }
        }
    }
    // The contract's example: 42.42 prints as 42.42 (as the server prints it too).
    let first = records
        .iter()
        .find(|r| r.value["columnvalues"][0] == 1)
        .expect("row 1");
    let f_index = 1 + COLUMNS.iter().position(|c| c.0 == "f").unwrap();
    let server_text: Option<String> =
        p.db.query_first(format!("SELECT CAST(f AS CHAR) FROM {table} WHERE id = 1"))
            .await?;
    assert_eq!(server_text.as_deref(), Some("42.42"));
    assert_eq!(first.value["columnvalues"][f_index].to_string(), "42.42");
    assert!(
        wrong.is_empty(),
        "{} of {checked} values differ:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

/// `2015-00-21`, `0000-00-00 00:00:00`: a zero year, month or day.
fn has_zero_part(s: &str) -> bool {
    let date = s.split(' ').next().unwrap_or(s);
    date.split('-').any(|p| p.chars().all(|c| c == '0'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_types_print_as_the_server_does() -> anyhow::Result<()> {
    types_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_mariadb_types_with_minimal_row_metadata() -> anyhow::Result<()> {
    types_on(true).await
}
