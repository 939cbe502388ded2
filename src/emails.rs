//! What the emails to a job's owner say: which file and job they are about, how to get the
//! MP3 (a link when the service knows its public address, the commands otherwise), in a
//! plain-text and an HTML part. Pure functions; the notifier sends what they compose.

use url::Url;

use crate::ids::Id;
use crate::mailer::Email;
use crate::storage::Job;

/// The email for a job whose MP3 is ready. Keeps the legacy design's line (`mp3 file_id: … is now
/// ready!`), which scripts written against the legacy design's emails look for.
pub fn ready(job: &Job, mp3_fid: Id, public_url: Option<&Url>) -> Email {
    let about = format!("Your video {} (job {}) is now an MP3.", job.filename, job.id);
    let subject = format!("MP3 ready: {}", one_line(&job.filename));
    Email { id: Some(format!("job-{}.ready", job.id)), ..compose(&job.owner, subject, &about, mp3_fid, public_url) }
}

/// The email for an MP3 that no job of ours tracks (a legacy converter's result for a video a
/// legacy gateway took): all it can name is the MP3.
pub fn ready_untracked(owner: &str, mp3_fid: Id, public_url: Option<&Url>) -> Email {
    compose(owner, "MP3 Download".to_owned(), "Your video is now an MP3.", mp3_fid, public_url)
}

/// The email for a job that failed, with the reason.
pub fn failed(job: &Job) -> Email {
    let reason = job.error.as_deref().unwrap_or("unknown");
    let text =
        format!("Your video {} (job {}) could not be converted to MP3.\nReason: {reason}\n", job.filename, job.id);
    let html = format!(
        "<p>Your video <b>{}</b> (job <code>{}</code>) could not be converted to MP3.</p>\n<p>Reason: {}</p>\n",
        escape(&job.filename),
        job.id,
        escape(reason)
    );
    let subject = format!("MP3 conversion failed: {}", one_line(&job.filename));
    Email { id: Some(format!("job-{}.failed", job.id)), to: job.owner.clone(), subject, text, html }
}

fn compose(to: &str, subject: String, about: &str, mp3_fid: Id, public_url: Option<&Url>) -> Email {
    let legacy_line = format!("mp3 file_id: {mp3_fid} is now ready!");
    // Short lines: an email whose lines fit in 76 characters travels as plain 7-bit text.
    let (how_text, how_html) = match public_url {
        Some(base) => {
            let page = base.as_str();
            let download = format!("{}download?fid={mp3_fid}", with_trailing_slash(page));
            (
                format!(
                    "Download it on {page} (sign in), or with your token:\n  \
                     mp3converter download {mp3_fid} \\\n    --server {page}\n  \
                     curl -OJ -H \"Authorization: Bearer $TOKEN\" \\\n    \"{download}\"\n"
                ),
                format!(
                    "<p><a href=\"{}\">Sign in to download it</a>,\nor with your token:\n\
                     <code>mp3converter download {mp3_fid}\n--server {}</code></p>\n",
                    escape(page),
                    escape(page)
                ),
            )
        }
        None => (
            format!(
                "Download it on the service's web page (sign in), or with your token:\n  \
                 mp3converter download {mp3_fid}\n  \
                 GET /download?fid={mp3_fid}\n    \
                 with the header \"Authorization: Bearer <token>\"\n"
            ),
            format!(
                "<p>Download it on the service's web page (sign in),\nor with your token:\n\
                 <code>mp3converter download {mp3_fid}</code></p>\n"
            ),
        ),
    };
    Email {
        id: None,
        to: to.to_owned(),
        subject,
        text: format!("{about}\n\n{legacy_line}\n\n{how_text}"),
        html: format!("<p>{}</p>\n<p>{legacy_line}</p>\n{how_html}", escape(about)),
    }
}

/// A file name fit for a subject line: control characters (a name may hold line breaks) become
/// spaces, so that no name can end the header or start another.
fn one_line(name: &str) -> String {
    name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// Text made safe to put in HTML: file names and reasons come from users and from FFmpeg.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::JobState;

    fn job(filename: &str) -> Job {
        let mut job = Job::queued(Id::generate(), "owner@example.com", Id::generate(), filename, 1_000);
        job.state = JobState::Done;
        job
    }

    #[test]
    fn a_ready_email_names_the_file_and_the_job_and_keeps_the_legacy_line() {
        let job = job("holiday.mp4");
        let mp3 = Id::generate();
        let email = ready(&job, mp3, None);
        assert_eq!(email.to, "owner@example.com");
        assert_eq!(email.subject, "MP3 ready: holiday.mp4");
        for part in [&email.text, &email.html] {
            assert!(part.contains("holiday.mp4") && part.contains(&job.id.to_string()), "{part}");
            assert!(part.contains(&format!("mp3 file_id: {mp3} is now ready!")), "{part}");
            assert!(part.contains(&format!("mp3converter download {mp3}")), "{part}");
        }
        assert!(email.text.contains(&format!("GET /download?fid={mp3}")), "{}", email.text);
    }

    #[test]
    fn a_job_email_keeps_its_identity_when_sent_again_and_an_untracked_one_has_none() {
        let job = job("a.mp4");
        let mp3 = Id::generate();
        assert_eq!(ready(&job, mp3, None).id, Some(format!("job-{}.ready", job.id)));
        assert_eq!(ready(&job, mp3, None).id, ready(&job, mp3, None).id);
        assert_eq!(failed(&job).id, Some(format!("job-{}.failed", job.id)));
        assert_eq!(ready_untracked("owner@example.com", mp3, None).id, None);
    }

    #[test]
    fn with_a_public_url_the_email_links_to_the_page_and_the_download() {
        let base = Url::parse("https://mp3.example.com/app").unwrap();
        let mp3 = Id::generate();
        let email = ready(&job("a.mp4"), mp3, Some(&base));
        assert!(email.text.contains(&format!("\"https://mp3.example.com/app/download?fid={mp3}\"")), "{}", email.text);
        assert!(email.html.contains("<a href=\"https://mp3.example.com/app\">"), "{}", email.html);
    }

    #[test]
    fn a_file_name_with_line_breaks_stays_on_the_subject_line() {
        let email = ready(&job("clip\r\nBcc: someone@example.com.mp4"), Id::generate(), None);
        assert_eq!(email.subject, "MP3 ready: clip  Bcc: someone@example.com.mp4");
        let mut failed_job = job("a\nb.mp4");
        failed_job.state = JobState::Failed;
        assert_eq!(failed(&failed_job).subject, "MP3 conversion failed: a b.mp4");
    }

    #[test]
    fn lines_fit_in_76_characters_so_the_email_travels_as_plain_text() {
        let base = Url::parse("https://mp3.example.com/").unwrap();
        for public_url in [None, Some(&base)] {
            let email = ready(&job("holiday.mp4"), Id::generate(), public_url);
            for line in email.text.lines().chain(email.html.lines()) {
                assert!(line.len() <= 76, "{} characters: {line}", line.len());
            }
        }
    }

    #[test]
    fn file_names_and_reasons_are_escaped_in_html_only() {
        let mut job = job("<script>&.mp4");
        job.state = JobState::Failed;
        job.error = Some("bad \"input\"".into());
        let email = failed(&job);
        assert!(email.text.contains("<script>&.mp4") && email.text.contains("Reason: bad \"input\""));
        assert!(email.html.contains("&lt;script&gt;&amp;.mp4") && email.html.contains("bad &quot;input&quot;"));
        assert!(!email.html.contains("<script>"));
    }
}
