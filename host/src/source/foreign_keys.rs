//! Captured tables that are children of cascading foreign keys.
//!
//! Design note: neither MariaDB nor MySQL logs the child rows that `ON DELETE/UPDATE CASCADE`,
//! `SET NULL` or `SET DEFAULT` change; MariaDB writes only the child's TABLE_MAP. A captured
//! child therefore drifts from the table. `sluice check` and `sluice run` use
//! [`cascading_children`] to find such children before streaming; the processor stops where the
//! stream shows one may have been touched.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::objects::CatalogError;

/// A foreign key whose actions change a captured child's rows without row events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadingKey {
    pub child: (String, String),
    pub parent: (String, String),
    pub constraint: String,
    /// `DELETE_RULE` and `UPDATE_RULE` as the catalog says them (`CASCADE`, `SET NULL`, …).
    pub delete_rule: String,
    pub update_rule: String,
    /// The child's columns, in key order.
    pub columns: Vec<String>,
}

/// The foreign keys of `tables` (as children) whose delete or update rule is `CASCADE`,
/// `SET NULL` or `SET DEFAULT`.
pub async fn cascading_children(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<CascadingKey>, CatalogError> {
    let mut found = Vec::new();
    for (schema, table) in tables {
        let rows: Vec<(String, String, String, String, String, String)> = conn
            .exec(
                "SELECT rc.CONSTRAINT_NAME, rc.UNIQUE_CONSTRAINT_SCHEMA, rc.REFERENCED_TABLE_NAME, \
                        rc.DELETE_RULE, rc.UPDATE_RULE, k.COLUMN_NAME \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
                 JOIN information_schema.KEY_COLUMN_USAGE k \
                   ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA \
                  AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME \
                  AND k.TABLE_NAME = rc.TABLE_NAME \
                 WHERE rc.CONSTRAINT_SCHEMA = ? AND rc.TABLE_NAME = ? \
                   AND (rc.DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
                     OR rc.UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT')) \
                 ORDER BY rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
                (schema, table),
            )
            .await
            .map_err(|source| CatalogError::new("information_schema.REFERENTIAL_CONSTRAINTS", source))?;
        for (constraint, pschema, ptable, delete_rule, update_rule, column) in rows {
            match found.last_mut() {
                Some(CascadingKey {
                    child,
                    constraint: c,
                    columns,
                    ..
                }) if *c == constraint && child.0 == *schema && child.1 == *table => {
                    columns.push(column)
                }
                _ => found.push(CascadingKey {
                    child: (schema.clone(), table.clone()),
                    parent: (pschema, ptable),
                    constraint,
                    delete_rule,
                    update_rule,
                    columns: vec![column],
                }),
            }
        }
    }
    Ok(found)
}
