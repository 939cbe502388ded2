//! Blobs in MongoDB GridFS, as the seed design keeps them: videos in database `videos`, MP3s in
//! database `mp3s`, each with the default bucket (`fs.files`, `fs.chunks`) and ObjectId ids, so
//! the seed's own converter or notifier can read what we store.
//!
//! Uploads stream into the bucket chunk by chunk; an upload that fails is aborted, which deletes
//! the chunks already written, so nothing is orphaned. Reads (whole or a byte range) stream the
//! needed chunks straight from `fs.chunks` in order. Every call, every write of an upload and
//! every chunk of a read has a time limit ([`CALL_TIMEOUT`]): a stalled server fails the
//! operation instead of hanging it.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId, spec::BinarySubtype};
use mongodb::gridfs::GridFsBucket;
use mongodb::{Client, Database};
use prometheus::{IntCounter, IntCounterVec};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::compat::FuturesAsyncWriteCompatExt;

use super::{
    BlobInfo, BlobMeta, BlobReader, BlobStore, Bucket, ByteRange, CALL_TIMEOUT, LocalMedia, StorageError,
    StorageResult, timed,
};
use crate::ids::Id;

pub struct GridFsBlobStore {
    videos: Database,
    mp3s: Database,
    /// `mp3c_gridfs_bytes_total`: chunk data written and read, by database and direction.
    traffic: IntCounterVec,
}

pub fn object_id(id: Id) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

fn mongo_error(error: mongodb::error::Error) -> StorageError {
    StorageError::unavailable(error)
}

impl GridFsBlobStore {
    /// The store on `client`, counting the bytes it moves in `traffic` (labels: database,
    /// direction).
    pub fn new(client: &Client, traffic: IntCounterVec) -> Self {
        GridFsBlobStore {
            videos: client.database(Bucket::Videos.name()),
            mp3s: client.database(Bucket::Mp3s.name()),
            traffic,
        }
    }

    fn counter(&self, bucket: Bucket, direction: Direction) -> IntCounter {
        self.traffic.with_label_values(&[bucket.name(), direction.label()])
    }

    fn database(&self, bucket: Bucket) -> &Database {
        match bucket {
            Bucket::Videos => &self.videos,
            Bucket::Mp3s => &self.mp3s,
        }
    }

    fn bucket(&self, bucket: Bucket) -> GridFsBucket {
        self.database(bucket).gridfs_bucket(None)
    }

    async fn files_document(&self, bucket: Bucket, fid: Id) -> StorageResult<Document> {
        let files = self.database(bucket).collection::<Document>("fs.files");
        timed("reading a GridFS file", async {
            files.find_one(doc! { "_id": object_id(fid) }).await.map_err(mongo_error)
        })
        .await?
        .ok_or(StorageError::NotFound)
    }
}

/// Which way blob bytes went, for [`GridFsBlobStore::counter`].
#[derive(Clone, Copy)]
enum Direction {
    Written,
    Read,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Written => "written",
            Direction::Read => "read",
        }
    }
}

fn meta_document(meta: &BlobMeta) -> Document {
    let mut document = doc! { "owner": &meta.owner, "filename": &meta.filename, "content_type": &meta.content_type };
    if let Some(job_id) = meta.job_id {
        document.insert("job_id", object_id(job_id));
    }
    document
}

fn meta_from(files: &Document) -> BlobMeta {
    let metadata = files.get_document("metadata").cloned().unwrap_or_default();
    let text = |key: &str| metadata.get_str(key).unwrap_or_default().to_owned();
    BlobMeta {
        owner: text("owner"),
        filename: metadata.get_str("filename").or_else(|_| files.get_str("filename")).unwrap_or("upload").to_owned(),
        content_type: text("content_type"),
        job_id: metadata.get_object_id("job_id").ok().map(|oid| Id::from_bytes(oid.bytes())),
    }
}

fn number(files: &Document, key: &str) -> u64 {
    match files.get(key) {
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Int64(n)) => *n as u64,
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

#[async_trait]
impl BlobStore for GridFsBlobStore {
    async fn put(
        &self,
        bucket: Bucket,
        fid: Id,
        meta: &BlobMeta,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> StorageResult<u64> {
        let gridfs = self.bucket(bucket);
        let opening = gridfs.open_upload_stream(&meta.filename).id(object_id(fid).into()).metadata(meta_document(meta));
        let mut upload =
            timed("opening a GridFS upload", async { opening.await.map_err(mongo_error) }).await?.compat_write();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let written = self.counter(bucket, Direction::Written);
        let copied: StorageResult<()> = async {
            loop {
                let n = tokio::io::AsyncReadExt::read(body, &mut buffer).await.map_err(StorageError::Input)?;
                if n == 0 {
                    break;
                }
                let write = upload.write_all(&buffer[..n]);
                timed("writing to GridFS", async { write.await.map_err(StorageError::unavailable) }).await?;
                written.inc_by(n as u64);
                total += n as u64;
            }
            timed("closing a GridFS upload", async { upload.shutdown().await.map_err(StorageError::unavailable) }).await
        }
        .await;
        if let Err(error) = copied {
            // Deletes the chunks written so far.
            let _ = upload.into_inner().abort().await;
            return Err(error);
        }
        Ok(total)
    }

    async fn stat(&self, bucket: Bucket, fid: Id) -> StorageResult<BlobInfo> {
        let files = self.files_document(bucket, fid).await?;
        Ok(BlobInfo { length: number(&files, "length"), meta: meta_from(&files) })
    }

    async fn open(&self, bucket: Bucket, fid: Id, range: Option<ByteRange>) -> StorageResult<BlobReader> {
        let files = self.files_document(bucket, fid).await?;
        let length = number(&files, "length");
        let chunk_size = number(&files, "chunkSize").max(1);
        let range = match range {
            Some(range) => range,
            None if length == 0 => return Ok(Box::new(tokio::io::empty())),
            None => ByteRange { first: 0, last: length - 1 },
        };
        let (first_chunk, last_chunk) = (range.first / chunk_size, range.last / chunk_size);
        let collection = self.database(bucket).collection::<Document>("fs.chunks");
        let find = collection
            .find(doc! { "files_id": object_id(fid), "n": { "$gte": first_chunk as i64, "$lte": last_chunk as i64 } })
            .sort(doc! { "n": 1 });
        let chunks = timed("reading GridFS chunks", async { find.await.map_err(mongo_error) }).await?;
        let read = self.counter(bucket, Direction::Read);
        let bytes = each_within(CALL_TIMEOUT, chunks.map_err(std::io::Error::other)).and_then(move |chunk| {
            let read = read.clone();
            async move {
                let n = number(&chunk, "n");
                let data = match chunk.get("data") {
                    Some(Bson::Binary(binary)) if binary.subtype == BinarySubtype::Generic => binary.bytes.clone(),
                    _ => return Err(std::io::Error::other("a GridFS chunk without data")),
                };
                read.inc_by(data.len() as u64);
                let start = n * chunk_size;
                let from = range.first.saturating_sub(start) as usize;
                let to = ((range.last + 1).min(start + data.len() as u64) - start) as usize;
                Ok(Bytes::from(data).slice(from.min(to)..to))
            }
        });
        Ok(Box::new(tokio_util::io::StreamReader::new(bytes.boxed())))
    }

    async fn set_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()> {
        let files = self.database(bucket).collection::<Document>("fs.files");
        let update = doc! { "$set": { "metadata": meta_document(meta) } };
        let result = timed("updating GridFS metadata", async {
            files.update_one(doc! { "_id": object_id(fid) }, update).await.map_err(mongo_error)
        })
        .await?;
        match result.matched_count {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    async fn local_media(&self, bucket: Bucket, fid: Id) -> StorageResult<LocalMedia> {
        let mut reader = self.open(bucket, fid, None).await?;
        let temp = tempfile::NamedTempFile::new().map_err(StorageError::unavailable)?.into_temp_path();
        let mut file = tokio::fs::File::create(&temp).await.map_err(StorageError::unavailable)?;
        tokio::io::copy(&mut reader, &mut file).await.map_err(StorageError::unavailable)?;
        file.sync_all().await.map_err(StorageError::unavailable)?;
        Ok(LocalMedia::Copy(temp))
    }

    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()> {
        // The driver deletes the chunks even when the file document is gone (a partial upload).
        let gridfs = self.bucket(bucket);
        let delete = gridfs.delete(object_id(fid).into());
        timed("deleting a GridFS file", async {
            match delete.await {
                Ok(()) => Ok(()),
                Err(error) if matches!(*error.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
                Err(error) => Err(mongo_error(error)),
            }
        })
        .await
    }

    async fn ping(&self) -> StorageResult<()> {
        timed("pinging MongoDB", async { self.videos.run_command(doc! { "ping": 1 }).await.map_err(mongo_error) })
            .await?;
        Ok(())
    }
}

/// `stream`, but an item that takes longer than `limit` to come ends it with an error.
fn each_within<T: Send + 'static>(
    limit: std::time::Duration,
    stream: impl futures_util::Stream<Item = std::io::Result<T>> + Send + Unpin + 'static,
) -> impl futures_util::Stream<Item = std::io::Result<T>> + Send {
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(limit, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::Error::other(format!("MongoDB sent nothing for {limit:?}"))), None)),
        }
    })
}
