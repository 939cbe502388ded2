//! Blobs in MongoDB GridFS, as the legacy design keeps them: videos in database `videos`, MP3s in
//! database `mp3s`, each with the default bucket (`fs.files`, `fs.chunks`) and ObjectId ids, so
//! the legacy design's own converter or notifier can read what we store.
//!
//! - Writes ([`upload`]): chunks of [`CHUNK_SIZE`], inserted while the next is read, the files
//!   document last, so a file is visible only once whole; a failed upload deletes its chunks.
//! - Downloads (whole or a byte range) stream the needed chunks through one cursor sorted by
//!   `n`, which the server answers in batches of many chunks.
//! - Conversions read a file in place ([`media`]): a seekable stream that fetches chunks as
//!   FFmpeg reads, never a local copy of the file.
//!
//! What both take of a chunk is [`chunks`]'s.
//!
//! Every call, every chunk written and every chunk read has a time limit ([`CALL_TIMEOUT`]): a
//! stalled server fails the operation instead of hanging it. `mp3c_gridfs_bytes_total` counts
//! the chunk data moved each way.

mod chunks;
mod media;
mod upload;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, DateTime, Document, doc, oid::ObjectId};
use mongodb::{Client, Collection, Database, IndexModel};
use prometheus::{IntCounter, IntCounterVec};
use tokio::io::AsyncRead;
use tokio::sync::OnceCell;

pub use upload::CHUNK_SIZE;

use self::chunks::{StoredChunk, chunk_fields, mongo_error};
use self::media::{ChunkSource, GridFsMedia};
use self::upload::ChunkUpload;
use super::{
    BlobInfo, BlobMeta, BlobReader, BlobStore, Bucket, ByteRange, CALL_TIMEOUT, Media, MediaSource, StorageError,
    StorageResult, StoreFailure, timed,
};
use crate::ids::Id;

pub struct GridFsBlobStore {
    videos: Database,
    mp3s: Database,
    /// Set once this process made sure of each database's GridFS indexes (before its first
    /// write, as the drivers do): reading a chunk by `files_id` and `n` needs them.
    indexed_videos: OnceCell<()>,
    indexed_mp3s: OnceCell<()>,
    /// `mp3c_gridfs_bytes_total`: chunk data written and read, by database and direction.
    traffic: IntCounterVec,
}

pub fn object_id(id: Id) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

impl GridFsBlobStore {
    /// The store on `client`, counting the bytes it moves in `traffic` (labels: database,
    /// direction).
    pub fn new(client: &Client, traffic: IntCounterVec) -> Self {
        GridFsBlobStore {
            videos: client.database(Bucket::Videos.name()),
            mp3s: client.database(Bucket::Mp3s.name()),
            indexed_videos: OnceCell::new(),
            indexed_mp3s: OnceCell::new(),
            traffic,
        }
    }

    /// Creates the indexes every GridFS program relies on, unless this process did already:
    /// chunks by (`files_id`, `n`), files by (`filename`, `uploadDate`). An index on the same
    /// keys made by another program (PyMongo makes the chunks one unique) is as good.
    async fn ensure_indexes(&self, bucket: Bucket) -> StorageResult<()> {
        let indexed = match bucket {
            Bucket::Videos => &self.indexed_videos,
            Bucket::Mp3s => &self.indexed_mp3s,
        };
        indexed
            .get_or_try_init(|| async {
                let wanted = [
                    (self.chunks::<Document>(bucket), doc! { "files_id": 1, "n": 1 }),
                    (self.files(bucket), doc! { "filename": 1, "uploadDate": 1 }),
                ];
                for (collection, keys) in wanted {
                    let create = collection.create_index(IndexModel::builder().keys(keys).build());
                    timed("creating a GridFS index", async {
                        match create.await {
                            Err(error) if !same_keys_exist(&error) => Err(mongo_error(error)),
                            _ => Ok(()),
                        }
                    })
                    .await?;
                }
                Ok(())
            })
            .await
            .map(drop)
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

    fn chunks<T: Send + Sync>(&self, bucket: Bucket) -> Collection<T> {
        self.database(bucket).collection("fs.chunks")
    }

    fn files(&self, bucket: Bucket) -> Collection<Document> {
        self.database(bucket).collection("fs.files")
    }

    async fn files_document(&self, bucket: Bucket, fid: Id) -> StorageResult<Document> {
        let files = self.files(bucket);
        timed("reading a GridFS file", async {
            files.find_one(doc! { "_id": object_id(fid) }).await.map_err(mongo_error)
        })
        .await?
        .ok_or(StorageError::NotFound)
    }
}

/// Whether creating an index failed only because one on the same keys exists with other
/// options (IndexOptionsConflict, IndexKeySpecsConflict).
fn same_keys_exist(error: &mongodb::error::Error) -> bool {
    matches!(&*error.kind, mongodb::error::ErrorKind::Command(command) if matches!(command.code, 85 | 86))
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
        self.ensure_indexes(bucket).await?;
        let files_id = object_id(fid);
        let mut upload = ChunkUpload::new(self.chunks(bucket), files_id, self.counter(bucket, Direction::Written));
        let written = async {
            upload.write_all(body).await?;
            let length = upload.finish().await?;
            let file = doc! {
                "_id": files_id,
                "length": length as i64,
                "chunkSize": CHUNK_SIZE as i32,
                "uploadDate": DateTime::now(),
                "filename": &meta.filename,
                "metadata": meta_document(meta),
            };
            let files = self.files(bucket);
            let insert = files.insert_one(file);
            timed("writing a GridFS file document", async { insert.await.map_err(mongo_error) }).await?;
            Ok(length)
        }
        .await;
        match written {
            Ok(length) => {
                upload.settle();
                Ok(length)
            }
            Err(error) => {
                upload.abandon().await;
                Err(error)
            }
        }
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
        let chunks = self.chunks::<StoredChunk>(bucket);
        let find = chunks
            .find(doc! { "files_id": object_id(fid), "n": { "$gte": first_chunk as i64, "$lte": last_chunk as i64 } })
            .projection(chunk_fields())
            .sort(doc! { "n": 1 });
        let chunks = timed("reading GridFS chunks", async { find.await.map_err(mongo_error) }).await?;
        let read = self.counter(bucket, Direction::Read);
        let bytes = each_within(CALL_TIMEOUT, chunks.map_err(std::io::Error::other)).and_then(move |chunk| {
            let read = read.clone();
            async move {
                let data = chunk.data.bytes;
                read.inc_by(data.len() as u64);
                let start = chunk.n as u64 * chunk_size;
                let from = range.first.saturating_sub(start) as usize;
                let to = ((range.last + 1).min(start + data.len() as u64) - start) as usize;
                Ok(Bytes::from(data).slice(from.min(to)..to))
            }
        });
        Ok(Box::new(tokio_util::io::StreamReader::new(bytes.boxed())))
    }

    async fn set_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()> {
        let files = self.files(bucket);
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

    async fn media(&self, bucket: Bucket, fid: Id) -> StorageResult<MediaSource> {
        let files = self.files_document(bucket, fid).await?;
        let source = ChunkSource {
            chunks: self.chunks(bucket),
            files_id: object_id(fid),
            read: self.counter(bucket, Direction::Read),
        };
        let failure = StoreFailure::default();
        let stream = GridFsMedia::new(source, number(&files, "length"), number(&files, "chunkSize"), failure.clone());
        Ok(MediaSource { media: Media::Stream(Box::new(stream)), failure })
    }

    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()> {
        // The driver deletes the chunks even when the file document is gone (a partial upload).
        let gridfs = self.database(bucket).gridfs_bucket(None);
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
