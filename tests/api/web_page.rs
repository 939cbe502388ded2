//! The web page at `/`: its HTTP headers (strict Content-Security-Policy, caching by content
//! hash), and the page itself in headless Chromium driven over WebDriver (chromedriver, started
//! here on a free port and stopped by its process group): signing in, uploading, following jobs
//! live, downloading, deleting, with no console errors and no serious accessibility violation
//! (axe-core). A screenshot of each step goes to `target/test-artefacts/web-page/`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, eventually, fixture, free_port, probe_audio};

// ---------------------------------------------------------------------------------------------
// Headers

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn assert_secure_headers(response: &reqwest::Response) {
    let policy = header(response, "content-security-policy");
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    assert!(policy.contains("script-src 'self';") && !policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
}

/// The `/assets/...` URLs the page refers to.
fn asset_urls(page: &str) -> Vec<String> {
    page.split('"').filter(|part| part.starts_with("/assets/")).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_page_is_served_with_strict_headers_and_cached_by_content_hash() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_secure_headers(&page);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let etag = header(&page, "etag").to_owned();
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="), "nothing inline");

    let again = app.client.get(app.url("/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let stale = app.client.get(app.url("/")).header("if-none-match", "\"0000\"").send().await.unwrap();
    assert_eq!(stale.status(), 200);

    let assets = asset_urls(&html);
    assert_eq!(assets.len(), 2, "{html}");
    for url in &assets {
        let asset = app.client.get(app.url(url)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{url}");
        assert_secure_headers(&asset);
        assert_eq!(header(&asset, "cache-control"), "public, max-age=31536000, immutable");
        let etag = header(&asset, "etag").trim_matches('"').to_owned();
        assert!(url.contains(&format!(".{etag}.")), "{url} is named by its hash {etag}");
        let expected = if url.ends_with(".js") { "text/javascript" } else { "text/css" };
        assert!(header(&asset, "content-type").starts_with(expected), "{url}");
        let head = app.client.head(app.url(url)).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    // The hashed name of another version (a page from a pod of another release, during a rolling
    // update) gets this version, revalidated, so that the page is never left without its script.
    let script = assets.iter().find(|url| url.ends_with(".js")).unwrap();
    let current = app.client.get(app.url(script)).send().await.unwrap();
    let current_etag = header(&current, "etag").to_owned();
    let current = current.text().await.unwrap();
    let other = app.client.get(app.url("/assets/app.0000000000000000.js")).send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert_secure_headers(&other);
    assert_eq!(header(&other, "cache-control"), "no-cache");
    assert_eq!(header(&other, "etag"), current_etag);
    assert!(header(&other, "content-type").starts_with("text/javascript"));
    assert_eq!(other.text().await.unwrap(), current);
    for unknown in ["/assets/other.0000000000000000.js", "/assets/app.js", "/assets/app.0000.js"] {
        let missing = app.client.get(app.url(unknown)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{unknown}");
        assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    }

    let document = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(document.status(), 200);
    assert_secure_headers(&document);
    assert_eq!(header(&document, "content-type"), "application/json");

    // The API reference: a page of its own, as strict, with its script by content hash.
    let reference = app.client.get(app.url("/api")).send().await.unwrap();
    assert_eq!(reference.status(), 200);
    assert_secure_headers(&reference);
    assert_eq!(header(&reference, "content-type"), "text/html; charset=utf-8");
    let html = reference.text().await.unwrap();
    let assets = asset_urls(&html);
    assert!(assets.iter().any(|url| url.starts_with("/assets/api.") && url.ends_with(".js")), "{html}");
    for url in &assets {
        assert_eq!(app.client.get(app.url(url)).send().await.unwrap().status(), 200, "{url}");
    }
}

// ---------------------------------------------------------------------------------------------
// The page in a browser

/// chromedriver, in a process group of its own (with the browser it starts), killed when dropped.
struct ChromeDriver {
    process: Child,
    port: u16,
    /// Its and the browser's temporary folder (profiles, downloads in progress): a killed browser
    /// cannot clean up after itself, so the folder goes when this is dropped, after the kill.
    _tmp: tempfile::TempDir,
}

impl ChromeDriver {
    async fn start(log: &Path) -> ChromeDriver {
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let tmp = tempfile::tempdir().expect("a temporary folder for the browser");
        let process = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".to_owned()])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("chromedriver runs (scripts/install-deps --test installs it)");
        let driver = ChromeDriver { process, port, _tmp: tmp };
        eventually(Duration::from_secs(20), "chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        driver
    }

    async fn session(&self, downloads: &Path) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                // Nothing but 127.0.0.1: no component updates, field trials or lookups elsewhere.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1024,900",
                    "--no-first-run", "--disable-component-update",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let capabilities: Capabilities = serde_json::from_value(capabilities).unwrap();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.process.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.process.wait();
    }
}

/// chromedriver's browser log (its `se/log` endpoint): the console and network messages.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
struct DevTools(Value);

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(self.0.to_string()))
    }
}

/// Makes the browser fail every request for a URL that matches one of `patterns`.
async fn block_urls(browser: &Client, patterns: &[&str]) {
    browser.issue_cmd(DevTools(json!({ "cmd": "Network.enable", "params": {} }))).await.unwrap();
    let block = json!({ "cmd": "Network.setBlockedURLs", "params": { "urls": patterns } });
    browser.issue_cmd(DevTools(block)).await.unwrap();
}

/// Saves screenshots, numbered in order, under `target/test-artefacts/web-page/`.
struct Screenshots {
    dir: PathBuf,
    taken: usize,
}

impl Screenshots {
    fn new() -> Screenshots {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-artefacts/web-page");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots { dir, taken: 0 }
    }

    async fn take(&mut self, browser: &Client, step: &str) {
        self.taken += 1;
        let png = browser.screenshot().await.unwrap();
        std::fs::write(self.dir.join(format!("{:02}-{step}.png", self.taken)), png).unwrap();
    }
}

/// Evaluates `expression` in the page until it is true.
async fn until(browser: &Client, what: &str, expression: &str) {
    let script = format!("return Boolean({expression});");
    eventually(Duration::from_secs(60), what, || async {
        (browser.execute(&script, Vec::new()).await.unwrap() == Value::Bool(true)).then_some(())
    })
    .await
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// The serious and critical violations axe-core finds in the page as it is.
async fn serious_violations(browser: &Client) -> Vec<Value> {
    let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/web-npm/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&axe).expect("axe-core (scripts/install-deps --test installs it)");
    browser.execute(&format!("{source}\n;window.axe = axe; return true;"), Vec::new()).await.unwrap();
    let script = "const done = arguments[arguments.length - 1];
        axe.run(document).then((result) => done(result.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) }))));";
    let found = browser.execute_async(script, Vec::new()).await.unwrap();
    found.as_array().cloned().expect("axe-core answers with its list of violations")
}

/// Test-only: collects every status text the page shows (uploads and jobs) in `statusesSeen`,
/// and every announcement of its status region in `announced`.
const STATUS_OBSERVER: &str = "window.statusesSeen = new Set();
    window.announced = [];
    const collect = () => {
        document.querySelectorAll('.state').forEach((state) => window.statusesSeen.add(state.textContent));
        const said = document.getElementById('status').textContent;
        if (said && window.announced[window.announced.length - 1] !== said) window.announced.push(said);
    };
    new MutationObserver(collect).observe(document.body, { subtree: true, childList: true, characterData: true });";

/// Test-only: counts the page's requests in `traffic`: the event streams and the HEAD requests
/// open at a time (and their peaks), and the answers of the list of jobs.
const TRAFFIC_SPY: &str =
    "const traffic = window.traffic = { streams: 0, maxStreams: 0, heads: 0, maxHeads: 0, lists: 0 };
    const fetch = window.fetch;
    const open = (kind) => {
        traffic[kind] += 1;
        const peak = 'max' + kind[0].toUpperCase() + kind.slice(1);
        traffic[peak] = Math.max(traffic[peak], traffic[kind]);
        let closed = false;
        return () => { if (!closed) traffic[kind] -= 1; closed = true; };
    };
    window.fetch = async (input, init = {}) => {
        const url = String(input);
        const close = url.includes('/events') ? open('streams') : init.method === 'HEAD' ? open('heads') : null;
        try {
            const response = await fetch(input, init);
            if (url.startsWith('/jobs?')) traffic.lists += 1;
            if (close && url.includes('/events')) {
                // Closed before the page reads the stream's end (so a follower that takes the
                // freed slot is not counted with the one it replaces).
                const { readable, writable } = new TransformStream({ flush: close });
                response.body.pipeTo(writable).catch(close);
                return new Response(readable, response);
            }
            if (close) close();
            return response;
        } catch (error) {
            if (close) close();
            throw error;
        }
    };";

/// A number in the page's `traffic` (see [`TRAFFIC_SPY`]).
async fn traffic(browser: &Client, counter: &str) -> u64 {
    let value = browser.execute(&format!("return window.traffic.{counter};"), Vec::new()).await.unwrap();
    value.as_u64().unwrap()
}

/// The row of the job of `filename` in the live list, as a CSS selector.
async fn row_of(browser: &Client, filename: &str) -> String {
    let script = "for (const li of document.querySelectorAll('#jobs li')) {
            if (li.querySelector('.name').textContent === arguments[0]) return li.dataset.job;
        }
        return null;";
    let id = browser.execute(script, vec![json!(filename)]).await.unwrap();
    format!("li[data-job=\"{}\"]", id.as_str().expect("a row for the file"))
}

#[tokio::test]
async fn the_page_converts_videos_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let email = "web@example.com";
    app.add_user(email, false);
    let work = tempfile::tempdir().unwrap();
    let downloads = work.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    // The second is long enough (8 minutes of audio) for its conversion to be watched; with six
    // more short ones there are more unfinished jobs than a browser has connections to a host.
    let short =
        ["third", "fourth", "fifth", "sixth", "seventh", "eighth"].map(|name| (format!("{name}.mp4"), "clip.mp4"));
    let videos: Vec<PathBuf> =
        [("first.mp4".to_owned(), "clip.mp4"), ("second.mp4".to_owned(), "eight-minutes-audio.mp4")]
            .into_iter()
            .chain(short)
            .map(|(name, source)| {
                let path = work.path().join(name);
                std::fs::copy(fixture(source), &path).unwrap();
                path
            })
            .collect();
    let mut shots = Screenshots::new();
    let driver = ChromeDriver::start(&shots.dir.join("chromedriver.log")).await;
    let browser = driver.session(&downloads).await;

    // Without its script (blocked here, as a 404 would), the form cannot be submitted: its button
    // is disabled, which also blocks submitting with Enter; and it would POST, never putting the
    // password in a URL.
    block_urls(&browser, &["*/assets/app.*.js"]).await;
    browser.goto(&app.url("/")).await.unwrap();
    until(&browser, "the sign-in form", "document.getElementById('email')").await;
    let form = "document.getElementById('sign-in-form')";
    // (The page has loaded: had the script run, it would have enabled the button.)
    let inert = format!("{form}.method === 'post' && {form}.querySelector('button[type=submit]').disabled");
    until(&browser, "a form that cannot be sent without the script", &inert).await;
    browser.find(Locator::Id("email")).await.unwrap().send_keys(email).await.unwrap();
    let password = browser.find(Locator::Id("password")).await.unwrap();
    password.send_keys(&format!("secret{}", &*fantoccini::key::Key::Enter)).await.unwrap();
    let stayed = "location.search === '' && performance.getEntriesByType('navigation').length === 1 \
        && document.getElementById('password').value === 'secret'";
    until(&browser, "no submission", stayed).await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), app.url("/"));
    let log = browser.issue_cmd(BrowserLog).await.unwrap();
    let blocked = |entry: &Value| entry["message"].as_str().unwrap_or_default().contains("/assets/app.");
    let other: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["level"] == "SEVERE" && !blocked(e)).collect();
    assert!(other.is_empty(), "browser errors: {other:?}");
    shots.take(&browser, "no-script").await;
    block_urls(&browser, &[]).await;

    browser.goto(&app.url("/")).await.unwrap();
    until(&browser, "the sign-in form with its script", &format!("!{form}.querySelector('button').disabled")).await;
    // One status region is the page's only live region (with the alert of errors): lists whose
    // text changes several times a second are not read out.
    let live = "Array.from(document.querySelectorAll('[aria-live], [role=status], [role=alert], [role=log]'))
        .map((e) => e.id).sort().join(' ')";
    assert_eq!(browser.execute(&format!("return {live};"), Vec::new()).await.unwrap(), "error status");
    assert!(serious_violations(&browser).await.is_empty(), "{:?}", serious_violations(&browser).await);
    // How to get an account, for someone who has none.
    assert!(text_of(&browser, "#sign-in-hint").await.contains("mp3converter user add EMAIL"));
    shots.take(&browser, "sign-in").await;

    // A wrong password: a sentence, and still signed out.
    browser.find(Locator::Id("email")).await.unwrap().send_keys(email).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys("not the password").await.unwrap();
    browser.find(Locator::Css("#sign-in-form button")).await.unwrap().click().await.unwrap();
    until(&browser, "the error message", "!document.getElementById('error').hidden").await;
    assert_eq!(text_of(&browser, "#error").await, "Wrong email or password.");
    shots.take(&browser, "wrong-password").await;

    // The right one, submitted from the keyboard (Enter); the focus moves to the file picker.
    let password = browser.find(Locator::Id("password")).await.unwrap();
    password.clear().await.unwrap();
    password.send_keys(&format!("{PASSWORD}{}", &*fantoccini::key::Key::Enter)).await.unwrap();
    until(&browser, "the workspace", "!document.getElementById('workspace').hidden").await;
    until(&browser, "the focus on the file picker", "document.activeElement.id === 'files'").await;
    // Its ring (if the browser shows one) is the page's calm accent colour, not an alarm colour.
    let calm = "(() => { const zone = getComputedStyle(document.getElementById('drop-zone'));
        return zone.outlineStyle === 'none' || zone.outlineColor === 'rgb(11, 92, 173)'; })()";
    until(&browser, "a calm focus ring on the drop zone", calm).await;
    assert!(text_of(&browser, "#who").await.contains(email));
    assert!(
        browser.execute("return sessionStorage.getItem('mp3converter.token') !== null", vec![]).await.unwrap()
            == Value::Bool(true)
    );
    shots.take(&browser, "signed-in").await;

    // Eight files at once through the file picker; all reach done in the live list, which shows
    // the upload's progress and the conversion's percent on the way (every status text the
    // page shows is collected by an observer this test adds, and its requests are counted).
    browser.execute(STATUS_OBSERVER, Vec::new()).await.unwrap();
    browser.execute(TRAFFIC_SPY, Vec::new()).await.unwrap();
    let picked = videos.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join("\n");
    browser.find(Locator::Id("files")).await.unwrap().send_keys(&picked).await.unwrap();
    until(&browser, "eight jobs listed", "document.querySelectorAll('#jobs li').length === 8").await;
    shots.take(&browser, "uploaded").await;
    // While they convert the page still has connections to spare: Refresh is answered.
    let lists = traffic(&browser, "lists").await;
    let refresh_clicked = std::time::Instant::now();
    browser.find(Locator::Id("refresh")).await.unwrap().click().await.unwrap();
    until(&browser, "the refreshed list", &format!("window.traffic.lists > {lists}")).await;
    assert!(refresh_clicked.elapsed() < Duration::from_secs(10), "{:?}", refresh_clicked.elapsed());
    let converting = "Array.from(document.querySelectorAll('#jobs .state'))
        .some((state) => /^Converting: \\d+%$/.test(state.textContent))";
    until(&browser, "a conversion's percent", converting).await;
    shots.take(&browser, "converting").await;
    until(&browser, "all jobs done", "document.querySelectorAll('#jobs .state-done').length === 8").await;
    let seen = browser.execute("return Array.from(window.statusesSeen);", Vec::new()).await.unwrap();
    let seen: Vec<&str> = seen.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(seen.iter().any(|text| text.starts_with("Uploading: 100% of")), "{seen:?}");
    assert!(seen.contains(&"Queued"), "{seen:?}");
    // At most three event streams and two size requests were open at a time.
    let max_streams = traffic(&browser, "maxStreams").await;
    assert!((1..=3).contains(&max_streams), "{max_streams} event streams at once");
    until(&browser, "every MP3's size asked for", "window.traffic.heads === 0").await;
    let max_heads = traffic(&browser, "maxHeads").await;
    assert!((1..=2).contains(&max_heads), "{max_heads} HEAD requests at once");
    // The status region said when each upload and each conversion finished, never a percent.
    let announced = browser.execute("return window.announced;", Vec::new()).await.unwrap();
    let announced: Vec<&str> = announced.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(announced.iter().any(|said| said.ends_with(" uploaded")), "{announced:?}");
    assert!(announced.iter().any(|said| said.ends_with(" converted")), "{announced:?}");
    assert!(announced.iter().all(|said| !said.contains('%')), "{announced:?}");
    let first = row_of(&browser, "first.mp4").await;
    let second = row_of(&browser, "second.mp4").await;
    for (row, length) in [(&first, "0:10"), (&second, "8:00")] {
        let shown =
            format!("/^Done · [0-9.]+ [kM]B · {length}$/.test(document.querySelector('{row} .state').textContent)");
        until(&browser, "the MP3's size and duration", &shown).await;
    }
    // Each row says when its job was made (local time, to the second), so runs of one file
    // can be told apart.
    let dated = "Array.from(document.querySelectorAll('#jobs li')).every((li) => {
        const time = li.querySelector('time.created');
        return time && time.dateTime && /^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$/.test(time.textContent);
    })";
    until(&browser, "a date on every job", dated).await;
    shots.take(&browser, "done").await;

    // Download one: an MP3 lands in the download folder.
    browser.find(Locator::Css(&format!("{first} .download"))).await.unwrap().click().await.unwrap();
    let mp3 = downloads.join("first.mp3");
    eventually(Duration::from_secs(30), "the downloaded MP3", || async { mp3.exists().then_some(()) }).await;
    let (codec, seconds) = probe_audio(&mp3);
    assert_eq!(codec, "mp3");
    assert!((seconds - 10.0).abs() < 0.3, "{seconds}");

    // Delete one and undo it: the row says Deleted with an Undo button (focused), and Undo
    // brings it back as it was.
    let third = row_of(&browser, "third.mp4").await;
    browser.find(Locator::Css(&format!("{third} .delete"))).await.unwrap().click().await.unwrap();
    let deleting = format!(
        "document.querySelector('{third}').classList.contains('deleting')
         && document.querySelector('{third} .state').textContent === 'Deleted'
         && document.activeElement === document.querySelector('{third} .undo')"
    );
    until(&browser, "the row marked deleted, with Undo focused", &deleting).await;
    shots.take(&browser, "deleted-undo-offered").await;
    browser.find(Locator::Css(&format!("{third} .undo"))).await.unwrap().click().await.unwrap();
    let kept = format!(
        "/^Done/.test(document.querySelector('{third} .state').textContent)
         && document.activeElement === document.querySelector('{third} .delete')"
    );
    until(&browser, "the row back as it was", &kept).await;
    shots.take(&browser, "delete-undone").await;

    // Delete another for good: it is sent once the undo time has passed, then the row goes.
    browser.find(Locator::Css(&format!("{second} .delete"))).await.unwrap().click().await.unwrap();
    until(&browser, "the deleted row gone", &format!("!document.querySelector('{second}')")).await;
    let token = app.login(email, PASSWORD).await;
    let listed = app.get_json(&token, "/jobs").await;
    let jobs = listed["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().filter_map(|job| job["filename"].as_str()).collect();
    assert_eq!(names.len(), 7, "{listed}");
    assert!(names.contains(&"first.mp4") && !names.contains(&"second.mp4"), "{listed}");
    // The undone one was never sent (its time ran out before the other's, sent after it).
    let third_job = jobs.iter().find(|job| job["filename"] == "third.mp4").expect("the undone job kept");
    let third_mp3 = format!("/download?fid={}", third_job["mp3_fid"].as_str().unwrap());
    let download = app.client.get(app.url(&third_mp3)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(download.status(), 200, "the undone job's MP3 still downloads");
    shots.take(&browser, "deleted").await;
    assert!(serious_violations(&browser).await.is_empty(), "{:?}", serious_violations(&browser).await);

    // At phone width nothing runs off the side.
    browser.set_window_size(390, 844).await.unwrap();
    let overflow = "document.documentElement.scrollWidth <= window.innerWidth";
    until(&browser, "no horizontal scrolling at phone width", overflow).await;
    shots.take(&browser, "phone-width").await;

    // Signing out forgets the token and ends its session: a copy of it is refused.
    let page_token = browser.execute("return sessionStorage.getItem('mp3converter.token')", vec![]).await.unwrap();
    let page_token = page_token.as_str().expect("the page holds its token").to_owned();
    assert_eq!(app.client.get(app.url("/jobs")).bearer_auth(&page_token).send().await.unwrap().status(), 200);
    browser.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    until(&browser, "the sign-in form again", "!document.getElementById('sign-in').hidden").await;
    let token = browser.execute("return sessionStorage.getItem('mp3converter.token')", vec![]).await.unwrap();
    assert_eq!(token, Value::Null);
    eventually(Duration::from_secs(5), "the page's session to end", || async {
        let response = app.client.get(app.url("/jobs")).bearer_auth(&page_token).send().await.unwrap();
        (response.status() == 401).then_some(())
    })
    .await;

    // The API link leads to a page that lists every route of the document, readably.
    browser.goto(&app.url("/")).await.unwrap();
    browser.find(Locator::LinkText("API")).await.unwrap().click().await.unwrap();
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    let every_route = format!("document.querySelectorAll('#routes .route').length === {operations}");
    until(&browser, "the API reference with every route", &every_route).await;
    let upload = "Array.from(document.querySelectorAll('#routes .route')).some((route) =>
        route.querySelector('h3').textContent === 'POST /upload'
        && Array.from(route.querySelectorAll('.status')).some((status) => status.textContent === '413'))";
    until(&browser, "POST /upload with its responses", upload).await;
    let linked = "document.querySelector('a[href=\"/openapi.json\"]') !== null
        && document.querySelectorAll('#contents a').length === document.querySelectorAll('#routes .route').length";
    until(&browser, "a link to the raw document and a list of contents", linked).await;
    assert!(serious_violations(&browser).await.is_empty(), "{:?}", serious_violations(&browser).await);
    browser.set_window_size(1024, 900).await.unwrap();
    shots.take(&browser, "api-reference").await;

    // No console errors: the browser's log has no error but the wrong password's 401.
    let log = browser.issue_cmd(BrowserLog).await.unwrap();
    let wrong_password = |entry: &&Value| {
        let message = entry["message"].as_str().unwrap_or_default();
        entry["source"] == "network" && message.contains("/login") && message.contains("401")
    };
    let severe: Vec<&Value> = log.as_array().unwrap().iter().filter(|entry| entry["level"] == "SEVERE").collect();
    assert!(severe.iter().any(wrong_password), "the log is read: {log}");
    let errors: Vec<&&Value> = severe.iter().filter(|entry| !wrong_password(entry)).collect();
    assert!(errors.is_empty(), "browser errors: {errors:?}");

    // And the accessibility check finds a fault when there is one: an image with no text.
    browser.execute("document.body.append(document.createElement('img')); return true;", vec![]).await.unwrap();
    let found = serious_violations(&browser).await;
    assert!(found.iter().any(|violation| violation["id"] == "image-alt"), "{found:?}");
    browser.close().await.unwrap();
    drop(driver);
}
