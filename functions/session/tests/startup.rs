//! A cold start with a required variable missing fails at once, naming it.

use std::process::Command;

#[test]
fn a_missing_variable_stops_the_binary_and_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_session"))
        .env_clear()
        .envs([
            ("USERS_TABLE", "users"),
            ("RECORDINGS_TABLE", "recordings"),
            ("SUBSCRIPTIONS_TABLE", "subscriptions"),
            ("WEBHOOK_EVENTS_TABLE", "events"),
            ("AUDIO_BUCKET", "audio"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("APP_URL", "http://localhost:5173"),
            ("AUTH0_ISSUER", "https://tenant.auth0.com/"),
            ("AUTH0_CLIENT_ID", "client"),
            ("AUTH_CALLBACK_URL", "https://api.example.com/auth/callback"),
        ])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("configuration variable SESSIONS_TABLE is missing"), "{stderr}");
}
