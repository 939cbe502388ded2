//! What only the GridFS blob store promises (the blob store's contract is
//! [`crate::contract::blobs`]): files where the seed's programs look and as the driver's own
//! GridFS reads them, each chunk fetched once by the converter's stream, a store failure under
//! that stream told from a broken file, and no chunk left by a failed upload or a delete.

use std::io::SeekFrom;

use mongodb::bson::{Document, doc};
use mp3converter::ids::Id;
use mp3converter::storage::gridfs::{CHUNK_SIZE, GridFsBlobStore, object_id};
use mp3converter::storage::{
    BlobMeta, BlobStore, Bucket, ByteRange, Media, MediaSource, SeekableRead, StorageError, StoreFailure,
};
use prometheus::IntCounterVec;
use tokio::io::AsyncReadExt;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::servers::{OwnMongo, mongo_client};

/// Byte counters of a store under test.
fn traffic() -> IntCounterVec {
    mp3converter::metrics::Metrics::new("test").stores.gridfs_bytes.clone()
}

fn bytes_counted(traffic: &IntCounterVec, direction: &str) -> u64 {
    traffic.with_label_values(&["videos", direction]).get()
}

fn meta(job_id: Id) -> BlobMeta {
    BlobMeta {
        owner: "a@example.com".into(),
        filename: "clip.mp4".into(),
        content_type: "video/mp4".into(),
        job_id: Some(job_id),
    }
}

/// Bytes that differ at every offset, so a wrong range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn read_all(store: &GridFsBlobStore, fid: Id, range: Option<ByteRange>) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(Bucket::Videos, fid, range).await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

/// The file as the driver's own GridFS download reads it (by the file's `chunkSize`, checking
/// that every chunk but the last is full, as the seed's PyMongo does).
async fn read_with_the_driver(client: &mongodb::Client, fid: Id) -> Vec<u8> {
    let bucket = client.database("videos").gridfs_bucket(None);
    let mut reader = bucket.open_download_stream(object_id(fid).into()).await.unwrap().compat();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

/// The blob's media stream, read on a blocking thread by `read` (as FFmpeg reads it), and the
/// store failures recorded meanwhile.
async fn with_stream<T: Send + 'static>(
    store: &GridFsBlobStore,
    fid: Id,
    read: impl FnOnce(&mut dyn SeekableRead) -> T + Send + 'static,
) -> (T, StoreFailure) {
    let MediaSource { media: Media::Stream(mut stream), failure } = store.media(Bucket::Videos, fid).await.unwrap()
    else {
        panic!("GridFS gives a stream")
    };
    let result = tokio::task::spawn_blocking(move || read(&mut *stream)).await.unwrap();
    (result, failure)
}

#[tokio::test]
async fn files_of_a_chunk_multiple_and_past_a_chunk_are_whole_for_every_reader() {
    let client = mongo_client().await;
    let store = GridFsBlobStore::new(&client, traffic());
    let chunks = client.database("videos").collection::<Document>("fs.chunks");
    for (size, chunk_count) in [(2 * CHUNK_SIZE, 2), (CHUNK_SIZE + 1, 2), (CHUNK_SIZE - 1, 1)] {
        let (fid, data) = (Id::generate(), pattern(size));
        store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut &data[..]).await.unwrap();
        assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), chunk_count, "{size}");
        let file = client.database("videos").collection::<Document>("fs.files");
        let file = file.find_one(doc! { "_id": object_id(fid) }).await.unwrap().unwrap();
        assert_eq!(file.get_i32("chunkSize").unwrap() as usize, CHUNK_SIZE);
        assert!(read_with_the_driver(&client, fid).await == data, "the driver reads {size} bytes back");
        // Where the seed looks: database `videos`, default bucket, ObjectId id.
        assert!(file.get_object_id("_id").is_ok_and(|id| id == object_id(fid)));
        assert!(read_all(&store, fid, None).await == data, "we read {size} bytes back");
    }
}

#[tokio::test]
async fn the_media_stream_reads_and_seeks_anywhere_and_reads_each_chunk_once_going_forward() {
    let client = mongo_client().await;
    let traffic = traffic();
    let store = GridFsBlobStore::new(&client, traffic.clone());
    let (fid, data) = (Id::generate(), pattern(5 * CHUNK_SIZE + 333));
    store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut &data[..]).await.unwrap();

    // Forward, in FFmpeg's 32 KiB reads: every byte right, every chunk fetched once.
    let before = bytes_counted(&traffic, "read");
    let (whole, _) = with_stream(&store, fid, |stream| {
        let mut whole = Vec::new();
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match stream.read(&mut buffer).unwrap() {
                0 => return whole,
                n => whole.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(whole == data, "the stream gives the file");
    assert_eq!(bytes_counted(&traffic, "read") - before, data.len() as u64, "each chunk fetched once");

    // An MP4's index at the end, then back to the start, across a chunk boundary, and a skip
    // over a chunk fetched ahead.
    let size = data.len() as u64;
    let (pieces, _) =
        with_stream(&store, fid, move |stream| crate::contract::blobs::read_as_ffmpeg_does(stream, size, 3)).await;
    for (offset, piece) in pieces {
        assert_eq!(piece, &data[offset..offset + piece.len()], "at {offset}");
    }
}

#[tokio::test]
async fn a_store_that_fails_under_the_media_stream_is_recorded_and_a_missing_chunk_is_not() {
    let mut mongo = OwnMongo::start().await;
    let client = mongodb::Client::with_uri_str(format!("{}&serverSelectionTimeoutMS=5000", mongo.url())).await.unwrap();
    let store = GridFsBlobStore::new(&client, traffic());
    let (fid, data) = (Id::generate(), pattern(3 * CHUNK_SIZE));
    store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut &data[..]).await.unwrap();

    // A chunk gone: the file is broken, the store is fine.
    let chunks = client.database("videos").collection::<Document>("fs.chunks");
    chunks.delete_one(doc! { "files_id": object_id(fid), "n": 1 }).await.unwrap();
    let (read, failure) = with_stream(&store, fid, |stream| {
        stream.seek(SeekFrom::Start(CHUNK_SIZE as u64)).unwrap();
        stream.read(&mut [0u8; 16])
    })
    .await;
    assert!(read.is_err());
    assert_eq!(failure.get(), None, "a broken file is not a store failure");

    // The server goes away mid-read: recorded, and every later read fails at once.
    let (reads, failure) = with_stream(&store, fid, move |stream| {
        stream.read_exact(&mut [0u8; 16]).unwrap();
        mongo.stop();
        stream.seek(SeekFrom::Start(2 * CHUNK_SIZE as u64)).unwrap();
        let first = stream.read(&mut [0u8; 16]);
        let started = std::time::Instant::now();
        let second = stream.seek(SeekFrom::Start(0)).and_then(|_| stream.read(&mut [0u8; 16]));
        (first.is_err(), second.is_err(), started.elapsed())
    })
    .await;
    assert!(reads.0 && reads.1, "reads fail while the store is away");
    // A read that asked the store again would wait out the 5 s server selection; half of that
    // is "at once" even on a loaded machine.
    assert!(reads.2 < std::time::Duration::from_millis(2500), "a later read fails at once: {:?}", reads.2);
    assert!(failure.get().is_some(), "the store failure is recorded");
}

#[tokio::test]
async fn a_failed_upload_leaves_no_chunks() {
    let client = mongo_client().await;
    let store = GridFsBlobStore::new(&client, traffic());
    let fid = Id::generate();
    // Several chunks are on their way when the body fails.
    let chunks: Vec<std::io::Result<bytes::Bytes>> =
        vec![Ok(bytes::Bytes::from(pattern(3 * CHUNK_SIZE + 10))), Err(std::io::Error::other("client went away"))];
    let mut failing = Box::pin(tokio_util::io::StreamReader::new(futures_util::stream::iter(chunks)));
    let result = store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut failing).await;
    assert!(matches!(result, Err(StorageError::Input(_))));
    assert!(matches!(store.stat(Bucket::Videos, fid).await, Err(StorageError::NotFound)));
    let chunks = client.database("videos").collection::<Document>("fs.chunks");
    assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), 0);
}

#[tokio::test]
async fn deleting_removes_the_file_and_every_chunk() {
    let client = mongo_client().await;
    let store = GridFsBlobStore::new(&client, traffic());
    let fid = Id::generate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mp3");
    std::fs::write(&path, pattern(2 * CHUNK_SIZE + 1)).unwrap();
    store.put_file(Bucket::Mp3s, fid, &meta(Id::generate()), &path).await.unwrap();
    let chunks = client.database("mp3s").collection::<Document>("fs.chunks");
    assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), 3);
    store.delete(Bucket::Mp3s, fid).await.unwrap();
    assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), 0);
    assert!(matches!(store.stat(Bucket::Mp3s, fid).await, Err(StorageError::NotFound)));
}
