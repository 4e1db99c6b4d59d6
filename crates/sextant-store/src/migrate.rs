//! Versioned migrations, applied at start-up.
//!
//! Both backends carry the same list of versions; a test checks that the
//! two directories agree. Migrations are only ever added, never edited.

use sqlx::AnyPool;

use crate::{now_ms, Backend, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "governance",
        sqlite: include_str!("../migrations/sqlite/0002_governance.sql"),
        postgres: include_str!("../migrations/postgres/0002_governance.sql"),
    },
    Migration {
        version: 3,
        name: "serving",
        sqlite: include_str!("../migrations/sqlite/0003_serving.sql"),
        postgres: include_str!("../migrations/postgres/0003_serving.sql"),
    },
    Migration {
        version: 4,
        name: "monitoring",
        sqlite: include_str!("../migrations/sqlite/0004_monitoring.sql"),
        postgres: include_str!("../migrations/postgres/0004_monitoring.sql"),
    },
    Migration {
        version: 5,
        name: "ui",
        sqlite: include_str!("../migrations/sqlite/0005_ui.sql"),
        postgres: include_str!("../migrations/postgres/0005_ui.sql"),
    },
    Migration {
        version: 6,
        name: "arm reports",
        sqlite: include_str!("../migrations/sqlite/0006_arm_reports.sql"),
        postgres: include_str!("../migrations/postgres/0006_arm_reports.sql"),
    },
    Migration {
        version: 7,
        name: "validation",
        sqlite: include_str!("../migrations/sqlite/0007_validation.sql"),
        postgres: include_str!("../migrations/postgres/0007_validation.sql"),
    },
];

/// Applies every migration newer than the database, each in its own
/// transaction. On PostgreSQL an advisory lock serialises replicas that
/// start at the same time.
pub(crate) async fn apply(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock(7391001)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_locked(&mut conn, backend).await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7391001)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_locked(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS sextant_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM sextant_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let current = current.unwrap_or(0);
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applying migration"
        );
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO sextant_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn versions(dir: &str) -> BTreeSet<String> {
        // Where `cargo test` runs us (a binary may be reused from another checkout).
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let path = std::path::Path::new(&root).join("migrations").join(dir);
        std::fs::read_dir(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_migrations_and_all_are_embedded() {
        let sqlite = versions("sqlite");
        assert_eq!(
            sqlite,
            versions("postgres"),
            "migrations/sqlite and migrations/postgres must hold the same files"
        );
        assert_eq!(
            sqlite.len(),
            super::MIGRATIONS.len(),
            "every migration file must be listed in MIGRATIONS"
        );
        for (idx, migration) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(
                migration.version,
                idx as i64 + 1,
                "versions are consecutive from 1"
            );
        }
    }
}
