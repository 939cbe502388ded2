//! `convert VIDEO...`: each video uploaded, followed and its MP3 downloaded next to it (or into
//! `--output`), `--jobs` at a time; then one line per file. The files are checked before anything
//! is uploaded (and before logging in, when none is left): a video named twice (however its path
//! is written) is converted once, a video whose MP3 exists (without `--force`) is skipped, and
//! one whose MP3 would be the video itself fails at once. Each file's outcome is printed once, at
//! the end, in the order the files were given.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;

use super::ApiClient;
use super::download::refuse_existing;
use super::progress::Board;

pub struct ConvertOptions {
    /// The folder for the MP3s; None: next to each video.
    pub output: Option<PathBuf>,
    /// Files converted at a time.
    pub jobs: usize,
    /// Overwrite existing MP3s.
    pub force: bool,
}

/// One video (as named on the command line) and where its MP3 goes, or how it ends without
/// being converted.
pub struct Planned {
    video: PathBuf,
    mp3: PathBuf,
    refused: Option<Outcome>,
}

/// How one file ended.
pub enum Outcome {
    Done(PathBuf),
    /// Nothing to do: its MP3 is there already (the reason says so).
    Skipped(String),
    Failed(String),
}

pub struct Summary {
    pub outcomes: Vec<(PathBuf, Outcome)>,
}

impl Summary {
    /// Whether every file is done or had nothing to do.
    pub fn none_failed(&self) -> bool {
        self.outcomes.iter().all(|(_, outcome)| !matches!(outcome, Outcome::Failed(_)))
    }
}

/// Where each video's MP3 goes (`holiday.mp4` -> `holiday.mp3`), and which videos end now:
/// skipped when their MP3 exists, failed when missing or when their MP3 would be the video
/// itself or an earlier video's. A video named again (`./a.mp4` after `a.mp4`, or through a
/// link) is left out.
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
            Ok(_) => Some(Outcome::Failed(format!("{} is not a file", video.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Some(Outcome::Failed(format!("no such file: {}", video.display())))
            }
            Err(error) => Some(Outcome::Failed(format!("{}: {error}", video.display()))),
        };
        planned.push(Planned { video: video.clone(), mp3, refused });
    }
    Ok(planned)
}

/// How the video at `canonical` ends now, if it cannot have its MP3 at `mp3`: failed when the
/// MP3 would be the video itself or another of the `inputs` (even with `force`), or another
/// video's MP3 (noted in `taken`); skipped when it exists.
fn refusal(
    canonical: &Path,
    mp3: &Path,
    inputs: &HashSet<PathBuf>,
    taken: &mut HashSet<PathBuf>,
    force: bool,
) -> Option<Outcome> {
    let target = canonical_target(mp3);
    let failed = if target.as_deref() == Some(canonical) {
        format!(
            "its MP3 would be written over the video itself, {}: choose another folder with --output",
            mp3.display()
        )
    } else if target.as_ref().is_some_and(|target| inputs.contains(target)) {
        format!(
            "its MP3 would be written over {}, which is also being converted: choose another folder with --output",
            mp3.display()
        )
    } else if !taken.insert(target.unwrap_or_else(|| mp3.to_owned())) {
        format!("another video's MP3 is {} too", mp3.display())
    } else {
        return refuse_existing(mp3, force).err().map(|error| Outcome::Skipped(error.to_string()));
    };
    Some(Outcome::Failed(failed))
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
    let mut outcomes: Vec<(usize, PathBuf, Outcome)> =
        refused.into_iter().filter_map(|(index, planned)| Some((index, planned.video, planned.refused?))).collect();
    if !work.is_empty() {
        let client = connect().await?;
        outcomes.extend(convert_all(&client, work, options).await);
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    let summary = Summary { outcomes: outcomes.into_iter().map(|(_, video, outcome)| (video, outcome)).collect() };
    for (video, outcome) in &summary.outcomes {
        match outcome {
            Outcome::Done(mp3) => println!("{}: done -> {}", video.display(), mp3.display()),
            Outcome::Skipped(reason) => println!("{}: skipped: {reason}", video.display()),
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
        match finished.done_mp3() {
            Some(mp3_fid) => client.download(mp3_fid, &planned.mp3, force, &progress).await,
            None => {
                anyhow::bail!("{}", finished.error.unwrap_or_else(|| format!("the job ended `{}`", finished.state)))
            }
        }
    };
    let outcome = match converted.await {
        Ok(()) => Outcome::Done(planned.mp3.clone()),
        Err(error) => Outcome::Failed(format!("{error:#}")),
    };
    progress.finish();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_mp3_is_a_skip_and_a_missing_video_is_no_such_file() {
        let folder = tempfile::tempdir().unwrap();
        let clip = folder.path().join("clip.mp4");
        std::fs::write(&clip, b"a video").unwrap();
        std::fs::write(folder.path().join("clip.mp3"), b"its MP3").unwrap();
        let options = ConvertOptions { output: None, jobs: 1, force: false };
        let planned = plan(&[clip, folder.path().join("missing.mp4")], &options).unwrap();
        assert!(matches!(&planned[0].refused, Some(Outcome::Skipped(reason)) if reason.contains("exists")));
        assert!(matches!(&planned[1].refused, Some(Outcome::Failed(reason)) if reason.starts_with("no such file")));
    }

    #[test]
    fn no_mp3_is_planned_over_any_video_given_even_with_force() {
        let folder = tempfile::tempdir().unwrap();
        let (song, clip) = (folder.path().join("clip.mp3"), folder.path().join("clip.mp4"));
        std::fs::write(&song, b"an mp3 given as a video").unwrap();
        std::fs::write(&clip, b"a video").unwrap();
        let options = ConvertOptions { output: None, jobs: 1, force: true };
        let planned = plan(&[clip, song], &options).unwrap();
        let reasons: Vec<&str> = planned
            .iter()
            .map(|p| match &p.refused {
                Some(Outcome::Failed(reason)) => reason.as_str(),
                _ => "-",
            })
            .collect();
        assert!(reasons[0].contains("which is also being converted"), "{reasons:?}");
        assert!(reasons[1].contains("over the video itself"), "{reasons:?}");
    }
}
