//! `convert VIDEO...`: each video uploaded, followed and its MP3 downloaded next to it (or into
//! `--output`), `--jobs` at a time; then one line per file. The files are checked before anything
//! is uploaded (and before logging in, when none is left): a video named twice (however its path
//! is written) is converted once, and a video whose MP3 exists (without `--force`), or would be
//! the video itself, fails at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;

use super::ApiClient;
use super::download::refuse_existing;
use super::progress::Board;
use crate::storage::JobState;

pub struct ConvertOptions {
    /// The folder for the MP3s; None: next to each video.
    pub output: Option<PathBuf>,
    /// Files converted at a time.
    pub jobs: usize,
    /// Overwrite existing MP3s.
    pub force: bool,
}

/// One video (as named on the command line) and where its MP3 goes, or why it will not be
/// converted.
pub struct Planned {
    video: PathBuf,
    mp3: PathBuf,
    refused: Option<String>,
}

/// How one file ended.
pub enum Outcome {
    Done(PathBuf),
    Failed(String),
}

pub struct Summary {
    pub outcomes: Vec<(PathBuf, Outcome)>,
}

impl Summary {
    pub fn all_done(&self) -> bool {
        self.outcomes.iter().all(|(_, outcome)| matches!(outcome, Outcome::Done(_)))
    }
}

/// Where each video's MP3 goes (`holiday.mp4` -> `holiday.mp3`), and which videos are refused
/// now: missing, or whose MP3 exists, or is the video itself, or is an earlier video's. A video
/// named again (`./a.mp4` after `a.mp4`, or through a link) is left out.
pub fn plan(videos: &[PathBuf], options: &ConvertOptions) -> anyhow::Result<Vec<Planned>> {
    if let Some(folder) = &options.output {
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    // Every video given, so that no MP3 is written over one of them (with --force) while it may
    // be uploading.
    let inputs: HashSet<PathBuf> = videos.iter().filter_map(|video| video.canonicalize().ok()).collect();
    let (mut seen, mut taken) = (HashSet::new(), HashSet::new());
    let mut planned = Vec::new();
    for video in videos {
        let mp3 = mp3_path(video, options.output.as_deref());
        let refused = match video.canonicalize() {
            Ok(canonical) if !seen.insert(canonical.clone()) => continue,
            Ok(canonical) if canonical.is_file() => refusal(&canonical, &mp3, &inputs, &mut taken, options.force),
            _ => Some(format!("{} is not a file", video.display())),
        };
        planned.push(Planned { video: video.clone(), mp3, refused });
    }
    Ok(planned)
}

/// Why the video at `canonical` cannot have its MP3 at `mp3`, if it cannot: the MP3 would be
/// the video itself or another of the `inputs` (even with `force`), or another video's MP3
/// (noted in `taken`), or exists.
fn refusal(
    canonical: &Path,
    mp3: &Path,
    inputs: &HashSet<PathBuf>,
    taken: &mut HashSet<PathBuf>,
    force: bool,
) -> Option<String> {
    let target = canonical_target(mp3);
    if target.as_deref() == Some(canonical) {
        Some(format!(
            "its MP3 would be written over the video itself, {}: choose another folder with --output",
            mp3.display()
        ))
    } else if target.as_ref().is_some_and(|target| inputs.contains(target)) {
        Some(format!(
            "its MP3 would be written over {}, which is also being converted: choose another folder with --output",
            mp3.display()
        ))
    } else if !taken.insert(target.unwrap_or_else(|| mp3.to_owned())) {
        Some(format!("another video's MP3 is {} too", mp3.display()))
    } else {
        refuse_existing(mp3, force).err().map(|error| error.to_string())
    }
}

/// The canonical path a file written at `path` would have (its folder's canonical path and its
/// name, or the file's own when it exists: a link is written through); None if the folder is
/// missing.
fn canonical_target(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok().or_else(|| {
        let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(folder.canonicalize().ok()?.join(path.file_name()?))
    })
}

fn mp3_path(video: &Path, output: Option<&Path>) -> PathBuf {
    let name = Path::new(video.file_name().unwrap_or(video.as_os_str())).with_extension("mp3");
    match output {
        Some(folder) => folder.join(name),
        None => video.with_file_name(name),
    }
}

/// Converts every planned video that was not refused, `options.jobs` at a time, with the
/// client that `connect` gives (only called when there is such a video), and prints one line
/// per file.
pub async fn run(
    plan: Vec<Planned>,
    options: &ConvertOptions,
    connect: impl AsyncFnOnce() -> anyhow::Result<ApiClient>,
) -> anyhow::Result<Summary> {
    let (work, refused): (Vec<_>, Vec<_>) =
        plan.into_iter().enumerate().partition(|(_, planned)| planned.refused.is_none());
    let mut outcomes: Vec<(usize, PathBuf, Outcome)> = refused
        .into_iter()
        .map(|(index, planned)| (index, planned.video, Outcome::Failed(planned.refused.unwrap_or_default())))
        .collect();
    if !work.is_empty() {
        let client = connect().await?;
        outcomes.extend(convert_all(&client, work, options).await);
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    let summary = Summary { outcomes: outcomes.into_iter().map(|(_, video, outcome)| (video, outcome)).collect() };
    for (video, outcome) in &summary.outcomes {
        match outcome {
            Outcome::Done(mp3) => println!("{}: done -> {}", video.display(), mp3.display()),
            Outcome::Failed(reason) => println!("{}: failed: {reason}", video.display()),
        }
    }
    Ok(summary)
}

/// Converts the numbered videos, `options.jobs` at a time; their outcomes in any order.
async fn convert_all(
    client: &ApiClient,
    work: Vec<(usize, Planned)>,
    options: &ConvertOptions,
) -> Vec<(usize, PathBuf, Outcome)> {
    let board = Board::new();
    futures_util::stream::iter(work)
        .map(|(index, planned)| {
            let board = &board;
            async move {
                let outcome = convert_one(client, board, &planned, options.force).await;
                (index, planned.video, outcome)
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await
}

async fn convert_one(client: &ApiClient, board: &Board, planned: &Planned, force: bool) -> Outcome {
    let name = planned.video.file_name().unwrap_or(planned.video.as_os_str()).to_string_lossy();
    let progress = Arc::new(board.file(&name));
    let converted = async {
        let job_id = client.upload(&planned.video, progress.clone()).await?;
        tracing::debug!(%job_id, video = %planned.video.display(), "uploaded");
        let finished = client.follow(&job_id, &progress).await?;
        match (finished.state, finished.mp3_fid) {
            (JobState::Done, Some(mp3_fid)) => client.download(&mp3_fid, &planned.mp3, force, &progress).await,
            _ => anyhow::bail!("{}", finished.error.unwrap_or_else(|| "the job failed".to_owned())),
        }
    };
    let outcome = match converted.await {
        Ok(()) => Outcome::Done(planned.mp3.clone()),
        Err(error) => Outcome::Failed(format!("{error:#}")),
    };
    progress.finish();
    // As it happens, on the progress side (standard error); the summary on standard output
    // says it again at the end, in the order the files were given.
    board.println(&match &outcome {
        Outcome::Done(mp3) => format!("{name}: saved {}", mp3.display()),
        Outcome::Failed(reason) => format!("{name}: failed: {reason}"),
    });
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_mp3_is_planned_over_any_video_given_even_with_force() {
        let folder = tempfile::tempdir().unwrap();
        let (song, clip) = (folder.path().join("clip.mp3"), folder.path().join("clip.mp4"));
        std::fs::write(&song, b"an mp3 given as a video").unwrap();
        std::fs::write(&clip, b"a video").unwrap();
        let options = ConvertOptions { output: None, jobs: 1, force: true };
        let planned = plan(&[clip, song], &options).unwrap();
        let reasons: Vec<&str> = planned.iter().map(|p| p.refused.as_deref().unwrap_or("-")).collect();
        assert!(reasons[0].contains("which is also being converted"), "{reasons:?}");
        assert!(reasons[1].contains("over the video itself"), "{reasons:?}");
    }
}
