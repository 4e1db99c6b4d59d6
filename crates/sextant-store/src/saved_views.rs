//! Saved views of the web UI: long page states under short ids.

use sha2::{Digest, Sha256};

use crate::db;
use crate::{now_ms, Result, Store, StoreError};

/// The longest page state a view keeps (a comparison of a thousand runs
/// with its chart settings is about 40 KB).
pub const MAX_VIEW_TARGET: usize = 256 * 1024;

/// The id of a view of `target`, `length` hex digits of its SHA-256: the
/// same state always gets the same link.
fn view_id(target: &str, length: usize) -> String {
    let digest = Sha256::digest(target.as_bytes());
    digest
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>()[..length]
        .to_string()
}

impl Store {
    /// Keeps `target` (a path with its query, on this server) and returns its
    /// id. Targets that are not a local path are refused, so a short link can
    /// never send anyone to another site.
    pub async fn save_view(&self, target: &str, created_by: &str) -> Result<String> {
        if !target.starts_with('/') || target.starts_with("//") || target.starts_with("/\\") {
            return Err(StoreError::InvalidInput(
                "A view's target must be a path on this server, starting with a single '/'".into(),
            ));
        }
        if target.len() > MAX_VIEW_TARGET {
            return Err(StoreError::InvalidInput(format!(
                "A view's target is at most {MAX_VIEW_TARGET} bytes, got {}",
                target.len()
            )));
        }
        if target.chars().any(char::is_control) {
            return Err(StoreError::InvalidInput(
                "A view's target may not contain control characters".into(),
            ));
        }
        // 12 hex digits; on the (astronomically rare) clash with another
        // target, the full digest.
        for length in [12, 64] {
            let id = view_id(target, length);
            sqlx::query(
                "INSERT INTO saved_views (view_id, target, created_by, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(target)
            .bind(created_by)
            .bind(now_ms())
            .execute(&self.write_pool)
            .await?;
            // Read back on the writing connection: the row is there now.
            let stored = sqlx::query("SELECT target FROM saved_views WHERE view_id = $1")
                .bind(&id)
                .fetch_one(&self.write_pool)
                .await?;
            if db::text(&stored, "target")? == target {
                return Ok(id);
            }
        }
        Err(StoreError::Conflict(
            "Could not store the view; try again".into(),
        ))
    }

    /// The target saved under `id`, if any.
    pub async fn view(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT target FROM saved_views WHERE view_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| db::text(&row, "target")).transpose()
    }
}
