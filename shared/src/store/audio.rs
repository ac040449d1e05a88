//! The audio bucket: objects under `{userId}/…`, reachable by clients only through short-lived
//! URLs: CloudFront signed URLs when a distribution is configured, presigned S3 URLs otherwise.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use aws_sdk_s3::{
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{Tag, Tagging},
};

use tokio::sync::OnceCell;

use crate::{
    config::CdnSettings,
    domain::{audio::AudioType, ids::UserId},
    store::{
        cloudfront::UrlSigner,
        secrets::{self, Wanted},
    },
};

/// The audio bucket. Objects that are not favourites carry the tag `retention=temporary`, which
/// the bucket's lifecycle rule expires as a safety net behind the TTL stream.
#[derive(Clone)]
pub struct AudioStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    presign_ttl: Duration,
    cdn: Option<Arc<Cdn>>,
}

/// The distribution in front of the bucket, its signing key fetched from SSM on first use.
pub struct Cdn {
    settings: CdnSettings,
    ssm: aws_sdk_ssm::Client,
    signer: OnceCell<UrlSigner>,
}

impl Cdn {
    pub fn new(settings: CdnSettings, ssm: aws_sdk_ssm::Client) -> Self {
        Self { settings, ssm, signer: OnceCell::new() }
    }

    async fn signer(&self) -> anyhow::Result<&UrlSigner> {
        self.signer
            .get_or_try_init(|| async {
                let parameter = Some(self.settings.private_key_parameter.as_str());
                let wanted = Wanted { variable: "CLOUDFRONT_PRIVATE_KEY_PARAM", parameter };
                let [pem] = secrets::fetch(&self.ssm, [wanted]).await?;
                UrlSigner::new(self.settings.base.clone(), self.settings.key_pair_id.clone(), &pem)
            })
            .await
    }
}

impl AudioStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, presign_ttl: Duration, cdn: Option<Cdn>) -> Self {
        Self { client, bucket, presign_ttl, cdn: cdn.map(Arc::new) }
    }

    pub async fn put(&self, key: &str, content_type: AudioType, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type.mime())
            .tagging("retention=temporary")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .context("storing the audio")?;
        Ok(())
    }

    /// Marks the object kept (favourite) or temporary. An object that does not exist (an upload
    /// whose URL was never used) has nothing to keep: that is not a failure.
    pub async fn set_retention(&self, key: &str, keep: bool) -> anyhow::Result<()> {
        let tag = Tag::builder().key("retention").value(if keep { "kept" } else { "temporary" }).build()?;
        let tagged = self
            .client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(Tagging::builder().tag_set(tag).build()?)
            .send()
            .await;
        match tagged {
            Ok(_) => Ok(()),
            Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(error) => Err(anyhow::Error::new(error).context("tagging the audio")),
        }
    }

    /// Copies `from` to `to`, tagged kept from the start (no later retag to miss): a clone's own
    /// copy of a sample, which it keeps for as long as it exists.
    pub async fn copy_kept(&self, from: &str, to: &str) -> anyhow::Result<()> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, encode(from)))
            .key(to)
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .tagging("retention=kept")
            .send()
            .await
            .context("copying a sample")?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.context("deleting the audio")?;
        Ok(())
    }

    /// Stores a data export (JSON), tagged temporary so the lifecycle rule removes it.
    pub async fn put_export(&self, key: &str, json: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .tagging("retention=temporary")
            .body(ByteStream::from(json))
            .send()
            .await
            .context("storing the export")?;
        Ok(())
    }

    /// Deletes every object under `prefix` (a user's whole folder); the count deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};

        let mut deleted = 0;
        loop {
            // Listing again after each delete: the next page is simply what is left.
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(1000)
                .send()
                .await
                .context("listing the user's objects")?;
            let keys: Vec<ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|key| ObjectIdentifier::builder().key(key).build().expect("a key is set"))
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            deleted += keys.len();
            let delete = Delete::builder().set_objects(Some(keys)).quiet(true).build()?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .context("deleting the user's objects")?;
            if let Some(error) = output.errors().first() {
                anyhow::bail!("S3 refused to delete {:?}: {:?}", error.key(), error.message());
            }
        }
    }

    /// A GET URL for exactly this object, valid for the configured short time.
    pub async fn download_url(&self, key: &str) -> anyhow::Result<String> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(PresigningConfig::expires_in(self.presign_ttl)?)
            .await
            .context("presigning the download")?;
        Ok(presigned.uri().to_owned())
    }

    /// Where a client plays or downloads the audio at `key`: a CloudFront signed URL when a
    /// distribution is configured (cached at the edge, range requests for seeking), else a
    /// presigned S3 URL; either lasts the presign TTL.
    pub async fn audio_url(&self, key: &str) -> anyhow::Result<String> {
        let Some(cdn) = &self.cdn else { return self.download_url(key).await };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
        let expires = i64::try_from(now + self.presign_ttl.as_secs())?;
        Ok(cdn.signer().await?.sign(key, expires))
    }

    /// A PUT URL for exactly this object, content type and size; the signature covers both, so
    /// S3 refuses an upload that differs.
    pub async fn upload_url(&self, key: &str, content_type: AudioType, size: u64) -> anyhow::Result<String> {
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type.mime())
            .content_length(size as i64)
            .tagging("retention=temporary")
            .presigned(PresigningConfig::expires_in(self.presign_ttl)?)
            .await
            .context("presigning the upload")?;
        Ok(presigned.uri().to_owned())
    }

    pub fn presign_ttl(&self) -> Duration {
        self.presign_ttl
    }
}

/// An object being read: its length and its bytes as they arrive.
pub struct OpenObject {
    pub length: u64,
    pub body: aws_sdk_s3::primitives::ByteStream,
}

impl AudioStore {
    /// Whether the bucket answers (HeadBucket: no object is read).
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.context("reaching the audio bucket")?;
        Ok(())
    }

    /// The object's length, or None when nothing was uploaded there.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(head.content_length.unwrap_or(0).max(0) as u64)),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(anyhow::Error::new(error).context("looking for the object")),
        }
    }

    /// An object's bytes, whole.
    pub async fn read(&self, key: &str) -> anyhow::Result<bytes::Bytes> {
        let object = self.open(key).await?;
        Ok(object.body.collect().await.context("reading the object's bytes")?.into_bytes())
    }

    /// Opens an object for streaming.
    pub async fn open(&self, key: &str) -> anyhow::Result<OpenObject> {
        let object =
            self.client.get_object().bucket(&self.bucket).key(key).send().await.context("reading the object")?;
        Ok(OpenObject { length: object.content_length.unwrap_or(0).max(0) as u64, body: object.body })
    }
}

/// Generated audio by content (`{userId}/cache/{content key}.mp3`), so that a repeated
/// generation is a copy instead of a call to ElevenLabs. Entries are tagged temporary: the
/// bucket's lifecycle rule ends them, and erasing the account (the whole `{userId}/` prefix)
/// removes them with everything else.
impl AudioStore {
    pub fn cache_key(user: &UserId, content_key: &str) -> String {
        format!("{user}/cache/{content_key}.{}", AudioType::Mpeg.extension())
    }

    /// Keeps `bytes` as the audio of `content_key`, with the voice's name beside it.
    pub async fn put_cached(&self, key: &str, bytes: Vec<u8>, voice_name: Option<&str>) -> anyhow::Result<()> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(AudioType::Mpeg.mime())
            .tagging("retention=temporary")
            .body(ByteStream::from(bytes));
        if let Some(name) = voice_name {
            put = put.metadata(VOICE_NAME, encode(name));
        }
        put.send().await.context("caching the audio")?;
        Ok(())
    }

    /// Copies a cached audio to `to` (tagged temporary, like any new recording) when the cache
    /// holds it: `Some(voice name)` then, None on a miss. In AWS a missing object answers 403 to
    /// a role that may not list the bucket, so any refusal counts as a miss: the caller
    /// generates instead.
    pub async fn copy_cached(&self, cached: &str, to: &str) -> anyhow::Result<Option<Option<String>>> {
        let head = match self.client.head_object().bucket(&self.bucket).key(cached).send().await {
            Ok(head) => head,
            Err(error) if error.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 403 | 404)) => {
                return Ok(None);
            }
            Err(error) => return Err(anyhow::Error::new(error).context("looking up the cached audio")),
        };
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, encode(cached)))
            .key(to)
            .content_type(AudioType::Mpeg.mime())
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .tagging("retention=temporary")
            .send()
            .await;
        match copied {
            Ok(_) => {
                let name = head.metadata.and_then(|m| m.get(VOICE_NAME).map(|n| decode(n)));
                Ok(Some(name))
            }
            // Expired between the two calls.
            Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(error) => Err(anyhow::Error::new(error).context("copying the cached audio")),
        }
    }
}

/// S3 metadata is ASCII: the voice name is kept percent-encoded.
const VOICE_NAME: &str = "voice-name";

/// Percent-encodes all but letters, digits and `/` (a copy source is a URL-encoded path; user
/// ids carry `|`).
fn encode(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'/');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}
