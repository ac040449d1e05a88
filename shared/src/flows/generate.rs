//! Generating speech: one conditional write reserving the quota unit, then ElevenLabs, S3 and the
//! recording row. Any failure after the reservation gives the unit back and removes what was
//! already written.
//!
//! Time budget: everything happens before the invocation's deadline. ElevenLabs gets what is left
//! once storing the audio and giving the unit back are provided for; a step that cannot finish
//! in time is not started; the whole production is cut off with time left to give the unit back,
//! so a Lambda timeout never strands a unit.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use lambda_http::lambda_runtime::streaming::{Body as StreamBody, Sender};

use crate::{
    clock::{Deadline, timestamp, unix_ms},
    config::VoiceSettings,
    domain::{
        allowance::Allowance,
        audio::{AudioType, RecordingSource},
        generation::Generation,
        ids::{ElevenLabsVoiceId, RecordingId, UserId, random_bytes},
        overage::dollars,
        push::Event,
        usage::{AlertOf, Usage, UsageAlert, UsagePeriod},
        user::User,
        workspaces::{Permission, WorkspaceId},
    },
    error::ApiError,
    flows::{
        api_keys,
        billing_alerts::Notices,
        elevenlabs_accounts,
        overage::{Metering, SWEEP_AFTER},
        push::Push,
        voice_slots::VoiceSlots,
        voices::{Speaker, resolve_for_speech},
        workspaces::member_who_can,
    },
    store::{
        admission::{Gates, Place},
        api_keys::{ApiKeys, KeyCharacters, KeyMeta},
        audio::AudioStore,
        recordings::{Recording, Recordings},
        usage_events::{UsageEvent, UsageEvents},
        users::{Counters, Refused, Reservation, Units, Users},
        voices::{Voice, Voices},
        workspaces::{Workspace, Workspaces},
    },
    telemetry::metrics,
    upstream::{
        elevenlabs::{Account, Accounts, Speech, UpstreamError},
        email::UsageAlertEmail,
    },
};

/// Kept back at the end of every generation to give the unit back and answer.
const GIVE_BACK: Duration = Duration::from_secs(1);
/// What storing the audio takes: the S3 put, the recording row, the presigned URL.
const STORE: Duration = Duration::from_secs(2);
/// Less time than this for ElevenLabs is not worth starting.
const MIN_SPEECH: Duration = Duration::from_secs(1);

/// Why a generation could not count on workspace `name`'s pool of `limit`.
fn pool_refusal(refused: Refused, name: &str, limit: u64) -> ApiError {
    match refused {
        Refused::Limit(_) => {
            metrics::count("QuotaDenials", ("Tier", "TEAM"));
            ApiError::LimitReached(format!(
                "the workspace {name} has used all {limit} generations of its TEAM pool this month"
            ))
        }
        // Removed from the workspace (or it deleted) since the membership was read: as if never
        // a member.
        Refused::Gone(Counters::Share(..) | Counters::Pool(_)) => ApiError::not_found("workspace"),
        other => other.into(),
    }
}

fn out_of_time(why: &str) -> ApiError {
    ApiError::Upstream { service: "ElevenLabs", temporary: true, source: anyhow::anyhow!("{why}") }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub recording_id: RecordingId,
    pub audio_url: String,
    /// The caller's own plan's usage.
    pub usage: Usage,
    /// A generation counted on a workspace's pool: the pool's use now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolUse>,
}

/// A workspace's pooled allowance as a generation left it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUse {
    pub workspace_id: WorkspaceId,
    /// `YYYY-MM`.
    pub period: String,
    pub used: u64,
    pub limit: u64,
}

/// What a generation reads and writes.
#[derive(Clone, Copy)]
pub struct Generator<'a> {
    pub users: &'a Users,
    /// Whose membership a generation in a workspace needs.
    pub workspaces: &'a Workspaces,
    pub voices: &'a Voices,
    pub recordings: &'a Recordings,
    pub audio: &'a AudioStore,
    /// Where speech is made: the clone's account, or the least busy one for a premade voice.
    pub accounts: &'a Accounts,
    /// Keeps every instance's requests within each account's concurrency, by tier.
    pub gates: &'a Gates,
    pub settings: &'a VoiceSettings,
    pub usage_events: &'a UsageEvents,
    /// API keys' monthly character budgets.
    pub api_keys: &'a ApiKeys,
    /// Stripe's meter for generations past the allowance; None offers no overage.
    pub metering: Option<Metering<'a>>,
    /// Usage-alert emails, each sent once.
    pub notices: Notices<'a>,
    /// Where an alert email sends the user (the account page).
    pub account_url: &'a str,
    /// Live updates: each counted generation tells the person's other tabs its usage.
    pub push: Option<Push<'a>>,
}

impl<'a> Generator<'a> {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn generate(
        &self,
        user: &User,
        key: Option<&KeyMeta>,
        request: Generation,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<Generated, ApiError> {
        let request = in_keys_workspace(request, key)?;
        // Before the quota: a voice the caller may not use costs nothing and reaches no one.
        // Boxed, as the reservation below: inline, the futures outgrow a debug build's stack.
        let (speaker, pool) = Box::pin(self.speaker(user, &request)).await?;
        // The same request made before: its audio is copied, with no quota and no ElevenLabs.
        let cached = AudioStore::cache_key(&user.id, &request.content_key(&user.id, user.tier.rules().tts_model));
        if let Some(generated) = self.repeat_from_cache(user, &request, &cached, now).await? {
            return Ok(generated);
        }
        if deadline.leaving(GIVE_BACK + STORE) < MIN_SPEECH {
            return Err(out_of_time("the request has too little time left to generate speech"));
        }
        let reservation = Box::pin(self.reserve(user, key, &request, pool.as_ref(), now)).await?;
        let overage = self.overage_of(user, &reservation);

        let produced = tokio::time::timeout(
            deadline.leaving(GIVE_BACK),
            self.produce(user, &request, &speaker, &cached, overage, now, deadline),
        )
        .await
        .unwrap_or_else(|_| Err(out_of_time("the generation ran out of time")));
        match produced {
            Ok((recording_id, audio_url)) => {
                let (usage, pool) = self.commit(user, reservation, now, deadline).await;
                Ok(Generated { recording_id, audio_url, usage, pool })
            }
            Err(error) => {
                reservation.give_back_within(deadline).await;
                Err(error)
            }
        }
    }

    /// Who the request speaks as, and the workspace whose pool it counts on. In a workspace:
    /// the caller's membership, read now, must grant `generate`; its shared library's voices
    /// come before the caller's own; while its TEAM is live the generation counts on its pool,
    /// else on the caller's own plan.
    async fn speaker(&self, user: &User, request: &Generation) -> Result<(Speaker, Option<Workspace>), ApiError> {
        let elevenlabs = &self.accounts.primary().client;
        let Some(workspace) = &request.workspace else {
            return Ok((resolve_for_speech(self.voices, elevenlabs, &[&user.id], &request.voice_id).await?, None));
        };
        member_who_can(self.workspaces, workspace, &user.id, Permission::Generate).await?;
        let library = UserId::library_of(workspace);
        let owners = [&library, &user.id];
        let (speaker, read) = tokio::join!(
            resolve_for_speech(self.voices, elevenlabs, &owners, &request.voice_id),
            self.workspaces.get(workspace)
        );
        let pool = read?.filter(|w| w.pool().is_some());
        Ok((speaker?, pool))
    }

    /// Takes the generation's quota unit and counts its characters (LIMIT_REACHED past the
    /// month's allowance and what the user's overage cap pays for), and the characters from the
    /// budget of the API key it came with, if that has one (first: a key past its budget touches
    /// no quota).
    async fn reserve(
        &self,
        user: &User,
        key: Option<&KeyMeta>,
        request: &Generation,
        pool: Option<&Workspace>,
        now: OffsetDateTime,
    ) -> Result<Hold<'a>, ApiError> {
        let characters = request.text.chars().count() as u64;
        let key_characters = match key {
            Some(key) => api_keys::take_characters(self.api_keys, key, characters, now).await?,
            None => None,
        };
        let reserved = match pool {
            None => self.reserve_units(user, characters, now).await.map(|units| (units, None)),
            Some(workspace) => self.reserve_pooled(user, workspace, characters, now).await,
        };
        match reserved {
            Ok((units, pooled)) => Ok(Hold { units, pooled, key_characters }),
            Err(refused) => {
                if let Some(held) = key_characters
                    && let Err(error) = held.give_back().await
                {
                    tracing::warn!(error = format!("{error:#}"), "the key's characters could not be given back");
                }
                Err(refused)
            }
        }
    }

    /// Takes the generation's unit from the workspace's pool (LIMIT_REACHED when the month's
    /// pool is used up: no overage, no fallback to the caller's plan), counted in their share.
    async fn reserve_pooled(
        &self,
        user: &User,
        workspace: &Workspace,
        characters: u64,
        now: OffsetDateTime,
    ) -> Result<(Reservation<'a>, Option<Pooled<'a>>), ApiError> {
        let limit = workspace.pool().unwrap_or(0);
        let units = [Units::one(Allowance::Recordings), Units::of(Allowance::Characters, characters)];
        let id = &workspace.workspace_id;
        let period = UsagePeriod::containing(now);
        let reserved = self.users.reserve_pooled(id, &user.id, user.tier, limit, &units, period).await;
        let (pool, share) = reserved.map_err(|refused| pool_refusal(refused, &workspace.name, limit))?;
        Ok((pool, Some(Pooled { workspace: id.clone(), limit, share })))
    }

    async fn reserve_units(
        &self,
        user: &User,
        characters: u64,
        now: OffsetDateTime,
    ) -> Result<Reservation<'a>, ApiError> {
        let period = UsagePeriod::containing(now);
        let units = [Units::one(Allowance::Recordings), Units::of(Allowance::Characters, characters)];
        let granted = user.granted_recordings(period);
        let overage = self.cap_units(user);
        let reserved = self.users.reserve(&user.id, user.tier, granted.saturating_add(overage), &units, period).await;
        reserved.map_err(|refused| match refused {
            Refused::Limit(refusal) => {
                metrics::count("QuotaDenials", ("Tier", user.tier.as_str()));
                match (overage, allowance(user, period)) {
                    (1.., Some(allowance)) => {
                        ApiError::LimitReached(user.overage_cap.reached(user.tier, u64::from(allowance)))
                    }
                    _ => Refused::Limit(refusal).into(),
                }
            }
            other => other.into(),
        })
    }

    /// The generation is done: its units stay counted, and the alert its count reached, if any,
    /// is emailed. The caller's usage, and the pool's when it counted there.
    async fn commit(
        &self,
        user: &User,
        reservation: Hold<'_>,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> (Usage, Option<PoolUse>) {
        metrics::count("Generations", ("Tier", user.tier.as_str()));
        if let Some(pooled) = &reservation.pooled {
            let pool = PoolUse {
                workspace_id: pooled.workspace.clone(),
                period: reservation.period().to_string(),
                used: reservation.used(),
                limit: pooled.limit,
            };
            reservation.commit();
            return (user.usage(now), Some(pool));
        }
        let (used, period) = (u32::try_from(reservation.used()).unwrap_or(u32::MAX), reservation.period());
        reservation.commit();
        self.alert_if_reached(user, used, period, now, deadline).await;
        let usage = Usage::new(user.tier, used, period).with_grant(user.granted_recordings(period));
        let usage = usage.with_alert(self.cap_units(user));
        if let Some(push) = &self.push {
            push.notify(&user.id, &Event::UsageChanged { usage: usage.clone() }, now.unix_timestamp()).await;
        }
        (usage, None)
    }

    /// What the user's overage cap pays for past the allowance, when overage is offered.
    fn cap_units(&self, user: &User) -> u32 {
        if self.metering.is_some() { user.overage_units() } else { 0 }
    }

    /// Emails the alert the `used`-th generation of `period` reached, if it reached one: once
    /// per user, month and threshold (claimed, so a unit given back and taken again, or a
    /// retry, sends nothing more). A failure is logged: the generation succeeded.
    async fn alert_if_reached(
        &self,
        user: &User,
        used: u32,
        period: UsagePeriod,
        now: OffsetDateTime,
        deadline: Deadline,
    ) {
        let limit = allowance(user, period);
        let cap_units = self.cap_units(user);
        let Some(alert) = UsageAlert::reached(used, limit, cap_units) else { return };
        let what = match alert.of {
            AlertOf::Allowance => {
                format!("the {} recordings of your {} plan this month", limit.unwrap_or(0), user.tier)
            }
            AlertOf::OverageCap => format!("your {} overage cap this month", dollars(user.overage_cap.cents)),
        };
        let then = match (alert.of, cap_units) {
            (AlertOf::Allowance, 1..) => "each generation after that is billed at your overage price, up to your cap",
            _ => "generations stop until next month unless you raise your cap or your plan",
        };
        let email = UsageAlertEmail { percent: alert.percent, what, then, account_url: self.account_url };
        let id = format!("usage-alert:{}:{period}:{}", user.id, alert.id());
        let to = user.email.as_str();
        let sent = self.notices.once(&id, now, async |mailer| mailer.usage_alert(to, &email).await);
        match tokio::time::timeout(deadline.leaving(GIVE_BACK), sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), notice = id, "a usage alert was not sent"),
            Err(_) => tracing::warn!(notice = id, "a usage alert was not sent before the deadline"),
        }
    }

    /// The usage event of a generation whose unit lies past the plan's allowance (and the
    /// month's top-up): one the user's overage cap pays for, billed through Stripe's meter.
    fn overage_of(&self, user: &User, reservation: &Hold<'_>) -> Option<Overage> {
        self.metering?;
        if reservation.pooled.is_some() {
            return None; // a pool has no overage
        }
        let allowance = u64::from(allowance(user, reservation.period())?);
        let customer = user.stripe_customer_id.clone()?;
        (reservation.used() > allowance).then(|| Overage { period: reservation.period(), customer })
    }

    /// A new recording with the audio cached under `cached`, if there is one. A cache that
    /// fails is only logged: the request is then generated as usual.
    async fn repeat_from_cache(
        &self,
        user: &User,
        request: &Generation,
        cached: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Generated>, ApiError> {
        let recording_id = RecordingId::generate(now);
        let s3_key = Recording::s3_key_for(&user.id, &recording_id, AudioType::Mpeg);
        let voice_name = match self.audio.copy_cached(cached, &s3_key).await {
            Ok(Some(voice_name)) => voice_name,
            Ok(None) => return Ok(None),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "the generation cache failed; generating");
                return Ok(None);
            }
        };
        let audio_url = self.record(user, request, &recording_id, s3_key, voice_name, None, now).await?;
        metrics::count("CachedGenerations", ("Tier", user.tier.as_str()));
        Ok(Some(Generated { recording_id, audio_url, usage: user.usage(now), pool: None }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn produce(
        &self,
        user: &User,
        request: &Generation,
        speaker: &Speaker,
        cached: &str,
        overage: Option<Overage>,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<(RecordingId, String), ApiError> {
        let account = self.account_for(speaker).await;
        let place = self.admit(account, user, now, deadline).await?;
        let spoken = async {
            Ok::<_, ApiError>(match speaker {
                Speaker::Premade(id) => {
                    // The voice list (for the recording's voice name) is cached; on a cold
                    // instance it is fetched alongside the generation rather than after it.
                    let (audio, voices) = tokio::join!(
                        self.speak(account, user, request, id, deadline),
                        self.accounts.primary().client.voices()
                    );
                    let name = voices.ok().and_then(|voices| voices.into_iter().find(|v| v.voice_id == id.as_str()));
                    (audio?, name.map(|v| v.name), None)
                }
                Speaker::Clone(voice) => (
                    self.speak_as_clone(account, user, request, voice, now, deadline).await?,
                    Some(voice.name.clone()),
                    Some(voice),
                ),
            })
        }
        .await;
        place.release().await;
        let (audio, voice_name, clone) = spoken?;

        if deadline.leaving(GIVE_BACK) < STORE {
            return Err(out_of_time("too little time was left to store the audio"));
        }
        let recording_id = RecordingId::generate(now);
        let stored = FreshAudio { audio, cached, voice_name, clone: clone.map(|v| &**v), overage };
        let audio_url = self.store(user, request, &recording_id, stored, now).await?;
        Ok((recording_id, audio_url))
    }

    /// Stores generated audio as `recording_id` (and in the generation cache), notes the clone's
    /// use, writes the recording row, and answers the audio's presigned URL.
    async fn store(
        &self,
        user: &User,
        request: &Generation,
        recording_id: &RecordingId,
        generated: FreshAudio<'_>,
        now: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let FreshAudio { audio, cached, voice_name, clone, overage } = generated;
        let s3_key = Recording::s3_key_for(&user.id, recording_id, AudioType::Mpeg);
        let (stored, kept) = tokio::join!(
            self.audio.put(&s3_key, AudioType::Mpeg, audio.clone()),
            self.audio.put_cached(cached, audio, voice_name.as_deref())
        );
        stored?;
        if let Err(error) = kept {
            tracing::warn!(error = format!("{error:#}"), "could not cache the audio");
        }
        if let Some(clone) = clone
            && let Err(error) = self.voices.touch(&clone.user_id, &clone.voice_id, unix_ms(now)).await
        {
            tracing::warn!(error = format!("{error:#}"), "could not record the clone's use");
        }
        let event = overage.map(|o| o.event(user, recording_id, now));
        let url = self.record(user, request, recording_id, s3_key, voice_name, event.as_ref(), now).await?;
        if let (Some(event), Some(metering)) = (&event, &self.metering) {
            metering.send_now(event, now).await;
        }
        Ok(url)
    }

    /// Writes the recording row of audio stored at `s3_key`, with its usage event in the same
    /// transaction when it is an overage generation (removing the audio if they cannot be
    /// written), and answers its presigned URL.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        user: &User,
        request: &Generation,
        recording_id: &RecordingId,
        s3_key: String,
        voice_name: Option<String>,
        event: Option<&UsageEvent>,
        now: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let recording = Recording {
            recording_id: recording_id.clone(),
            user_id: user.id.clone(),
            voice_id: Some(request.voice_id.to_string()),
            voice_name,
            text: Some(request.text.clone()),
            preset_used: request.preset_id.clone(),
            audio_config: Some(request.config),
            content_type: AudioType::Mpeg,
            s3_key: s3_key.clone(),
            is_favorite: false,
            created_at: timestamp(now),
            expires_at: Some(now.unix_timestamp() + self.settings.recording_ttl.as_secs() as i64),
            source: RecordingSource::Tts,
            upload_bytes: None,
        };
        let written = match event {
            None => self.recordings.put(&recording).await,
            Some(event) => {
                let due_at = now.unix_timestamp() + SWEEP_AFTER;
                match self.usage_events.put(event, due_at) {
                    Ok(with) => self.recordings.put_with(&recording, with).await,
                    Err(error) => Err(error),
                }
            }
        };
        if let Err(error) = written {
            if let Err(cleanup) = self.audio.delete(&s3_key).await {
                tracing::error!(error = format!("{cleanup:#}"), s3_key, "orphaned audio left for the lifecycle rule");
            }
            return Err(error.into());
        }
        Ok(self.audio.audio_url(&s3_key).await.context("signing the new recording's URL")?)
    }

    /// The account to speak at: the clone's own, or the least busy one for a premade voice.
    async fn account_for(&self, speaker: &Speaker) -> &'a Account {
        match speaker {
            Speaker::Premade(_) => elevenlabs_accounts::for_premade(self.accounts, self.gates).await,
            Speaker::Clone(voice) => elevenlabs_accounts::of(self.accounts, voice),
        }
    }

    /// A place at `account` for the caller's tier, waiting for it as long as the deadline
    /// leaves time for the speech and what follows it.
    async fn admit(
        &self,
        account: &Account,
        user: &User,
        arrived: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<Place, ApiError> {
        self.gates
            .of(&account.name)
            .enter(user.tier.rules().priority, arrived, deadline, GIVE_BACK + STORE + MIN_SPEECH)
            .await
    }

    async fn speak(
        &self,
        account: &Account,
        user: &User,
        request: &Generation,
        id: &ElevenLabsVoiceId,
        deadline: Deadline,
    ) -> Result<Vec<u8>, UpstreamError> {
        let speech =
            Speech { voice: id, text: &request.text, model: user.tier.rules().tts_model, audio: &request.config };
        patiently(deadline, || account.client.speak(&speech, deadline.leaving(GIVE_BACK + STORE))).await
    }

    /// Speaks with the caller's clone, re-creating it at ElevenLabs first when it is not resident,
    /// and once more if ElevenLabs turns out to have lost it.
    async fn speak_as_clone(
        &self,
        account: &Account,
        user: &User,
        request: &Generation,
        voice: &Voice,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<Vec<u8>, ApiError> {
        let slots = VoiceSlots { voices: self.voices, audio: self.audio, account, settings: self.settings };
        let id = slots.resident_id(voice, now).await?;
        match self.speak(account, user, request, &id, deadline).await {
            Err(error) if error.is_voice_missing() => {
                slots.forget(voice, &id).await?;
                // Another use may have re-created it already.
                let current = self.voices.voice(&user.id, &voice.voice_id).await?.filter(|v| !v.deleting);
                let id = slots.resident_id(&current.ok_or_else(|| ApiError::not_found("voice"))?, now).await?;
                Ok(self.speak(account, user, request, &id, deadline).await?)
            }
            other => Ok(other?),
        }
    }
}

/// A generation whose audio is sent as ElevenLabs produces it.
pub struct Streaming {
    pub recording_id: RecordingId,
    /// The audio, chunk by chunk. It ends once the recording is stored; it ends in an error when
    /// the generation failed midway (nothing is stored and the unit is given back).
    pub audio: StreamBody,
}

impl Generator<'static> {
    /// `POST /tts/stream`: the checks, the reservation and the time budget of [`Generator::generate`],
    /// then ElevenLabs' streaming endpoint, its chunks passed on as they come while the same
    /// bytes are kept; at the end the audio goes to S3 (and the generation cache) and the
    /// recording row is written, before the stream ends. A repeat is a new recording of the
    /// cached audio, as in [`Generator::generate`], sent whole.
    ///
    /// Nothing delivered (ElevenLabs refuses, fails before its first byte, or sends no audio): the
    /// unit is given back, and an error answers before any audio. A failure midway (ElevenLabs
    /// cuts the stream, the deadline, storing fails): the unit is given back, nothing is stored,
    /// and the stream ends in an error. A client that disconnects midway: the generation goes on
    /// to the end and is stored and counted, as if it had listened (the audio is in its library).
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn generate_streaming(
        self,
        user: User,
        key: Option<KeyMeta>,
        request: Generation,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<Streaming, ApiError> {
        let request = in_keys_workspace(request, key.as_ref())?;
        let (speaker, pool) = Box::pin(self.speaker(&user, &request)).await?;
        let cached = AudioStore::cache_key(&user.id, &request.content_key(&user.id, user.tier.rules().tts_model));
        if let Some(repeat) = self.repeat_from_cache(&user, &request, &cached, now).await? {
            let key = Recording::s3_key_for(&user.id, &repeat.recording_id, AudioType::Mpeg);
            let audio =
                self.audio.read(&key).await.context("reading the repeated recording").map_err(ApiError::Internal)?;
            return Ok(Streaming { recording_id: repeat.recording_id, audio: StreamBody::from(audio) });
        }
        if deadline.leaving(GIVE_BACK + STORE) < MIN_SPEECH {
            return Err(out_of_time("the request has too little time left to generate speech"));
        }
        let reservation = Box::pin(self.reserve(&user, key.as_ref(), &request, pool.as_ref(), now)).await?;
        let overage = self.overage_of(&user, &reservation);
        let account = self.account_for(&speaker).await;
        let place = match self.admit(account, &user, now, deadline).await {
            Ok(place) => place,
            Err(error) => {
                reservation.give_back_within(deadline).await;
                return Err(error);
            }
        };
        let started = match self.start_stream(account, &user, &request, &speaker, now, deadline).await {
            Ok(started) => started,
            Err(error) => {
                place.release().await;
                reservation.give_back_within(deadline).await;
                return Err(error);
            }
        };
        let (mut upstream, voice_name, clone) = started;
        // The first chunk before answering: a stream that fails or ends before any audio is an
        // error the client gets whole, not a 200 with nothing in it.
        let first = match tokio::time::timeout(deadline.leaving(GIVE_BACK + STORE), upstream.chunk()).await {
            Ok(Ok(Some(chunk))) if !chunk.is_empty() => chunk,
            outcome => {
                place.release().await;
                reservation.give_back_within(deadline).await;
                let why = match outcome {
                    Ok(Err(error)) => anyhow::Error::new(error).context("reading ElevenLabs' stream"),
                    Err(_) => anyhow::anyhow!("ElevenLabs sent no audio before the deadline"),
                    Ok(_) => anyhow::anyhow!("ElevenLabs streamed no audio"),
                };
                return Err(ApiError::Upstream { service: "ElevenLabs", temporary: true, source: why });
            }
        };
        let recording_id = RecordingId::generate(now);
        let (sender, audio) = StreamBody::channel();
        let id = recording_id.clone();
        tokio::spawn(async move {
            let relayed = tokio::time::timeout(deadline.leaving(GIVE_BACK), async {
                // ElevenLabs counts the request in flight until its stream ends.
                let audio = relay(first, upstream, sender, deadline.leaving(GIVE_BACK + STORE)).await;
                place.release().await;
                let stored = (clone.as_deref(), overage);
                self.store_streamed(&user, &request, &id, audio?, voice_name, stored, now).await
            })
            .await
            .unwrap_or_else(|_| Err(RelayError::failed(out_of_time("the streamed generation ran out of time"))));
            match relayed {
                Ok(sender) => {
                    self.commit(&user, reservation, now, deadline).await;
                    drop(sender); // the clean end of the stream, now that the recording is stored
                }
                Err(RelayError { error, sender }) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "the streamed generation failed; giving the unit back"
                    );
                    reservation.give_back_within(deadline).await;
                    if let Some(sender) = sender {
                        sender.abort();
                    }
                }
            }
        });
        Ok(Streaming { recording_id, audio })
    }

    /// ElevenLabs' streaming answer once its status is in (a clone is made resident first, and
    /// re-created once if ElevenLabs lost it), with the voice's name and the clone spoken with.
    async fn start_stream(
        &self,
        account: &Account,
        user: &User,
        request: &Generation,
        speaker: &Speaker,
        now: OffsetDateTime,
        deadline: Deadline,
    ) -> Result<(reqwest::Response, Option<String>, Option<Box<Voice>>), ApiError> {
        let model = user.tier.rules().tts_model;
        let within = deadline.leaving(GIVE_BACK + STORE);
        let speak = |id: ElevenLabsVoiceId| async move {
            let speech = Speech { voice: &id, text: &request.text, model, audio: &request.config };
            patiently(deadline, || account.client.speak_streamed(&speech, within)).await
        };
        match speaker {
            Speaker::Premade(id) => {
                let (response, voices) = tokio::join!(speak(id.clone()), self.accounts.primary().client.voices());
                let name = voices.ok().and_then(|voices| voices.into_iter().find(|v| v.voice_id == id.as_str()));
                Ok((response?, name.map(|v| v.name), None))
            }
            Speaker::Clone(voice) => {
                let slots = VoiceSlots { voices: self.voices, audio: self.audio, account, settings: self.settings };
                let id = slots.resident_id(voice, now).await?;
                let response = match speak(id.clone()).await {
                    Err(error) if error.is_voice_missing() => {
                        slots.forget(voice, &id).await?;
                        let current = self.voices.voice(&user.id, &voice.voice_id).await?.filter(|v| !v.deleting);
                        let id = slots.resident_id(&current.ok_or_else(|| ApiError::not_found("voice"))?, now).await?;
                        speak(id).await?
                    }
                    other => other?,
                };
                Ok((response, Some(voice.name.clone()), Some(voice.clone())))
            }
        }
    }

    /// Stores streamed audio as [`Generator::produce`] stores generated audio; the sender is
    /// handed back for the stream's clean end.
    #[allow(clippy::too_many_arguments)]
    async fn store_streamed(
        &self,
        user: &User,
        request: &Generation,
        recording_id: &RecordingId,
        (audio, sender): (Vec<u8>, Option<Sender>),
        voice_name: Option<String>,
        (clone, overage): (Option<&Voice>, Option<Overage>),
        now: OffsetDateTime,
    ) -> Result<Option<Sender>, RelayError> {
        let cached = AudioStore::cache_key(&user.id, &request.content_key(&user.id, user.tier.rules().tts_model));
        let generated = FreshAudio { audio, cached: &cached, voice_name, clone, overage };
        match self.store(user, request, recording_id, generated, now).await {
            Ok(_) => Ok(sender),
            Err(error) => Err(RelayError { error: anyhow::anyhow!(error), sender }),
        }
    }
}

/// Calls ElevenLabs again while it answers that it is busy, as long as the deadline leaves time
/// for another try: `too_many_concurrent_requests` (another client of the account holds its
/// places; they free up in a moment) after 100 ms, doubling to a second; `system_busy`
/// (ElevenLabs itself is loaded) four times as long. Any other answer is final.
async fn patiently<T, Call, Answer>(deadline: Deadline, mut call: Call) -> Result<T, UpstreamError>
where
    Call: FnMut() -> Answer,
    Answer: std::future::Future<Output = Result<T, UpstreamError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        let error = match call().await {
            Ok(answer) => return Ok(answer),
            Err(error) => error,
        };
        let wait = match error.code.as_deref() {
            Some("too_many_concurrent_requests") => pause,
            Some("system_busy") => pause * 4,
            _ => return Err(error),
        };
        let wait = wait + Duration::from_millis(u64::from(random_bytes::<1>()[0]) % 50);
        if deadline.leaving(GIVE_BACK + STORE + MIN_SPEECH) < wait {
            return Err(error);
        }
        tracing::info!(
            code = error.code.as_deref(),
            wait_ms = wait.as_millis() as u64,
            "ElevenLabs is busy; asking again"
        );
        metrics::count("ElevenLabsBusy", ("Service", "elevenlabs"));
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Audio just made, with what storing it needs.
struct FreshAudio<'v> {
    audio: Vec<u8>,
    /// The generation cache's key for it.
    cached: &'v str,
    voice_name: Option<String>,
    /// The clone it was spoken with.
    clone: Option<&'v Voice>,
    /// Past the plan's allowance: billed through the meter.
    overage: Option<Overage>,
}

/// The month's allowance of generations: the plan's and an admin's top-up (None: unlimited).
/// A workspace's key speaks in its workspace: the request's, when it names none, and FORBIDDEN
/// when it names another.
fn in_keys_workspace(mut request: Generation, key: Option<&KeyMeta>) -> Result<Generation, ApiError> {
    let Some(workspace) = key.and_then(|k| k.workspace_id.as_ref()) else { return Ok(request) };
    match &request.workspace {
        Some(named) if named != workspace => {
            Err(ApiError::Forbidden("this API key speaks only in the workspace it was made in".into()))
        }
        _ => {
            request.workspace = Some(workspace.clone());
            Ok(request)
        }
    }
}

fn allowance(user: &User, period: UsagePeriod) -> Option<u32> {
    let plan = user.tier.rules().monthly_recordings?;
    Some(plan.saturating_add(user.granted_recordings(period)))
}

/// What a generation holds while it runs: the user's units (or the workspace pool's, and the
/// member's share), and the characters of its API key's budget when the key has one. Committed
/// or given back together, once (both consume it).
#[must_use = "a hold is committed or given back"]
struct Hold<'a> {
    units: Reservation<'a>,
    pooled: Option<Pooled<'a>>,
    key_characters: Option<KeyCharacters>,
}

/// A generation counted on a workspace's pool: which, its size, and the member's share.
struct Pooled<'a> {
    workspace: WorkspaceId,
    limit: u64,
    share: Reservation<'a>,
}

impl Hold<'_> {
    fn used(&self) -> u64 {
        self.units.used()
    }

    fn period(&self) -> UsagePeriod {
        self.units.period()
    }

    fn commit(self) {
        self.units.commit();
        if let Some(pooled) = self.pooled {
            pooled.share.commit();
        }
        if let Some(held) = self.key_characters {
            held.commit();
        }
    }

    /// The units as [`Reservation::give_back_within`]; the key's characters once (a failure is
    /// logged: they stay counted against the key until the month ends).
    async fn give_back_within(self, deadline: Deadline) {
        if let Some(held) = self.key_characters
            && let Err(error) = held.give_back().await
        {
            tracing::warn!(error = format!("{error:#}"), "the key's characters could not be given back");
        }
        if let Some(pooled) = self.pooled {
            pooled.share.give_back_within(deadline).await;
        }
        self.units.give_back_within(deadline).await;
    }
}

/// A generation past the plan's allowance: the month its unit counts in and who pays.
#[derive(Debug, Clone)]
struct Overage {
    period: UsagePeriod,
    customer: String,
}

impl Overage {
    fn event(self, user: &User, recording_id: &RecordingId, now: OffsetDateTime) -> UsageEvent {
        UsageEvent {
            user_id: user.id.clone(),
            period: self.period,
            recording_id: recording_id.clone(),
            customer: self.customer,
            timestamp: now.unix_timestamp(),
            value: 1,
            unit_cents: user.tier.rules().overage_unit_cents.unwrap_or(0),
        }
    }
}

/// Why a streamed generation failed, with the client's half of the stream (None once the
/// client went away) so it can be ended in an error.
struct RelayError {
    error: anyhow::Error,
    sender: Option<Sender>,
}

impl RelayError {
    fn failed(error: ApiError) -> Self {
        Self { error: anyhow::anyhow!(error), sender: None }
    }
}

/// Passes ElevenLabs' chunks on as they come, within `within`, and keeps them: the whole audio
/// and the client's half of the stream (None if the client went away; the relay goes on).
async fn relay(
    first: bytes::Bytes,
    mut upstream: reqwest::Response,
    sender: Sender,
    within: Duration,
) -> Result<(Vec<u8>, Option<Sender>), RelayError> {
    let mut audio = Vec::new();
    let mut client = Some(sender);
    let mut next = Some(first);
    loop {
        let read = match next.take() {
            Some(first) => Ok(Ok(Some(first))),
            None => tokio::time::timeout(within, upstream.chunk()).await,
        };
        let chunk = match read {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(error)) => {
                return Err(RelayError {
                    error: anyhow::Error::new(error).context("reading ElevenLabs' stream"),
                    sender: client,
                });
            }
            Err(_) => {
                return Err(RelayError {
                    error: anyhow::anyhow!("ElevenLabs' stream outran the deadline"),
                    sender: client,
                });
            }
        };
        audio.extend_from_slice(&chunk);
        if let Some(sender) = client.as_mut()
            && sender.send_data(chunk).await.is_err()
        {
            tracing::info!("the client went away mid-stream; the generation goes on and is stored");
            client = None;
        }
    }
    Ok((audio, client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Ulid;

    #[test]
    fn a_pool_refuses_a_member_removed_or_a_workspace_deleted_since_the_membership_was_read_as_a_stranger() {
        let workspace = Ulid::generate(OffsetDateTime::now_utc());
        let member = UserId::parse("auth0|removed").unwrap();
        let removed = pool_refusal(Refused::Gone(Counters::Share(workspace.clone(), member)), "Team", 500);
        assert_eq!((removed.status().as_u16(), removed.code()), (404, "NOT_FOUND"));
        let deleted = pool_refusal(Refused::Gone(Counters::Pool(workspace)), "Team", 500);
        assert_eq!((deleted.status().as_u16(), deleted.code()), (404, "NOT_FOUND"), "the workspace deleted meanwhile");
        let erased = pool_refusal(Refused::Gone(Counters::Person(UserId::parse("auth0|gone").unwrap())), "Team", 500);
        assert_eq!(erased.code(), "INTERNAL", "not a pool's row: not the workspace's answer");
    }
}
