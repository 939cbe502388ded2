-- Finding a job by its video: for results that a seed converter publishes without a job id.
CREATE INDEX job_by_video ON job (video_fid);
