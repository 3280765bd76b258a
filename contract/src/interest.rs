//! Which events and columns a transform sees: the host selects with it, and the SDK's harness
//! selects the same way.

/// The tables and columns a transform needs to see (its `init` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    /// `schema.table` or `schema.*`; empty: every table.
    pub tables: Vec<String>,
    /// Column names whose values the transform sees; `None`: every column.
    pub columns: Option<Vec<String>>,
}

impl Interest {
    /// Every table and column.
    pub fn all() -> Self {
        Interest::default()
    }

    /// Only these columns (of every table).
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Interest {
            tables: Vec::new(),
            columns: Some(columns.into_iter().map(Into::into).collect()),
        }
    }

    /// No column values at all (for transforms that decide by table only).
    pub fn no_columns() -> Self {
        Interest {
            tables: Vec::new(),
            columns: Some(Vec::new()),
        }
    }

    /// Only these tables (`schema.table` or `schema.*`).
    pub fn with_tables<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Self {
        self.tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// Whether events of `schema.table` reach the transform. A name without a dot matches a
    /// table of that name in any schema.
    pub fn matches_table(&self, schema: &str, table: &str) -> bool {
        self.tables.is_empty()
            || self.tables.iter().any(|t| match t.split_once('.') {
                Some((s, "*")) => s == schema,
                Some((s, n)) => s == schema && n == table,
                None => t == table,
            })
    }

    /// The projection of `columns` this interest asks for: indexes in table order.
    pub fn projection(&self, columns: &[String]) -> Vec<u32> {
        match &self.columns {
            None => (0..columns.len() as u32).collect(),
            Some(want) => (0..columns.len() as u32)
                .filter(|&i| want.iter().any(|c| c == &columns[i as usize]))
                .collect(),
        }
    }

    /// The projection for `schema.table`, or `None` when its events do not reach the transform.
    pub fn plan(&self, schema: &str, table: &str, columns: &[String]) -> Option<Vec<u32>> {
        self.matches_table(schema, table)
            .then(|| self.projection(columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_columns() {
        let cols: Vec<String> = ["id", "email", "name"].map(String::from).to_vec();
        let i = Interest::columns(["name", "id"]).with_tables(["shop.*", "crm.users", "audit"]);
        assert!(i.matches_table("shop", "orders"));
        assert!(i.matches_table("crm", "users"));
        assert!(!i.matches_table("crm", "leads"));
        assert!(i.matches_table("any", "audit"));
        assert_eq!(i.plan("shop", "orders", &cols), Some(vec![0, 2]));
        assert_eq!(i.plan("crm", "leads", &cols), None);
        assert_eq!(Interest::all().projection(&cols), vec![0, 1, 2]);
        assert!(Interest::no_columns().projection(&cols).is_empty());
    }
}
