//! The ElevenLabs stand-in (local/standins/elevenlabs.py) steered through its control endpoint:
//! each fault is set on a target of the test's own (a voice id, or the name of a voice to add),
//! so tests running beside it are never touched.

use serde_json::{Value, json};

use crate::unique;

/// How the stand-in answers requests for one target.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// 500 at once.
    Fail,
    /// No answer for a minute (past any timeout of ours).
    Hang,
    /// The answer after 1.5 s.
    Slow,
    /// 429 `system_busy` (ElevenLabs itself overloaded), every time.
    Busy,
    /// Streaming: half the chunks, then the connection drops.
    Cut,
    /// Streaming: 200 with no audio at all.
    Mute,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Hang => "hang",
            Self::Slow => "slow",
            Self::Busy => "busy",
            Self::Cut => "cut",
            Self::Mute => "mute",
        }
    }
}

/// What a stand-in account of a test's own allows; `None` keeps the stand-in's default (30 voice
/// slots, 50 requests at once, no character quota).
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_slots: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub characters: Option<u32>,
    /// How long each text-to-speech answer takes (holding its place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
}

/// How an account's text to speech went at the stand-in.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpeech {
    pub served: u32,
    /// 429 `too_many_concurrent_requests` answered.
    pub refused_busy: u32,
    /// The most requests in flight at once.
    pub peak_busy: u32,
}

pub struct ElevenLabsStandIn {
    pub(crate) base: url::Url,
}

impl ElevenLabsStandIn {
    async fn set(&self, target: &str, fault: Fault) {
        let url = self.base.join("_test/faults").unwrap();
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({ "target": target, "fault": fault.name() }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "the stand-in took the fault: {}", response.status());
    }

    /// A voice id, new to the stand-in, whose speech meets `fault`.
    pub async fn voice_that(&self, fault: Fault) -> String {
        let voice = unique(&format!("{}-voice-", fault.name()));
        self.set(&voice, fault).await;
        voice
    }

    /// A name for a new clone whose add at the stand-in meets `fault`.
    pub async fn clone_name_that(&self, fault: Fault) -> String {
        let name = unique(&format!("{}-clone-", fault.name()));
        self.set(&name, fault).await;
        name
    }

    /// How `account`'s text to speech went so far.
    pub async fn account_speech(&self, account: &str) -> AccountSpeech {
        let url = self.base.join(&format!("_test/accounts/{account}/speech")).unwrap();
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// What the stand-in received for `target` (a voice id; `add:{name}`; `delete:{voice id}`).
    pub async fn requests(&self, target: &str) -> Vec<Value> {
        let url = self.base.join(&format!("_test/requests/{target}")).unwrap();
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }
}
