//! Writing one GridFS file: the body is cut into chunks of [`CHUNK_SIZE`] bytes (all full but
//! the last, as every GridFS reader expects), each inserted by a task of its own so that up to
//! [`CHUNKS_IN_FLIGHT`] inserts travel while the next chunk is read; they are awaited oldest
//! first, so the file's chunks land in order of `n`. The files document, which makes the file
//! visible, is written by the caller after [`ChunkUpload::finish`]. An upload that fails is
//! [abandoned](ChunkUpload::abandon) and one that is dropped half-way cleans up in the
//! background: either way its chunks are deleted once no insert is under way any more.

use std::collections::VecDeque;

use mongodb::Collection;
use mongodb::bson::{Binary, Document, doc, oid::ObjectId, spec::BinarySubtype};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::chunks::mongo_error;
use crate::storage::{StorageError, StorageResult, timed};

/// Bytes per chunk of the files we write, measured on the MongoDB-wire test server (see
/// BENCHMARKS.md): a 57 MB video goes in with a sixth less time and server CPU than with the
/// drivers' 255 KiB; 1 MiB is no faster, and costs the service more memory per upload (the
/// driver holds each chunk twice while it is sent). Readers (the legacy design's too) use each file's
/// own `chunkSize`, so files written with another size stay readable.
pub const CHUNK_SIZE: usize = 512 * 1024;

/// Chunk inserts of one upload under way while the next chunk is read from the body. More
/// measured no faster on one machine (the server handles one insert at a time) and each costs
/// the service a chunk's memory twice over; across a network, more would hide round trips.
const CHUNKS_IN_FLIGHT: usize = 1;

pub(super) struct ChunkUpload {
    chunks: Collection<Document>,
    files_id: ObjectId,
    /// Inserts under way, lowest `n` first.
    in_flight: VecDeque<JoinHandle<StorageResult<()>>>,
    /// The next chunk's `n`.
    next_n: i32,
    /// Bytes read from the body so far.
    length: u64,
    /// `mp3c_gridfs_bytes_total` for this database, written.
    written: IntCounter,
    /// Finished (the caller wrote the files document) or cleaned up: nothing left for `Drop`.
    settled: bool,
}

impl ChunkUpload {
    pub(super) fn new(chunks: Collection<Document>, files_id: ObjectId, written: IntCounter) -> Self {
        ChunkUpload { chunks, files_id, in_flight: VecDeque::new(), next_n: 0, length: 0, written, settled: false }
    }

    /// Reads `body` to its end, chunk by chunk; a failure of the body is [`StorageError::Input`].
    pub(super) async fn write_all(&mut self, body: &mut (dyn AsyncRead + Send + Unpin)) -> StorageResult<()> {
        loop {
            let data = read_chunk(body).await?;
            let full = data.len() == CHUNK_SIZE;
            if !data.is_empty() {
                self.send(data).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Waits for every insert; returns the file's length.
    pub(super) async fn finish(&mut self) -> StorageResult<u64> {
        while !self.in_flight.is_empty() {
            self.wait_oldest().await?;
        }
        Ok(self.length)
    }

    /// The files document is written: the chunks now belong to a whole file.
    pub(super) fn settle(mut self) {
        self.settled = true;
    }

    /// Waits out the inserts under way, then deletes every chunk of the file.
    pub(super) async fn abandon(mut self) {
        self.settled = true;
        clean_up(self.chunks.clone(), self.files_id, std::mem::take(&mut self.in_flight)).await;
    }

    async fn send(&mut self, data: Vec<u8>) -> StorageResult<()> {
        if self.in_flight.len() >= CHUNKS_IN_FLIGHT {
            self.wait_oldest().await?;
        }
        self.length += data.len() as u64;
        self.written.inc_by(data.len() as u64);
        let chunk = doc! {
            "_id": ObjectId::new(),
            "files_id": self.files_id,
            "n": self.next_n,
            "data": Binary { subtype: BinarySubtype::Generic, bytes: data },
        };
        self.next_n += 1;
        let insert = self.chunks.clone();
        self.in_flight.push_back(tokio::spawn(async move {
            timed("writing a GridFS chunk", async { insert.insert_one(chunk).await.map(drop).map_err(mongo_error) })
                .await
        }));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> StorageResult<()> {
        let Some(insert) = self.in_flight.pop_front() else { return Ok(()) };
        insert.await.map_err(StorageError::unavailable)?
    }
}

impl Drop for ChunkUpload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (chunks, files_id, in_flight) = (self.chunks.clone(), self.files_id, std::mem::take(&mut self.in_flight));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(clean_up(chunks, files_id, in_flight));
        }
    }
}

/// Lets `in_flight` finish (an insert already sent could otherwise land after the delete),
/// then deletes the file's chunks.
async fn clean_up(
    chunks: Collection<Document>,
    files_id: ObjectId,
    in_flight: VecDeque<JoinHandle<StorageResult<()>>>,
) {
    for insert in in_flight {
        let _ = insert.await;
    }
    let delete = chunks.delete_many(doc! { "files_id": files_id });
    if let Err(error) = timed("deleting GridFS chunks", async { delete.await.map_err(mongo_error) }).await {
        tracing::warn!(%files_id, %error, "could not delete the chunks of an abandoned upload");
    }
}

/// The next [`CHUNK_SIZE`] bytes of `body`, fewer only at its end.
async fn read_chunk(body: &mut (dyn AsyncRead + Send + Unpin)) -> StorageResult<Vec<u8>> {
    let mut data = vec![0u8; CHUNK_SIZE];
    let mut filled = 0;
    while filled < CHUNK_SIZE {
        match body.read(&mut data[filled..]).await.map_err(StorageError::Input)? {
            0 => break,
            n => filled += n,
        }
    }
    data.truncate(filled);
    Ok(data)
}
