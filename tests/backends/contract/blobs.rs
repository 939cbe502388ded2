//! The blob store's contract: a blob streams in whole or not at all, streams out whole or by
//! range, carries its metadata, is read in place by the converter (seeking anywhere), and is
//! deleted (twice is harmless).

use std::io::SeekFrom;

use mp3converter::ids::Id;
use mp3converter::storage::files::FileBlobStore;
use mp3converter::storage::gridfs::{CHUNK_SIZE, GridFsBlobStore};
use mp3converter::storage::{BlobMeta, BlobStore, Bucket, ByteRange, Media, SeekableRead, StorageError};
use tokio::io::AsyncReadExt;

use super::{Keep, contract};
use crate::servers::mongo_client;

fn meta(job_id: Id) -> BlobMeta {
    BlobMeta {
        owner: "a@example.com".into(),
        filename: "clip.mp4".into(),
        content_type: "video/mp4".into(),
        job_id: Some(job_id),
    }
}

/// Bytes that differ at every offset, so a wrong range shows: more than two GridFS chunks.
fn pattern() -> Vec<u8> {
    (0..2 * CHUNK_SIZE + 70_000).map(|i| (i % 251) as u8).collect()
}

async fn read_all(store: &dyn BlobStore, fid: Id, range: Option<ByteRange>) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(Bucket::Videos, fid, range).await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

async fn files() -> (Box<dyn BlobStore>, Keep) {
    let dir = tempfile::tempdir().unwrap();
    (Box::new(FileBlobStore::open(dir.path().join("blobs")).await.unwrap()), Some(dir))
}

/// The `videos` and `mp3s` databases are shared by every test of the run: each test's blobs
/// have ids of their own.
async fn gridfs() -> (Box<dyn BlobStore>, Keep) {
    let traffic = mp3converter::metrics::Metrics::new("test").stores.gridfs_bytes.clone();
    (Box::new(GridFsBlobStore::new(&mongo_client().await, traffic)), None)
}

contract! {
    checks: [
        a_blob_streams_in_and_out_whole_and_by_range,
        a_failed_upload_leaves_nothing_behind,
        a_blob_is_read_in_place_seeking_anywhere,
        a_local_file_is_stored_and_its_metadata_replaced,
    ],
    backends: { files => files(), gridfs => gridfs() }
}

async fn a_blob_streams_in_and_out_whole_and_by_range(store: &dyn BlobStore) {
    let (fid, job, data) = (Id::generate(), Id::generate(), pattern());
    let length = store.put(Bucket::Videos, fid, &meta(job), &mut &data[..]).await.unwrap();
    assert_eq!(length, data.len() as u64);
    let info = store.stat(Bucket::Videos, fid).await.unwrap();
    assert_eq!((info.length, info.meta), (data.len() as u64, meta(job)));
    assert!(read_all(store, fid, None).await == data, "the whole blob comes back");
    let (chunk, last) = (CHUNK_SIZE as u64, data.len() as u64 - 1);
    for (first, last) in [(0, 0), (10, 20), (chunk - 5, chunk + 5), (chunk - 1, 2 * chunk), (last - 9, last)] {
        let range = ByteRange { first, last };
        assert_eq!(read_all(store, fid, Some(range)).await, &data[first as usize..=last as usize], "{first}-{last}");
    }
    assert!(matches!(store.stat(Bucket::Mp3s, fid).await, Err(StorageError::NotFound)), "buckets are apart");
    store.delete(Bucket::Videos, fid).await.unwrap();
    assert!(matches!(store.stat(Bucket::Videos, fid).await, Err(StorageError::NotFound)));
    assert!(matches!(store.open(Bucket::Videos, fid, None).await, Err(StorageError::NotFound)));
    store.delete(Bucket::Videos, fid).await.unwrap();
    store.ping().await.unwrap();
}

async fn a_failed_upload_leaves_nothing_behind(store: &dyn BlobStore) {
    let fid = Id::generate();
    // Several chunks are on their way when the body fails.
    let body: Vec<std::io::Result<bytes::Bytes>> =
        vec![Ok(bytes::Bytes::from(pattern())), Err(std::io::Error::other("client went away"))];
    let mut failing = Box::pin(tokio_util::io::StreamReader::new(futures_util::stream::iter(body)));
    let stored = store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut failing).await;
    assert!(matches!(stored, Err(StorageError::Input(_))), "the body's failure is the caller's: {stored:?}");
    assert!(matches!(store.stat(Bucket::Videos, fid).await, Err(StorageError::NotFound)));
}

/// Reads `stream` (of `size` bytes) as FFmpeg reads an MP4: its index at the end, then back
/// to the start, across a chunk boundary, and a skip to chunk `skip_to`; gives what it read at
/// each offset, and checks that nothing lies past the end.
pub fn read_as_ffmpeg_does(stream: &mut dyn SeekableRead, size: u64, skip_to: u64) -> Vec<(usize, Vec<u8>)> {
    let moves = [
        (SeekFrom::End(-100), 100),
        (SeekFrom::Start(0), 10),
        (SeekFrom::Current(CHUNK_SIZE as i64 - 20), 40),
        (SeekFrom::Start(skip_to * CHUNK_SIZE as u64 + 7), 10),
    ];
    let mut pieces = Vec::new();
    for (at, len) in moves {
        let offset = stream.seek(at).unwrap();
        let mut piece = vec![0u8; len];
        stream.read_exact(&mut piece).unwrap();
        pieces.push((offset as usize, piece));
    }
    assert_eq!(stream.seek(SeekFrom::End(0)).unwrap(), size);
    assert_eq!(stream.read(&mut [0u8; 8]).unwrap(), 0, "nothing past the end");
    pieces
}

async fn a_blob_is_read_in_place_seeking_anywhere(store: &dyn BlobStore) {
    let (fid, data) = (Id::generate(), pattern());
    store.put(Bucket::Videos, fid, &meta(Id::generate()), &mut &data[..]).await.unwrap();
    let source = store.media(Bucket::Videos, fid).await.unwrap();
    let size = data.len() as u64;
    // On a blocking thread, as FFmpeg reads it: an MP4's index at the end, then back to the
    // start, across a chunk boundary, and a skip ahead.
    let (pieces, failure) = tokio::task::spawn_blocking(move || {
        let mut stream: Box<dyn SeekableRead> = match source.media {
            Media::File(path) => Box::new(std::fs::File::open(path).unwrap()),
            Media::Stream(stream) => stream,
        };
        (read_as_ffmpeg_does(stream.as_mut(), size, 2), source.failure.get().map(str::to_owned))
    })
    .await
    .unwrap();
    for (offset, piece) in pieces {
        assert_eq!(piece, &data[offset..offset + piece.len()], "at {offset}");
    }
    assert_eq!(failure, None, "a healthy store records no failure");
    assert!(matches!(store.media(Bucket::Videos, Id::generate()).await, Err(StorageError::NotFound)));
}

async fn a_local_file_is_stored_and_its_metadata_replaced(store: &dyn BlobStore) {
    let (fid, data) = (Id::generate(), pattern());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.mp3");
    std::fs::write(&path, &data).unwrap();
    assert_eq!(store.put_file(Bucket::Mp3s, fid, &meta(Id::generate()), &path).await.unwrap(), data.len() as u64);
    let relabelled = BlobMeta { owner: "b@example.com".into(), filename: "clip.mp3".into(), ..meta(Id::generate()) };
    store.set_meta(Bucket::Mp3s, fid, &relabelled).await.unwrap();
    assert_eq!(store.stat(Bucket::Mp3s, fid).await.unwrap().meta, relabelled);
    let mut back = Vec::new();
    store.open(Bucket::Mp3s, fid, None).await.unwrap().read_to_end(&mut back).await.unwrap();
    assert!(back == data, "the file comes back as it was");
    assert!(matches!(store.set_meta(Bucket::Mp3s, Id::generate(), &relabelled).await, Err(StorageError::NotFound)));
    store.delete(Bucket::Mp3s, fid).await.unwrap();
}
