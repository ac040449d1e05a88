//! The audio bucket: objects under `{userId}/…`, reachable by clients only through short-lived
//! presigned URLs.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::{
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{Tag, Tagging},
};

use crate::domain::audio::AudioType;

/// The audio bucket. Objects that are not favourites carry the tag `retention=temporary`, which
/// the bucket's lifecycle rule expires as a safety net behind the TTL stream.
#[derive(Clone)]
pub struct AudioStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    presign_ttl: Duration,
}

impl AudioStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, presign_ttl: Duration) -> Self {
        Self { client, bucket, presign_ttl }
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

    /// Marks the object kept (favourite) or temporary.
    pub async fn set_retention(&self, key: &str, keep: bool) -> anyhow::Result<()> {
        let tag = Tag::builder().key("retention").value(if keep { "kept" } else { "temporary" }).build()?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(Tagging::builder().tag_set(tag).build()?)
            .send()
            .await
            .context("tagging the audio")?;
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

    /// Opens an object for streaming.
    pub async fn open(&self, key: &str) -> anyhow::Result<OpenObject> {
        let object =
            self.client.get_object().bucket(&self.bucket).key(key).send().await.context("reading the object")?;
        Ok(OpenObject { length: object.content_length.unwrap_or(0).max(0) as u64, body: object.body })
    }
}
