//! The loopback ceiling: what this machine and wrk manage with an HTTP
//! server that does no work. Any `POST` reads the whole body and answers
//! the same small JSON (an OIP v2 inference response of two
//! probabilities); `GET /health` and `GET /v2/health/ready` answer 200.
//! Two tokio worker threads, `TCP_NODELAY` on every connection, as Sextant.
//!
//!     sextant-bench-hello [--host 127.0.0.1] [--port 0]
//!
//! Prints `listening on HOST:PORT` once bound (port 0 picks a free one),
//! and stops on SIGINT or SIGTERM.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use axum::Router;

const ANSWER: &str = r#"{"model_name":"hello","outputs":[{"name":"predict_proba","shape":[1,2],"datatype":"FP64","data":[0.5,0.5]}]}"#;

async fn infer(body: Bytes) -> impl IntoResponse {
    // The body is read in full (the extractor), as a real server would.
    std::hint::black_box(body.len());
    ([(header::CONTENT_TYPE, "application/json")], ANSWER)
}

async fn fallback(method: axum::http::Method, body: Bytes) -> axum::response::Response {
    if method == axum::http::Method::POST {
        infer(body).await.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port = "0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--host" => host = args.next().expect("--host needs a value"),
            "--port" => port = args.next().expect("--port needs a value"),
            other => {
                eprintln!(
                    "usage: sextant-bench-hello [--host H] [--port P] (unknown argument {other})"
                );
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(format!("{host}:{port}"))
            .await
            .expect("bind");
        println!(
            "listening on {}",
            listener.local_addr().expect("local address")
        );
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new()
            .route("/health", get(|| async { "" }))
            .route("/v2/health/ready", get(|| async { "" }))
            .route("/", get(|| async { "hello" }))
            .route("/v2/models/{name}/infer", any(fallback))
            .fallback(fallback);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .expect("serve");
    });
}
