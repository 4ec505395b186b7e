//! Table lock modes as `pg_locks` names them, and what each one blocks:
//! what a reader of the report needs to judge a lock at a glance.

use std::fmt;

/// A table-level lock mode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `SELECT`
    AccessShare,
    /// `SELECT FOR UPDATE/SHARE`
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`
    RowExclusive,
    /// `VACUUM`, `ANALYZE`, `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`
    ShareUpdateExclusive,
    /// `CREATE INDEX`
    Share,
    /// `CREATE TRIGGER`, some `ALTER TABLE` forms
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`
    Exclusive,
    /// Most `ALTER TABLE` forms, `DROP`, `TRUNCATE`, `VACUUM FULL`
    AccessExclusive,
}

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The mode `pg_locks` names `name` (e.g. `AccessExclusiveLock`).
    pub fn from_pg(name: &str) -> Option<LockMode> {
        Self::ALL.into_iter().find(|m| m.pg_name() == name)
    }

    /// The name `pg_locks` uses.
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Whether holding `self` blocks a request for `other` (the conflict
    /// table of the PostgreSQL documentation, "Table-Level Locks").
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let conflicts: &[LockMode] = match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
            Share => &[RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareRowExclusive => {
                &[RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            Exclusive => {
                &[RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            AccessExclusive => &Self::ALL,
        };
        conflicts.contains(&other)
    }

    /// What the application feels while the lock is held (or queued).
    pub fn blocks(self) -> &'static str {
        if self.conflicts_with(LockMode::AccessShare) {
            "blocks reads and writes"
        } else if self.conflicts_with(LockMode::RowExclusive) {
            "blocks writes"
        } else {
            "blocks neither reads nor writes"
        }
    }
}

impl serde::Serialize for LockMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.pg_name())
    }
}

impl<'de> serde::Deserialize<'de> for LockMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        LockMode::ALL
            .into_iter()
            .find(|m| m.pg_name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("no lock mode {name}")))
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pg_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_table_is_symmetric() {
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn what_the_application_feels() {
        assert_eq!(LockMode::AccessExclusive.blocks(), "blocks reads and writes");
        assert_eq!(LockMode::Share.blocks(), "blocks writes");
        assert_eq!(LockMode::ShareUpdateExclusive.blocks(), "blocks neither reads nor writes");
        assert_eq!(LockMode::from_pg("RowExclusiveLock"), Some(LockMode::RowExclusive));
    }
}
