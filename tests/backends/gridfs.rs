//! Videos and MP3s in GridFS: streamed in and out, ranges, metadata, no orphans.

use mongodb::bson::{Document, doc};
use mp3converter::ids::Id;
use mp3converter::storage::gridfs::{GridFsBlobStore, object_id};
use mp3converter::storage::{BlobMeta, BlobStore, Bucket, ByteRange, StorageError};
use tokio::io::AsyncReadExt;

use crate::servers::mongo_client;

/// Byte counters of a store under test.
fn traffic() -> prometheus::IntCounterVec {
    mp3converter::metrics::Metrics::new("test").gridfs_bytes.clone()
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

#[tokio::test]
async fn a_blob_streams_in_and_out_whole_and_by_range() {
    let client = mongo_client().await;
    let store = GridFsBlobStore::new(&client, traffic());
    let (fid, job) = (Id::generate(), Id::generate());
    // Several chunks (GridFS's default chunk is 255 KiB) and a partial last one.
    let data = pattern(700_000);
    let length = store.put(Bucket::Videos, fid, &meta(job), &mut &data[..]).await.unwrap();
    assert_eq!(length, data.len() as u64);

    let info = store.stat(Bucket::Videos, fid).await.unwrap();
    assert_eq!(info.length, data.len() as u64);
    assert_eq!(info.meta, meta(job));
    assert_eq!(read_all(&store, fid, None).await, data);
    for (first, last) in [(0, 0), (10, 20), (261_100, 261_200), (261_119, 522_241), (699_990, 699_999)] {
        let range = ByteRange { first, last };
        assert_eq!(read_all(&store, fid, Some(range)).await, &data[first as usize..=last as usize], "{first}-{last}");
    }
    // Stored where the seed looks: database `videos`, default bucket, ObjectId id.
    let files = client.database("videos").collection::<Document>("fs.files");
    assert!(files.find_one(doc! { "_id": object_id(fid) }).await.unwrap().is_some());
    assert!(matches!(store.stat(Bucket::Mp3s, fid).await, Err(StorageError::NotFound)));

    let local = store.local_media(Bucket::Videos, fid).await.unwrap();
    assert_eq!(std::fs::read(local.path()).unwrap(), data);

    store.delete(Bucket::Videos, fid).await.unwrap();
    assert!(matches!(store.stat(Bucket::Videos, fid).await, Err(StorageError::NotFound)));
    store.delete(Bucket::Videos, fid).await.unwrap();
}

#[tokio::test]
async fn a_failed_upload_leaves_no_chunks() {
    let client = mongo_client().await;
    let store = GridFsBlobStore::new(&client, traffic());
    let fid = Id::generate();
    let chunks: Vec<std::io::Result<bytes::Bytes>> =
        vec![Ok(bytes::Bytes::from(pattern(600_000))), Err(std::io::Error::other("client went away"))];
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
    std::fs::write(&path, pattern(600_000)).unwrap();
    store.put_file(Bucket::Mp3s, fid, &meta(Id::generate()), &path).await.unwrap();
    let chunks = client.database("mp3s").collection::<Document>("fs.chunks");
    assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), 3);
    store.delete(Bucket::Mp3s, fid).await.unwrap();
    assert_eq!(chunks.count_documents(doc! { "files_id": object_id(fid) }).await.unwrap(), 0);
    assert!(matches!(store.stat(Bucket::Mp3s, fid).await, Err(StorageError::NotFound)));
}
