//! A GridFS file as a blocking, seekable stream, which FFmpeg reads on the converter's blocking
//! thread: a chunk is fetched (one query, under the call time limit) when a read first needs
//! it, and once reads go forward chunk after chunk, the next [`READ_AHEAD`] chunks are fetched
//! ahead on the runtime while FFmpeg works on this one. A seek forward keeps what was fetched
//! ahead of where it lands; a seek elsewhere (an MP4's index at the end, then back to the
//! start) drops it.
//!
//! A fetch that fails is recorded in the file's [`StoreFailure`] and fails every later read at
//! once, so that FFmpeg gives up quickly and the converter retries the job instead of failing
//! it.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use mongodb::Collection;
use mongodb::bson::{doc, oid::ObjectId};
use prometheus::IntCounter;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::chunks::{StoredChunk, chunk_fields, mongo_error};
use crate::storage::{StorageError, StoreFailure, timed};

/// Chunks fetched ahead of the one being read, once reading is sequential.
const READ_AHEAD: u64 = 2;

/// What stays fixed while a file is read.
#[derive(Clone)]
pub(super) struct ChunkSource {
    pub chunks: Collection<StoredChunk>,
    pub files_id: ObjectId,
    /// `mp3c_gridfs_bytes_total` for this database, read.
    pub read: IntCounter,
}

pub(super) struct GridFsMedia {
    source: ChunkSource,
    length: u64,
    chunk_size: u64,
    /// The runtime the fetches run on (reads come from a blocking thread outside it).
    runtime: Handle,
    position: u64,
    /// The chunk the last read came from, with its `n`.
    current: Option<(u64, Bytes)>,
    /// Fetches of the chunks right after `current`, in order of `n`.
    ahead: VecDeque<(u64, JoinHandle<io::Result<Bytes>>)>,
    failure: StoreFailure,
}

impl GridFsMedia {
    pub(super) fn new(source: ChunkSource, length: u64, chunk_size: u64, failure: StoreFailure) -> Self {
        GridFsMedia {
            source,
            length,
            chunk_size: chunk_size.max(1),
            runtime: Handle::current(),
            position: 0,
            current: None,
            ahead: VecDeque::new(),
            failure,
        }
    }

    fn last_chunk(&self) -> u64 {
        self.length.saturating_sub(1) / self.chunk_size
    }

    /// Chunk `n`, fetched now unless it is at hand or on its way.
    fn chunk(&mut self, n: u64) -> io::Result<&Bytes> {
        if let Some(cause) = self.failure.get() {
            return Err(io::Error::other(format!("GridFS failed earlier: {cause}")));
        }
        if !matches!(self.current, Some((at, _)) if at == n) {
            let sequential = matches!(self.current, Some((at, _)) if at + 1 == n);
            while let Some((skipped, _)) = self.ahead.front().filter(|(ahead, _)| *ahead < n) {
                tracing::trace!(chunk = skipped, "a chunk fetched ahead was skipped");
                self.ahead.pop_front().expect("just looked").1.abort();
            }
            let bytes = match self.ahead.front() {
                Some((ahead, _)) if *ahead == n => {
                    let (_, fetch) = self.ahead.pop_front().expect("just looked");
                    self.runtime.block_on(fetch).unwrap_or_else(|join| Err(io::Error::other(join)))
                }
                _ => {
                    self.drop_ahead();
                    self.runtime.block_on(fetch(self.source.clone(), n))
                }
            };
            let bytes = bytes.inspect_err(|error| {
                if error.kind() != io::ErrorKind::InvalidData {
                    self.failure.record(error);
                }
            })?;
            self.current = Some((n, bytes));
            if sequential {
                self.fetch_ahead(n);
            }
        }
        Ok(&self.current.as_ref().expect("set above").1)
    }

    /// Starts fetching the chunks after `n` that are not on their way yet.
    fn fetch_ahead(&mut self, n: u64) {
        let from = self.ahead.back().map_or(n, |(last, _)| *last) + 1;
        for next in from..=(n + READ_AHEAD).min(self.last_chunk()) {
            self.ahead.push_back((next, self.runtime.spawn(fetch(self.source.clone(), next))));
        }
    }

    fn drop_ahead(&mut self) {
        for (_, fetch) in self.ahead.drain(..) {
            fetch.abort();
        }
    }
}

impl Drop for GridFsMedia {
    fn drop(&mut self) {
        self.drop_ahead();
    }
}

/// Chunk `n` of the file. A missing chunk is a broken file (an error FFmpeg sees), not a store
/// failure.
async fn fetch(source: ChunkSource, n: u64) -> io::Result<Bytes> {
    let find = source.chunks.find_one(doc! { "files_id": source.files_id, "n": n as i32 }).projection(chunk_fields());
    let found = timed("reading a GridFS chunk", async { find.await.map_err(mongo_error) }).await;
    let chunk = found.map_err(|error: StorageError| io::Error::other(format!("{error}")))?;
    let chunk = chunk.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("chunk {n} is missing")))?;
    source.read.inc_by(chunk.data.bytes.len() as u64);
    Ok(Bytes::from(chunk.data.bytes))
}

impl Read for GridFsMedia {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.length || buf.is_empty() {
            return Ok(0);
        }
        let n = self.position / self.chunk_size;
        let offset = (self.position - n * self.chunk_size) as usize;
        let chunk = self.chunk(n)?;
        let Some(available) = chunk.get(offset..).filter(|rest| !rest.is_empty()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("chunk {n} is shorter than its file says")));
        };
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl Seek for GridFsMedia {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start"))?;
        Ok(self.position)
    }
}
