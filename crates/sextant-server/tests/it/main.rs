//! HTTP tests against a real server on a random port, once on SQLite and
//! once on PostgreSQL (when `SEXTANT_TEST_POSTGRES_URL` points at a server;
//! under CI it must).

mod helpers;

mod alerting;
mod artifacts;
mod bad_input;
mod durability;
mod experiments;
mod feedback;
mod governance;
mod leader;
mod mlflow_details;
mod monitoring;
mod registry;
mod runs;
mod search;
mod security;
mod serving;
mod ui;

/// Generates `sqlite::name` and `postgres::name` tests from
/// `async fn name(app: TestApp)` bodies.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_postgres_app().await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// `backend_tests!` with authentication on (the `admin` user has
/// `helpers::ADMIN_PASSWORD`).
#[macro_export]
macro_rules! auth_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, sextant_server::Auth::Enabled).await;
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_postgres_app_with(sextant_server::Auth::Enabled).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}
