//! `convert VIDEO...`: each video uploaded, followed and its MP3 downloaded next to it (or into
//! `--output`), `--jobs` at a time; then one line per file. A file whose MP3 exists (without
//! `--force`) fails before anything is uploaded, so no work is wasted on it.

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

/// One video and where its MP3 goes, or why it will not be converted.
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
/// now: missing, or whose MP3 exists, or the same MP3 as an earlier video's.
pub fn plan(videos: &[PathBuf], options: &ConvertOptions) -> anyhow::Result<Vec<Planned>> {
    if let Some(folder) = &options.output {
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    let mut taken = HashSet::new();
    let planned = videos.iter().map(|video| {
        let mp3 = mp3_path(video, options.output.as_deref());
        let refused = if !video.is_file() {
            Some(format!("{} is not a file", video.display()))
        } else if !taken.insert(mp3.clone()) {
            Some(format!("another video's MP3 is {} too", mp3.display()))
        } else {
            refuse_existing(&mp3, options.force).err().map(|error| error.to_string())
        };
        Planned { video: video.clone(), mp3, refused }
    });
    Ok(planned.collect())
}

fn mp3_path(video: &Path, output: Option<&Path>) -> PathBuf {
    let name = Path::new(video.file_name().unwrap_or(video.as_os_str())).with_extension("mp3");
    match output {
        Some(folder) => folder.join(name),
        None => video.with_file_name(name),
    }
}

/// Converts every planned video, `options.jobs` at a time, and prints one line per file.
pub async fn run(client: &ApiClient, plan: Vec<Planned>, options: &ConvertOptions) -> anyhow::Result<Summary> {
    let board = Board::new();
    let mut outcomes: Vec<(usize, PathBuf, Outcome)> = futures_util::stream::iter(plan.into_iter().enumerate())
        .map(|(index, planned)| {
            let board = &board;
            async move {
                let outcome = convert_one(client, board, &planned, options.force).await;
                (index, planned.video, outcome)
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
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

async fn convert_one(client: &ApiClient, board: &Board, planned: &Planned, force: bool) -> Outcome {
    if let Some(reason) = &planned.refused {
        return Outcome::Failed(reason.clone());
    }
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
    board.println(&match &outcome {
        Outcome::Done(mp3) => format!("{name}: done -> {}", mp3.display()),
        Outcome::Failed(reason) => format!("{name}: failed: {reason}"),
    });
    outcome
}
