use tracing_subscriber::EnvFilter;

/// JSON logs, one object per line. The Lambda runtime opens a span per invocation carrying its
/// `requestId`, which every line logged inside it includes. `RUST_LOG` tunes the level.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .init();
}

pub mod metrics;
