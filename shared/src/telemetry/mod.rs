use tracing::level_filters::LevelFilter;
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

/// JSON logs, one object per line. The Lambda runtime opens a span per invocation carrying its
/// `requestId`, which every line logged inside it includes.
pub fn init() {
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    tracing_subscriber::registry().with(format).with(filter(std::env::var("RUST_LOG").ok().as_deref())).init();
}

/// `RUST_LOG`: a level, and levels per module (`warn,voice_core=debug`); info when unset or
/// unreadable. Targets, not an EnvFilter: the same syntax without span filters, and without the
/// regex engine an EnvFilter links.
fn filter(directives: Option<&str>) -> Targets {
    directives.and_then(|text| text.parse().ok()).unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

pub mod metrics;

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn rust_log_sets_the_default_and_per_module_levels() {
        let unset = filter(None);
        assert!(unset.would_enable("voice_core::app", &Level::INFO) && !unset.would_enable("x", &Level::DEBUG));
        let tuned = filter(Some("warn,voice_core::flows=debug"));
        assert!(!tuned.would_enable("voice_core::app", &Level::INFO));
        assert!(tuned.would_enable("voice_core::flows::voice", &Level::DEBUG));
        let unreadable = filter(Some("voice_core=loud"));
        assert!(
            unreadable.would_enable("voice_core", &Level::INFO)
                && !unreadable.would_enable("voice_core", &Level::DEBUG)
        );
    }
}
