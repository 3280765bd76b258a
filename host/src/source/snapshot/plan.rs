//! The start-up decision: stream, take a new snapshot, or resume one (`docs/SNAPSHOT.md` §5).
//!
//! Design note: pure. It looks only at the settings and at the two state files, so that every
//! row of the decision table has a unit test. `FORCE_SNAPSHOT` counts on the first start of a
//! process only: a retry after a disconnect must never start the snapshot over, nor must a
//! crash loop with `FORCE_SNAPSHOT` left set restart a snapshot that is still running (it
//! resumes).

use crate::state::{BinlogPosition, SnapshotState, SnapshotStatus};

use super::SnapshotError;

/// What a life of the stages starts with.
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    /// Stream from the saved position (or the head, when there is none).
    Stream,
    /// A new snapshot. `supersedes`: a position file exists that it replaces.
    Fresh { supersedes: Option<BinlogPosition> },
    /// Continue a snapshot whose rows were partly delivered, streaming from `from` first.
    Resume {
        state: Box<SnapshotState>,
        from: BinlogPosition,
    },
}

/// The inputs of the decision.
#[derive(Debug)]
pub(crate) struct Inputs<'a> {
    pub(crate) initial: bool,
    /// A new snapshot even over a complete one: `FORCE_SNAPSHOT`, until this process has
    /// started its snapshot.
    pub(crate) force: bool,
    /// A snapshot in progress may be resumed: any snapshot setting is on
    /// (`INITIAL_SNAPSHOT`, `FORCE_SNAPSHOT`, `SNAPSHOT_WHEN_NEEDED`).
    pub(crate) resume: bool,
    /// A new snapshot whatever the file says: the saved position was purged
    /// (`SNAPSHOT_WHEN_NEEDED`), so neither streaming nor a resume's catch-up can work.
    pub(crate) restart: bool,
    pub(crate) snapshot: Option<SnapshotState>,
    pub(crate) position: Option<BinlogPosition>,
    /// The snapshot file's path, for messages.
    pub(crate) snapshot_file: &'a str,
    /// Exactly-once: the output holds rows of the snapshots with these ids (the last records'
    /// `sluice.snapshot.after`), delivered even if no acknowledgement was saved yet.
    pub(crate) kafka_holds: &'a [String],
}

/// Decides (see the module note and the table in `docs/SNAPSHOT.md` §5).
pub(crate) fn decide(i: Inputs<'_>) -> Result<Decision, SnapshotError> {
    if i.restart {
        return Ok(Decision::Fresh {
            supersedes: i.position,
        });
    }
    let wanted = i.initial || i.force;
    match i.snapshot {
        None if !wanted => Ok(Decision::Stream),
        None => Ok(Decision::Fresh {
            supersedes: i.position,
        }),
        Some(s) if s.status == SnapshotStatus::Complete => {
            if i.force {
                Ok(Decision::Fresh {
                    supersedes: i.position,
                })
            } else {
                Ok(Decision::Stream)
            }
        }
        Some(s) if !wanted && !i.resume => Err(SnapshotError::RunningButDisabled {
            file: i.snapshot_file.to_owned(),
            tables: s
                .tables
                .iter()
                .filter(|t| t.state != crate::state::TableStatus::Done)
                .map(|t| format!("{}.{}", t.schema, t.table))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        // Nothing saved as delivered, and nothing of it in Kafka either: start afresh.
        Some(s) if !s.delivered_any() && !i.kafka_holds.contains(&s.id) => Ok(Decision::Fresh {
            supersedes: i.position,
        }),
        Some(s) => {
            // The position file is written before any row is delivered (the epoch's point),
            // so it must be there; without it, the rows already published cannot be caught
            // up safely, and the snapshot starts over.
            match i.position {
                Some(from) => Ok(Decision::Resume {
                    state: Box::new(s),
                    from,
                }),
                None => Ok(Decision::Fresh { supersedes: None }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{TableProgress, TableStatus};

    fn pos(n: u64) -> BinlogPosition {
        BinlogPosition {
            file: "mysql-bin.000001".into(),
            pos: n,
            gtid: None,
            timestamp: 0,
        }
    }

    fn state(status: SnapshotStatus, table: TableStatus) -> SnapshotState {
        let mut s = SnapshotState::new(
            &pos(100),
            "db:3306".into(),
            vec![TableProgress {
                schema: "shop".into(),
                table: "orders".into(),
                key: vec!["id".into()],
                key_source: "primary".into(),
                key_sig: None,
                state: table,
                after: None,
                rows: 0,
                chunks: 0,
                reread: false,
            }],
        );
        s.status = status;
        s
    }

    fn decide_with(
        initial: bool,
        force: bool,
        snapshot: Option<SnapshotState>,
        position: Option<BinlogPosition>,
    ) -> Result<Decision, SnapshotError> {
        decide(Inputs {
            initial,
            force,
            resume: initial || force,
            restart: false,
            snapshot,
            position,
            snapshot_file: "/state/snapshot_shop_orders.json",
            kafka_holds: &[],
        })
    }

    #[test]
    fn without_a_snapshot_file() {
        assert_eq!(
            decide_with(false, false, None, Some(pos(7))).unwrap(),
            Decision::Stream
        );
        assert_eq!(
            decide_with(true, false, None, None).unwrap(),
            Decision::Fresh { supersedes: None }
        );
        // A position file from streaming without a snapshot: the snapshot supersedes it.
        assert_eq!(
            decide_with(false, true, None, Some(pos(7))).unwrap(),
            Decision::Fresh {
                supersedes: Some(pos(7))
            }
        );
    }

    #[test]
    fn a_complete_snapshot_is_repeated_only_when_forced() {
        let done = || Some(state(SnapshotStatus::Complete, TableStatus::Done));
        assert_eq!(
            decide_with(true, false, done(), Some(pos(9))).unwrap(),
            Decision::Stream
        );
        assert_eq!(
            decide_with(false, false, done(), Some(pos(9))).unwrap(),
            Decision::Stream
        );
        assert_eq!(
            decide_with(true, true, done(), Some(pos(9))).unwrap(),
            Decision::Fresh {
                supersedes: Some(pos(9))
            }
        );
    }

    #[test]
    fn a_running_snapshot_resumes_or_restarts_or_is_refused() {
        let running = |t| Some(state(SnapshotStatus::Running, t));
        // Nothing delivered yet: a fresh epoch.
        assert_eq!(
            decide_with(true, false, running(TableStatus::Pending), Some(pos(100))).unwrap(),
            Decision::Fresh {
                supersedes: Some(pos(100))
            }
        );
        // Rows delivered: resume, also with FORCE left set.
        for force in [false, true] {
            match decide_with(true, force, running(TableStatus::Reading), Some(pos(150))).unwrap() {
                Decision::Resume { from, .. } => assert_eq!(from, pos(150)),
                d => panic!("expected a resume, got {d:?}"),
            }
        }
        // Snapshots off, one in progress: refused with both ways out.
        let e = decide_with(false, false, running(TableStatus::Reading), Some(pos(150)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("INITIAL_SNAPSHOT=true"), "{e}");
        assert!(e.contains("snapshot_shop_orders.json"), "{e}");
        assert!(e.contains("shop.orders"), "{e}");
        // Started by FORCE_SNAPSHOT (now spent) or SNAPSHOT_WHEN_NEEDED: it resumes.
        let d = decide(Inputs {
            initial: false,
            force: false,
            resume: true,
            restart: false,
            snapshot: running(TableStatus::Reading),
            position: Some(pos(150)),
            snapshot_file: "f",
            kafka_holds: &[],
        })
        .unwrap();
        assert!(matches!(d, Decision::Resume { .. }), "{d:?}");
    }

    #[test]
    fn rows_in_kafka_resume_a_snapshot_that_saved_none() {
        let none_saved = state(SnapshotStatus::Running, TableStatus::Pending);
        let with = |kafka_holds| {
            decide(Inputs {
                initial: true,
                force: false,
                resume: true,
                restart: false,
                snapshot: Some(none_saved.clone()),
                position: Some(pos(100)),
                snapshot_file: "f",
                kafka_holds,
            })
            .unwrap()
        };
        let (both, other) = (
            ["another".to_owned(), none_saved.id.clone()],
            ["another".to_owned()],
        );
        assert!(matches!(with(&both), Decision::Resume { .. }));
        assert!(matches!(with(&other), Decision::Fresh { .. }));
        assert!(matches!(with(&[]), Decision::Fresh { .. }));
    }

    #[test]
    fn a_purged_position_restarts_whatever_the_file_says() {
        for snapshot in [
            None,
            Some(state(SnapshotStatus::Running, TableStatus::Reading)),
            Some(state(SnapshotStatus::Complete, TableStatus::Done)),
        ] {
            let d = decide(Inputs {
                initial: false,
                force: false,
                resume: true,
                restart: true,
                snapshot,
                position: Some(pos(150)),
                snapshot_file: "f",
                kafka_holds: &[],
            })
            .unwrap();
            assert_eq!(
                d,
                Decision::Fresh {
                    supersedes: Some(pos(150))
                }
            );
        }
    }
}
