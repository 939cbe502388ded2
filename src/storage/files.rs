//! The embedded blob store: one file per blob under `<data-dir>/blobs/<bucket>/`, with its
//! metadata beside it as `<fid>.json`.
//!
//! A blob is written under a temporary name in `<data-dir>/blobs/tmp/` and renamed into place
//! only when complete, so a reader never sees half a file and a failed upload leaves nothing
//! under its id (the temporary file is removed when the write fails or is abandoned).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{
    BlobInfo, BlobMeta, BlobReader, BlobStore, Bucket, ByteRange, Media, MediaSource, StorageError, StorageResult,
    StoreFailure,
};
use crate::ids::Id;
use crate::scratch::ScratchFile;
use crate::security::private_files::{owner_only_dir, owner_only_tree};

pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// Creates the folders under `root` if needed, readable by this user only (a folder of an
    /// older version, open to others, is tightened whole), and clears temporaries a crash left
    /// behind.
    pub async fn open(root: PathBuf) -> anyhow::Result<Self> {
        let store = FileBlobStore { root };
        let _ = tokio::fs::remove_dir_all(store.scratch_dir()).await;
        let tightened = owner_only_tree(&store.root)?;
        if tightened > 0 {
            tracing::info!(tightened, root = %store.root.display(), "blob files and folders made readable by their owner only");
        }
        for dir in [store.scratch_dir(), store.bucket_dir(Bucket::Videos), store.bucket_dir(Bucket::Mp3s)] {
            owner_only_dir(&dir)?;
        }
        Ok(store)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.name())
    }

    fn data_path(&self, bucket: Bucket, fid: Id) -> PathBuf {
        self.bucket_dir(bucket).join(fid.to_string())
    }

    fn meta_path(&self, bucket: Bucket, fid: Id) -> PathBuf {
        self.bucket_dir(bucket).join(format!("{fid}.json"))
    }

    async fn write_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()> {
        let (scratch, mut file) =
            ScratchFile::create(&self.scratch_dir(), "json").await.map_err(StorageError::unavailable)?;
        let json = serde_json::to_vec(meta).map_err(StorageError::unavailable)?;
        file.write_all(&json).await.map_err(StorageError::unavailable)?;
        drop(file);
        scratch.persist(&self.meta_path(bucket, fid)).await.map_err(StorageError::unavailable)
    }

    async fn read_meta(&self, bucket: Bucket, fid: Id) -> StorageResult<BlobMeta> {
        let json = match tokio::fs::read(self.meta_path(bucket, fid)).await {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound);
            }
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        serde_json::from_slice(&json).map_err(StorageError::unavailable)
    }

    async fn open_data(&self, bucket: Bucket, fid: Id) -> StorageResult<tokio::fs::File> {
        match tokio::fs::File::open(self.data_path(bucket, fid)).await {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }
}

/// Copies `body` into `file`, telling the caller's stream failing ([`StorageError::Input`])
/// apart from our disk failing. Each write is one call on the blocking pool, so writes go in
/// big pieces.
pub(crate) async fn copy_into(
    body: &mut (dyn AsyncRead + Send + Unpin),
    file: &mut tokio::fs::File,
) -> StorageResult<u64> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buffer).await.map_err(StorageError::Input)?;
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n]).await.map_err(StorageError::unavailable)?;
        total += n as u64;
    }
    Ok(total)
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put(
        &self,
        bucket: Bucket,
        fid: Id,
        meta: &BlobMeta,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> StorageResult<u64> {
        // The scratch file deletes itself if anything below fails or this future is dropped.
        let (scratch, mut file) =
            ScratchFile::create(&self.scratch_dir(), "blob").await.map_err(StorageError::unavailable)?;
        let length = copy_into(body, &mut file).await?;
        file.sync_all().await.map_err(StorageError::unavailable)?;
        drop(file);
        self.write_meta(bucket, fid, meta).await?;
        scratch.persist(&self.data_path(bucket, fid)).await.map_err(StorageError::unavailable)?;
        Ok(length)
    }

    async fn stat(&self, bucket: Bucket, fid: Id) -> StorageResult<BlobInfo> {
        let length = match tokio::fs::metadata(self.data_path(bucket, fid)).await {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound);
            }
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        Ok(BlobInfo { length, meta: self.read_meta(bucket, fid).await? })
    }

    async fn open(&self, bucket: Bucket, fid: Id, range: Option<ByteRange>) -> StorageResult<BlobReader> {
        let mut file = self.open_data(bucket, fid).await?;
        match range {
            None => Ok(Box::new(file)),
            Some(range) => {
                file.seek(SeekFrom::Start(range.first)).await.map_err(StorageError::unavailable)?;
                Ok(Box::new(file.take(range.len())))
            }
        }
    }

    async fn set_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()> {
        self.stat(bucket, fid).await?;
        self.write_meta(bucket, fid, meta).await
    }

    async fn media(&self, bucket: Bucket, fid: Id) -> StorageResult<MediaSource> {
        let path = self.data_path(bucket, fid);
        match tokio::fs::try_exists(&path).await {
            Ok(true) => Ok(MediaSource { media: Media::File(path), failure: StoreFailure::default() }),
            Ok(false) => Err(StorageError::NotFound),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()> {
        for path in [self.data_path(bucket, fid), self.meta_path(bucket, fid)] {
            remove_if_present(&path).await?;
        }
        Ok(())
    }

    async fn ping(&self) -> StorageResult<()> {
        tokio::fs::metadata(self.scratch_dir()).await.map_err(StorageError::unavailable)?;
        Ok(())
    }
}

async fn remove_if_present(path: &Path) -> StorageResult<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> BlobMeta {
        BlobMeta { owner: "a@b.c".into(), filename: "x.mp4".into(), content_type: "video/mp4".into(), job_id: None }
    }

    /// The blob store's contract checks that nothing is stored; this, that the partial file
    /// does not stay in the scratch folder either.
    #[tokio::test]
    async fn a_failed_body_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::open(dir.path().to_path_buf()).await.unwrap();
        let fid = Id::generate();
        let failing = tokio_util::io::StreamReader::new(futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"partial")),
            Err(std::io::Error::other("client went away")),
        ]));
        let mut failing = Box::pin(failing);
        let result = store.put(Bucket::Videos, fid, &meta(), &mut failing).await;
        assert!(matches!(result, Err(StorageError::Input(_))));
        assert!(matches!(store.stat(Bucket::Videos, fid).await, Err(StorageError::NotFound)));
        // The scratch file is removed on the blocking pool.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_dir(store.scratch_dir()).unwrap().count() > 0 {
            assert!(std::time::Instant::now() < deadline, "the partial upload stayed in the scratch folder");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
