//! MySQL-only code paths, exercised with real MySQL binlog files from
//! `shared/fixtures/mysql-binlogs/`: MySQL GTIDs, compressed transaction payloads, binary JSON,
//! v2 rows events, ENUM/SET labels from full row metadata, and clean errors on corrupt input.

use std::path::PathBuf;

use sluice::encode::encode_value;
use sluice::event::{ChangeEvent, Value};
use sluice::source::file::read_binlog_file;
use sluice::source::{Batch, TableFilter};

fn fixture(name: &str) -> PathBuf {
    sluice_tests::root()
        .join("tests/fixtures/mysql-binlogs")
        .join(name)
}

fn events(name: &str) -> Vec<ChangeEvent> {
    let batches: Vec<Batch> = read_binlog_file(&fixture(name), TableFilter::all())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    batches.into_iter().flat_map(|b| b.events).collect()
}

fn json(ev: &ChangeEvent) -> serde_json::Value {
    let mut out = Vec::new();
    encode_value(ev, &mut out);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn every_fixture_reads_or_fails_cleanly() {
    let dir = fixture("");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect("shared/fixtures/mysql-binlogs") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".md") || name.starts_with("LICENSE") {
            continue;
        }
        // Never a panic: either batches or an error that names the file.
        match std::panic::catch_unwind(|| read_binlog_file(&path, TableFilter::all())) {
            Ok(Ok(batches)) => {
                read += 1;
                let rows: usize = batches.iter().map(|b| b.events.len()).sum();
                eprintln!("{name}: {} batches, {rows} rows", batches.len());
                for b in &batches {
                    if let Some(cp) = &b.checkpoint {
                        assert!(cp.pos >= 4, "{name}: checkpoint {cp}");
                    }
                }
            }
            Ok(Err(e)) => {
                assert!(
                    e.to_string().contains(&name),
                    "{name}: the error names the file: {e}"
                );
                eprintln!("{name}: error: {e}");
            }
            Err(_) => panic!("{name}: reading panicked"),
        }
    }
    assert!(read >= 25, "most fixtures are valid binlogs; read {read}");
}

#[test]
fn truncated_and_corrupt_files_never_yield_partial_transactions() {
    // A corrupt event is an error that names the file and the offset.
    let err =
        read_binlog_file(&fixture("corrupt-relay-bin.000624"), TableFilter::all()).unwrap_err();
    assert!(
        err.to_string().contains("corrupt-relay-bin.000624:"),
        "{err}"
    );
    // A file cut inside an event ends where the last whole event ends (a binlog still being
    // written looks like this); nothing of an unfinished transaction comes out.
    let batches = read_binlog_file(
        &fixture("binlog_truncated_event.000001"),
        TableFilter::all(),
    )
    .unwrap();
    assert!(batches.iter().all(|b| b.checkpoint.is_some()));
}

#[test]
fn images_without_every_column_are_refused_with_the_fix() {
    // These files were written with binlog_row_image=MINIMAL: publishing them would invent data.
    for name in ["update-full-row.binlog", "minimal_row_metadata.000001"] {
        let err = read_binlog_file(&fixture(name), TableFilter::all()).unwrap_err();
        assert!(
            err.to_string().contains("binlog_row_image must be FULL"),
            "{name}: {err}"
        );
    }
}

#[test]
fn mysql_gtids_head_their_transactions() {
    let evs = events("binlog_56_gtid_reserved_word.000001");
    assert!(!evs.is_empty());
    for ev in &evs {
        let g = ev
            .position
            .gtid
            .as_deref()
            .expect("every row of a GTID transaction carries it");
        let (uuid, gno) = g.rsplit_once(':').unwrap();
        assert_eq!(uuid.len(), 36, "{g}");
        assert!(gno.parse::<u64>().is_ok(), "{g}");
    }
    let tagged = events("binlog_transaction_with_GTID_TAG.000001");
    assert!(
        tagged.iter().all(|e| e
            .position
            .gtid
            .as_deref()
            .is_some_and(|g| g.matches(':').count() == 2)),
        "tagged GTIDs are uuid:tag:gno"
    );
}

#[test]
fn compressed_transactions_decode() {
    let evs = events("transaction_compression.000001");
    assert!(
        !evs.is_empty(),
        "rows inside TRANSACTION_PAYLOAD events are decoded"
    );
    let batches = read_binlog_file(
        &fixture("transaction_compression.000001"),
        TableFilter::all(),
    )
    .unwrap();
    let size = std::fs::metadata(fixture("transaction_compression.000001"))
        .unwrap()
        .len();
    for cp in batches.iter().filter_map(|b| b.checkpoint.as_ref()) {
        assert!(
            cp.pos <= size,
            "checkpoints are file offsets: {cp} within {size} bytes"
        );
    }
}

#[test]
fn binary_json_decodes_to_json_values() {
    let evs = events("json-opaque.binlog");
    let json_values: Vec<&serde_json::Value> = evs
        .iter()
        .flat_map(|e| e.after.iter())
        .filter_map(|v| {
            if let Value::Json(j) = v {
                Some(j)
            } else {
                None
            }
        })
        .collect();
    assert!(!json_values.is_empty(), "json.binlog has JSON columns");
    assert!(json_values.iter().any(|v| v.is_object() || v.is_array()));
    // And they serialize as the JSON value itself, not a string.
    let ev = evs
        .iter()
        .find(|e| {
            e.after
                .iter()
                .any(|v| matches!(v, Value::Json(j) if j.is_object()))
        })
        .unwrap();
    let out = json(ev);
    assert!(out["columnvalues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.is_object()));
}

#[test]
fn enum_and_set_labels_come_from_row_metadata() {
    let evs = events("mysql-enum-string-set.000001");
    assert!(!evs.is_empty());
    let strings: Vec<&str> = evs
        .iter()
        .flat_map(|e| e.after.iter())
        .filter_map(|v| {
            if let Value::String(s) = v {
                Some(s.as_str())
            } else {
                None
            }
        })
        .collect();
    for label in ["var1", "variant2", "one,three", "two,four"] {
        assert!(strings.contains(&label), "{label} in {strings:?}");
    }
}
