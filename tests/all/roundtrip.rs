//! Every type in the contract's value table, through MariaDB, the binlog and Kafka, compared
//! with the golden files in `tests/golden/`.

use sluice_tests::*;

pub(crate) const CREATE: &str = "CREATE TABLE {t} (
  id INT PRIMARY KEY,
  ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT,
  tiu TINYINT UNSIGNED, miu MEDIUMINT UNSIGNED, bu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE,
  dec1 DECIMAL(10,3), dec2 DECIMAL(30,10),
  c CHAR(10), vc VARCHAR(100), tx TEXT, emoji VARCHAR(20) CHARACTER SET utf8mb4,
  l1 VARCHAR(20) CHARACTER SET latin1,
  bin BINARY(6), vb VARBINARY(10), bl BLOB,
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), dtm3 DATETIME(3),
  ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL,
  tm TIME, tm2 TIME(2),
  y YEAR,
  j JSON,
  e ENUM('small','medium','large'),
  s SET('a','b','c','d'),
  b BIT(10),
  zd DATE, zdt DATETIME,
  n INT NULL
) ENGINE=InnoDB";

pub(crate) const INSERT: &str = r#"INSERT INTO {t} VALUES (
  1, -128, -32768, -8388608, -2147483648, -9223372036854775808,
  255, 16777215, 18446744073709551615,
  1.5, 3.141592653589793,
  19.99, '-12345678901234567890.0123456789',
  'abc', 'hello, world', 'line1\nline2 "quoted"', '🦀 crab',
  'café',
  X'0102', X'00FF00', X'DEADBEEF00',
  '2024-01-31', '2024-01-31 12:00:00', '2024-01-31 12:00:00.123456', '2024-01-31 12:00:00.250',
  '2024-01-31 12:00:00', '2024-01-31 12:00:00.250',
  '-838:59:59', '-01:02:03.45',
  2024,
  '{"a": [1, 2, {"b": null}]}',
  'medium',
  'a,c',
  b'1010101010',
  '0000-00-00', '0000-00-00 00:00:00',
  NULL)"#;

pub(crate) fn golden(name: &str, table: &str) -> serde_json::Value {
    let path = root().join("tests/golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["table"] = serde_json::Value::String(table.to_owned());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_as_the_contract_specifies() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("types")
        .kafka()
        .setup(CREATE)
        .start()
        .await?;
    p.sql("SET time_zone = '+00:00', sql_mode = ''").await?;
    p.sql(INSERT).await?;
    p.sql("UPDATE {t} SET vc = 'changed', n = 42, ti = 127, mi = -1, y = 0 WHERE id = 1")
        .await?;
    p.sql("DELETE FROM {t} WHERE id = 1").await?;

    let records = p.consume(3)?;
    assert_eq!(records.len(), 3, "sluice stderr:\n{}", sluice.stderr_text());
    for (rec, name) in records.iter().zip([
        "all_types.insert.json",
        "all_types.update.json",
        "all_types.delete.json",
    ]) {
        let expected = golden(name, &p.table);
        if rec.value != expected {
            // Name the first differing column, which is what a reader of the failure needs.
            let exp_vals = &expected["columnvalues"];
            let got_vals = &rec.value["columnvalues"];
            for (i, col) in expected["columnnames"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                if exp_vals.get(i) != got_vals.get(i) {
                    eprintln!(
                        "{name}: column {col}: expected {:?}, got {:?}",
                        exp_vals.get(i),
                        got_vals.get(i)
                    );
                }
            }
            panic!("{name}: expected\n{expected}\ngot\n{}", rec.value);
        }
        assert_eq!(
            rec.key.as_deref(),
            Some(format!("{DB}.{}", p.table).as_str()),
            "the default key is schema.table"
        );
        assert!(rec.headers.contains_key("sluice.file") && rec.headers.contains_key("sluice.pos"));
        assert!(
            rec.headers["sluice.gtid"].starts_with("0-1-"),
            "MariaDB GTID header: {:?}",
            rec.headers
        );
    }
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_mode_keys_by_the_key_values() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("pk")
        .kafka()
        .setup("CREATE TABLE {t} (a INT, b VARCHAR(10), c INT, PRIMARY KEY (b, a))")
        .env("KAFKA_KEY", "primary_key")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'x', 10)").await?;
    p.sql("DELETE FROM {t}").await?;
    let records = p.consume(2)?;
    assert_eq!(records.len(), 2, "{}", sluice.stderr_text());
    assert_eq!(records[0].key.as_deref(), Some(r#"["x",1]"#));
    assert_eq!(
        records[1].key.as_deref(),
        Some(r#"["x",1]"#),
        "a delete is keyed by its before image"
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
