//! Character sets: every character set the server offers, through the binlog, compared with
//! what the server itself prints (`CONVERT(col USING utf8mb4)`), with FULL row metadata (main
//! server) and with MINIMAL (scratch server, names and labels from information_schema).

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice::source::charset::{charset_name_for_collation, Charset};
use sluice_tests::*;

/// Character sets that the server has and Sluice refuses, with the reason. Empty: every
/// character set of MariaDB 10.11 decodes.
const REFUSED: &[(&str, &str)] = &[];

/// Candidate texts; each character set's column gets the first one that the server stores
/// without loss, so every column holds non-ASCII text valid in its character set.
const SAMPLES: &[&str] = &[
    "Grüße, Åsa",
    "Привет, мир",
    "日本語のテキスト",
    "中文字符",
    "繁體中文",
    "한국어 텍스트",
    "Ελληνικά",
    "שלום עולם",
    "مرحبا",
    "ภาษาไทย",
    "Բարեւ",
    "ქართული",
    "Łódź Šťastný",
    "Ąžuolas Ēriks",
    "İstanbul ğüş",
    "ÄÖÅ äöå",
    "café",
];

/// The character sets the server lists (`SHOW CHARACTER SET`).
async fn server_charsets(db: &mut mysql_async::Conn) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = db
        .query("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS ORDER BY 1")
        .await?;
    v.retain(|c| !REFUSED.iter().any(|(r, _)| r == c));
    Ok(v)
}

/// The first sample that `cs` holds without loss (ASCII only for `ascii`).
async fn sample_for(db: &mut mysql_async::Conn, cs: &str) -> anyhow::Result<String> {
    for s in SAMPLES {
        let back: Option<String> = db
            .exec_first(
                format!("SELECT CONVERT(CONVERT(? USING {cs}) USING utf8mb4)"),
                (s,),
            )
            .await?;
        if back.as_deref() == Some(s) {
            return Ok((*s).to_owned());
        }
    }
    assert_eq!(cs, "ascii", "no sample text fits {cs}: add one to SAMPLES");
    Ok("plain ASCII only".to_owned())
}

/// Creates a table with one column per character set (plus ENUM and SET columns whose labels
/// are in non-UTF-8 character sets) and returns its column names and the INSERT of one row,
/// built with the server's own conversions.
async fn golden_table(
    db: &mut mysql_async::Conn,
    table: &str,
) -> anyhow::Result<(Vec<String>, String)> {
    let charsets = server_charsets(db).await?;
    let mut cols = vec!["id INT PRIMARY KEY".to_owned()];
    let mut values = vec!["1".to_owned()];
    let mut names = vec!["id".to_owned()];
    for cs in &charsets {
        let sample = sample_for(db, cs).await?;
        let quoted = sample.replace('\'', "''");
        if cs == "binary" {
            cols.push(format!("c_{cs} VARBINARY(100)"));
            values.push(format!("CONVERT(_utf8mb4'{quoted}' USING binary)"));
        } else {
            cols.push(format!("c_{cs} VARCHAR(40) CHARACTER SET {cs}"));
            values.push(format!("CONVERT(_utf8mb4'{quoted}' USING {cs})"));
        }
        names.push(format!("c_{cs}"));
    }
    // ENUM and SET labels are bytes in the column's character set in the table map.
    let labelled = [
        ("e_koi8r", "ENUM('привет','мир') CHARACTER SET koi8r", "мир"),
        ("e_sjis", "ENUM('日本','語') CHARACTER SET sjis", "日本"),
        ("e_ucs2", "ENUM('ä','ö') CHARACTER SET ucs2", "ö"),
        ("s_latin1", "SET('ä','ö','ü') CHARACTER SET latin1", "ä,ü"),
        ("s_cp1251", "SET('да','нет') CHARACTER SET cp1251", "да,нет"),
        ("s_big5", "SET('繁','體') CHARACTER SET big5", "體"),
    ];
    for (name, def, v) in labelled {
        cols.push(format!("{name} {def}"));
        values.push(format!("_utf8mb4'{v}'"));
        names.push(name.to_owned());
    }
    db.query_drop(format!(
        "CREATE TABLE {table} ({}) ENGINE=InnoDB",
        cols.join(", ")
    ))
    .await?;
    Ok((
        names,
        format!("INSERT INTO {table} VALUES ({})", values.join(", ")),
    ))
}

/// What the server prints for each column of the golden row, as contract JSON values.
async fn server_values(
    db: &mut mysql_async::Conn,
    table: &str,
    names: &[String],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let select: Vec<String> = names
        .iter()
        .map(|n| match n.as_str() {
            "id" => "CAST(id AS CHAR)".to_owned(),
            "c_binary" => "TO_BASE64(c_binary)".to_owned(),
            n => format!("CONVERT({n} USING utf8mb4)"),
        })
        .collect();
    let row: mysql_async::Row = db
        .query_first(format!("SELECT {} FROM {table}", select.join(", ")))
        .await?
        .expect("the row just inserted");
    let mut expected = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let s: String = row.get(i).expect("a value");
        expected.push(if n == "id" {
            serde_json::json!(s.parse::<i64>()?)
        } else {
            serde_json::Value::String(s)
        });
    }
    Ok(expected)
}

async fn every_charset_on(scratch: bool) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("charsets").kafka();
    if scratch {
        pipeline = pipeline.scratch();
    }
    let mut p = pipeline.build().await?;
    let (names, insert) = golden_table(&mut p.db, &p.table).await?;
    let sluice = p.start()?;
    p.sql(insert).await?;
    let expected = server_values(&mut p.db, &p.table, &names).await?;

    let records = p.consume(1)?;
    assert_eq!(records.len(), 1, "sluice stderr:\n{}", sluice.stderr_text());
    let v = &records[0].value;
    assert_eq!(v["columnnames"], serde_json::json!(names));
    let got = v["columnvalues"].as_array().expect("values");
    let mut wrong = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if got.get(i) != expected.get(i) {
            wrong.push(format!(
                "{n}: server {:?}, sluice {:?}",
                expected.get(i),
                got.get(i)
            ));
        }
        if let Some(s) = got[i].as_str() {
            assert!(!s.contains('\u{FFFD}'), "{n}: U+FFFD in {s:?}");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} columns differ:\n{}\n{}",
        wrong.len(),
        names.len(),
        wrong.join("\n"),
        sluice.stderr_text()
    );
    // Every character-set column held non-ASCII text (apart from ascii itself).
    for (i, n) in names.iter().enumerate().skip(1) {
        if n != "c_ascii" && n != "c_binary" {
            assert!(
                !got[i].as_str().unwrap_or("").is_ascii(),
                "{n} is ASCII only"
            );
        }
    }
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_character_set_decodes_as_the_server_prints_it() -> anyhow::Result<()> {
    every_charset_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_every_character_set_with_minimal_row_metadata() -> anyhow::Result<()> {
    every_charset_on(true).await
}

/// Every collation id the server has maps to the server's character set for it, and every
/// character set the server lists is one Sluice decodes (or is in [`REFUSED`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collation_ids_match_the_server() -> anyhow::Result<()> {
    let mut db = admin().await?;
    let ids: Vec<(u64, String)> = db
        .query(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        )
        .await?;
    assert!(ids.len() > 300, "only {} collations", ids.len());
    let wrong: Vec<String> = ids
        .iter()
        .filter(|(id, cs)| charset_name_for_collation(*id as u16) != Some(cs.as_str()))
        .map(|(id, cs)| {
            format!(
                "{id}: server {cs}, sluice {:?}",
                charset_name_for_collation(*id as u16)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let all: Vec<String> = db
        .query("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS")
        .await?;
    for cs in &all {
        let refused = REFUSED.iter().any(|(r, _)| r == cs);
        assert_eq!(
            Charset::from_name(Some(cs)).is_supported(),
            !refused,
            "{cs}: supported by Sluice?"
        );
    }
    Ok(())
}

/// Every character of every non-Unicode character set: each column holds all the characters
/// the server maps (every byte of a single-byte set, every two-byte code, and the three-byte
/// JIS X 0212 codes of ujis/eucjpms), and Sluice must print each exactly as the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_character_of_every_charset_matches_the_server() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("allchars").kafka().build().await?;
    let (table, db) = (p.table.clone(), &mut p.db);
    db.query_drop("SET SESSION group_concat_max_len = 16777216, sql_mode = ''")
        .await?;
    let charsets: Vec<(String, u32)> = db
        .query(
            "SELECT CHARACTER_SET_NAME, MAXLEN FROM information_schema.CHARACTER_SETS \
             WHERE CHARACTER_SET_NAME NOT IN ('binary') \
             AND CHARACTER_SET_NAME NOT LIKE 'utf%' AND CHARACTER_SET_NAME <> 'ucs2' ORDER BY 1",
        )
        .await?;
    let mut cols = vec!["id INT PRIMARY KEY".to_owned()];
    for (cs, _) in &charsets {
        cols.push(format!("c_{cs} LONGTEXT CHARACTER SET {cs}"));
    }
    db.query_drop(format!("CREATE TABLE {table} ({})", cols.join(", ")))
        .await?;
    let sluice = p.start()?;
    let db = &mut p.db;

    // The byte strings to try, per width; a code is in when the server converts it to
    // Unicode without a '?' (its mark for "no such character") or U+FFFD.
    let valid = |cs: &str, bytes: &str| {
        format!(
            "SELECT GROUP_CONCAT(c ORDER BY seq SEPARATOR '') FROM (SELECT seq, \
             CONVERT({bytes} USING {cs}) AS c FROM {{seq}}) s \
             WHERE LOCATE('?', CONVERT(c USING utf8mb4)) = 0 \
             AND LOCATE(_utf8mb4 0xEFBFBD, CONVERT(c USING utf8mb4)) = 0"
        )
    };
    let mut id = 0;
    for (cs, maxlen) in &charsets {
        let mut queries =
            vec![valid(cs, "UNHEX(LPAD(HEX(seq), 2, '0'))").replace("{seq}", "seq_0_to_255")];
        if *maxlen >= 2 {
            queries.push(valid(cs, "UNHEX(HEX(seq))").replace("{seq}", "seq_32768_to_65535"));
        }
        if cs == "ujis" || cs == "eucjpms" {
            queries.push(
                valid(cs, "CONCAT(0x8F, UNHEX(HEX(seq)))").replace("{seq}", "seq_41377_to_65278"),
            );
        }
        for q in queries {
            id += 1;
            db.query_drop(format!(
                "INSERT INTO {table} (id, c_{cs}) SELECT {id}, ({q})"
            ))
            .await?;
        }
    }
    let records = read_topic(&p.topic, id, Duration::from_secs(120))?;
    assert_eq!(records.len(), id, "{}", sluice.stderr_text());
    let mut report: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut chars_checked = 0usize;
    for rec in &records {
        let names = rec.value["columnnames"].as_array().unwrap();
        let vals = rec.value["columnvalues"].as_array().unwrap();
        let row_id = vals[0].as_i64().unwrap();
        let (i, col) = names
            .iter()
            .enumerate()
            .skip(1)
            .find(|(i, _)| !vals[*i].is_null())
            .expect("one charset column is set");
        let col = col.as_str().unwrap();
        let server: String = db
            .query_first(format!(
                "SELECT CONVERT({col} USING utf8mb4) FROM {table} WHERE id = {row_id}"
            ))
            .await?
            .unwrap();
        let got = vals[i].as_str().unwrap_or_default();
        chars_checked += server.chars().count();
        if got != server {
            let diffs: Vec<String> = server
                .chars()
                .zip(got.chars())
                .filter(|(a, b)| a != b)
                .take(8)
                .map(|(a, b)| format!("U+{:04X}→U+{:04X}", a as u32, b as u32))
                .collect();
            report.entry(col.to_owned()).or_default().push(format!(
                "row {row_id}: {} vs {} chars; first differences (server→sluice): {}",
                server.chars().count(),
                got.chars().count(),
                diffs.join(" ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} charsets differ:\n{:#?}",
        report.len(),
        report
    );
    eprintln!(
        "{chars_checked} characters in {} character sets match the server",
        charsets.len()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
