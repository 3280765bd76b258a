//! Captured tables that are children of cascading foreign keys.
//!
//! Design note: neither MariaDB nor MySQL logs the child rows that `ON DELETE/UPDATE CASCADE`,
//! `SET NULL` or `SET DEFAULT` change; MariaDB writes only the child's TABLE_MAP. A captured
//! child therefore drifts from the table. `sluice check` and `sluice run` use
//! [`cascading_children`] to find such children before streaming; the processor stops where the
//! stream shows one may have been touched.

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
///
/// Read from `SHOW CREATE TABLE`, the server's own text: MariaDB hides
/// `information_schema.REFERENTIAL_CONSTRAINTS` from a user that has only SELECT (which is all a
/// CDC user needs), so a catalog query would find nothing and let the drift through.
pub async fn cascading_children(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<CascadingKey>, CatalogError> {
    let mut found = Vec::new();
    for (schema, table) in tables {
        let Some(ddl) = super::objects::show_create_table(conn, schema, table).await? else {
            continue;
        };
        let keys = foreign_keys(&ddl, schema).map_err(|line| {
            CatalogError::new(
                "a foreign key from SHOW CREATE TABLE",
                mysql_async::Error::Other(
                    format!(
                        "cannot read the foreign key `{line}` of {schema}.{table}, so Sluice \
                         cannot tell whether it cascades; please report this line"
                    )
                    .into(),
                ),
            )
        })?;
        found.extend(
            keys.into_iter()
                .filter(|k| cascades(&k.delete_rule) || cascades(&k.update_rule))
                .map(|mut k| {
                    k.child = (schema.clone(), table.clone());
                    k
                }),
        );
    }
    Ok(found)
}

fn cascades(rule: &str) -> bool {
    matches!(rule, "CASCADE" | "SET NULL" | "SET DEFAULT")
}

/// Every `CONSTRAINT … FOREIGN KEY` line of a `SHOW CREATE TABLE` text. Rules the server does
/// not print are its default, `RESTRICT`. `schema` is the parent's when the text names none.
/// A line that mentions a foreign key but cannot be read is an error (the line), never skipped:
/// a key missed here would let a cascading child through.
fn foreign_keys(ddl: &str, schema: &str) -> Result<Vec<CascadingKey>, String> {
    /// The backquoted names at the start of `s`, separated by `sep`, and the rest.
    fn names<'a>(mut s: &'a str, sep: &str) -> (Vec<String>, &'a str) {
        let mut out = Vec::new();
        while let Some(rest) = s.strip_prefix('`') {
            let mut name = String::new();
            let mut it = rest.char_indices();
            let mut end = rest.len();
            while let Some((i, c)) = it.next() {
                if c == '`' {
                    if rest[i + 1..].starts_with('`') {
                        name.push('`');
                        it.next();
                        continue;
                    }
                    end = i + 1;
                    break;
                }
                name.push(c);
            }
            out.push(name);
            s = &rest[end..];
            match s.strip_prefix(sep) {
                Some(r) => s = r,
                None => break,
            }
        }
        (out, s)
    }
    let rule = |line: &str, on: &str| {
        line.split_once(on)
            .map(|(_, r)| {
                [
                    "SET DEFAULT",
                    "SET NULL",
                    "NO ACTION",
                    "CASCADE",
                    "RESTRICT",
                ]
                .into_iter()
                .find(|w| r.starts_with(w))
                .unwrap_or("RESTRICT")
            })
            .unwrap_or("RESTRICT")
            .to_owned()
    };
    let mut keys = Vec::new();
    for line in ddl.lines().map(str::trim) {
        // The server prints a key as `CONSTRAINT name FOREIGN KEY …` (CHECK constraints share
        // the prefix; a column comment may mention the words anywhere).
        let is_key = (line.starts_with("CONSTRAINT ") && line.contains(" FOREIGN KEY "))
            || line.starts_with("FOREIGN KEY ");
        if !is_key {
            continue;
        }
        let parsed = (|| {
            let rest = line.strip_prefix("CONSTRAINT ")?;
            let (constraint, rest) = names(rest, "");
            let rest = rest.trim_start().strip_prefix("FOREIGN KEY (")?;
            let (columns, rest) = names(rest, ", ");
            let rest = rest.strip_prefix(") REFERENCES ")?;
            let (parent, _) = names(rest, ".");
            let parent = match parent.as_slice() {
                [db, t] => (db.clone(), t.clone()),
                [t] => (schema.to_owned(), t.clone()),
                _ => return None,
            };
            Some(CascadingKey {
                child: Default::default(),
                parent,
                constraint: constraint.into_iter().next()?,
                delete_rule: rule(line, " ON DELETE "),
                update_rule: rule(line, " ON UPDATE "),
                columns,
            })
        })();
        keys.push(parsed.ok_or_else(|| line.to_owned())?);
    }
    Ok(keys)
}

/// A captured table that `sluice run` will not capture as configured.
#[derive(Debug, thiserror::Error)]
pub enum CaptureRefusal {
    #[error(
        "{}.{} is the child of the foreign key {} on {}.{} (ON DELETE {}, ON UPDATE {}). Neither \
         MariaDB nor MySQL logs the child rows such a key changes, so Sluice's copy of {}.{} would \
         silently keep deleted and stale rows. Capture it only if the parent never deletes or \
         updates such keys, or if you accept the drift: set ACCEPT_FK_CASCADES=true (TOML \
         `mysql.accept_fk_cascades = true`); Sluice then logs the limitation at WARN, at start and \
         wherever the stream shows a cascade may have touched the table",
        key.child.0, key.child.1, key.constraint, key.parent.0, key.parent.1, key.delete_rule,
        key.update_rule, key.child.0, key.child.1
    )]
    Cascading { key: CascadingKey },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Checks the captured tables for what the binlog cannot follow: children of cascading foreign
/// keys are refused unless `accept_cascades` (then returned, for a warning). SEQUENCE objects are
/// returned too: their rows are never published, which the caller says at WARN.
pub(crate) async fn check_capturable(
    conn: &mut Conn,
    tables: &[(String, String)],
    accept_cascades: bool,
) -> Result<(Vec<CascadingKey>, Vec<(String, String)>), CaptureRefusal> {
    let sequences = super::objects::sequences_among(conn, tables).await?;
    let keys = cascading_children(conn, tables).await?;
    match keys.first() {
        Some(key) if !accept_cascades => Err(CaptureRefusal::Cascading { key: key.clone() }),
        _ => Ok((keys, sequences)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_foreign_keys_from_the_servers_text() {
        let ddl = "CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `a` int, `b` int,\n  \
            PRIMARY KEY (`id`),\n  KEY `k` (`a`),\n  \
            CONSTRAINT `fk_1` FOREIGN KEY (`a`, `b`) REFERENCES `p` (`x`, `y`) ON DELETE CASCADE,\n  \
            CONSTRAINT `fk``2` FOREIGN KEY (`b`) REFERENCES `other`.`q` (`id`) ON UPDATE SET NULL,\n  \
            CONSTRAINT `fk_3` FOREIGN KEY (`a`) REFERENCES `p` (`x`)\n) ENGINE=InnoDB";
        let keys = foreign_keys(ddl, "shop").unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].constraint, "fk_1");
        assert_eq!(keys[0].columns, vec!["a", "b"]);
        assert_eq!(keys[0].parent, ("shop".to_owned(), "p".to_owned()));
        assert_eq!(
            (keys[0].delete_rule.as_str(), keys[0].update_rule.as_str()),
            ("CASCADE", "RESTRICT")
        );
        assert_eq!(keys[1].constraint, "fk`2");
        assert_eq!(keys[1].parent, ("other".to_owned(), "q".to_owned()));
        assert_eq!(
            (keys[1].delete_rule.as_str(), keys[1].update_rule.as_str()),
            ("RESTRICT", "SET NULL")
        );
        assert_eq!(
            (keys[2].delete_rule.as_str(), keys[2].update_rule.as_str()),
            ("RESTRICT", "RESTRICT")
        );
    }
}
