// The mp3converter web page: a thin client of the HTTP API (see /openapi.json).
// The session token lives in sessionStorage (this tab only) and is sent in the Authorization
// header; it never goes into a URL. Job events are read with fetch() and a stream reader,
// because EventSource cannot send that header.
// A browser opens only 6 HTTP/1.1 connections to a host, and each event stream and each upload
// holds one for long: a few jobs are followed live (the others by polling the list), files are
// uploaded two at a time (the server also caps uploads per user), and the MP3s' sizes are asked
// for a couple at a time, so that downloads and the buttons always find a free connection.

const TOKEN_KEY = "mp3converter.token";
const EMAIL_KEY = "mp3converter.email";
const FINAL = new Set(["done", "failed"]);
/** Jobs followed live (an event stream each) at a time. */
const MAX_FOLLOWERS = 3;
/** How often the list is asked for when some unfinished job is not followed live. */
const POLL_MS = 2000;
/** Uploads at a time. */
const MAX_UPLOADS = 2;
/** HEAD requests for MP3 sizes at a time. */
const MAX_SIZE_REQUESTS = 2;
/** How long a deleted job can be brought back before the server is asked to delete it. */
const UNDO_MS = 8000;

const $ = (id) => document.getElementById(id);
/** What is known of each of the user's jobs, by id. */
const jobs = new Map();
/** The event streams followed, by job id. */
const followers = new Map();
/** The uploads in flight (XMLHttpRequests), aborted on sign-out, and those waiting to start. */
const uploads = new Set();
const waitingUploads = [];
/** Done jobs whose MP3 size is still to be asked for, and how many such requests are in flight. */
const sizesWanted = [];
let sizeRequests = 0;
let pollTimer = null;
/** Deletes that can still be undone: their timers, by job id. */
const pendingDeletes = new Map();

// ---------------------------------------------------------------------------------------------
// Talking to the API

/** An error the server explained (its JSON `{"error":{"code","message"}}`), or a network one. */
class ApiError extends Error {
  constructor(message, code, retryAfter) {
    super(message);
    this.code = code;
    /** Seconds to wait before trying again, when the server said (Retry-After). */
    this.retryAfter = retryAfter;
  }
}

async function apiError(response) {
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  try {
    const body = await response.json();
    if (body && body.error) {
      return new ApiError(body.error.message, body.error.code, retryAfter);
    }
  } catch {
    // Not JSON: fall through to the status line.
  }
  return new ApiError(`${response.status} ${response.statusText}`, "http_" + response.status, retryAfter);
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** fetch() with the session token; rejects with the server's error on a non-2xx answer. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", "Bearer " + token());
  const response = await fetch(path, { ...options, headers, credentials: "omit" });
  if (response.status === 401) {
    signOut();
  }
  if (!response.ok) {
    throw await apiError(response);
  }
  return response;
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  return btoa(Array.from(bytes, (byte) => String.fromCharCode(byte)).join(""));
}

// ---------------------------------------------------------------------------------------------
// Messages

/** What the page says for an error: a sentence for the ones people meet, the server's otherwise. */
function sentence(error) {
  if (!(error instanceof ApiError)) return "Something went wrong: " + error.message + ".";
  const later = error.retryAfter ? ` Try again in ${waitText(error.retryAfter)}.` : " Try again later.";
  switch (error.code) {
    case "invalid_credentials":
      return "Wrong email or password.";
    case "too_many_logins":
      return "Too many sign-in attempts." + later;
    case "busy":
    case "auth_unavailable":
      return "The service is busy." + later;
    default: {
      const text = error.message.charAt(0).toUpperCase() + error.message.slice(1);
      return /[.!?]$/.test(text) ? text : text + ".";
    }
  }
}

function waitText(seconds) {
  return seconds < 90 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`;
}

function showError(error) {
  const box = $("error");
  box.textContent = sentence(error);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

/** Tells screen readers (through the one status region) of an upload or a job that ended. */
function announce(text) {
  // A page from an older version (served this script during a rolling update) has no region.
  const region = $("status");
  if (region) region.textContent = text;
}

// Units, the same as the command line's: decimal sizes, durations as a player shows them, local
// times to the second.

function bytes(count) {
  for (const [unit, size] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
    if (count >= size) return (count / size).toFixed(1) + " " + unit;
  }
  return count + " B";
}

function duration(seconds) {
  const whole = Math.round(seconds);
  const [hours, minutes, rest] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const two = (n) => String(n).padStart(2, "0");
  return hours > 0 ? `${hours}:${two(minutes)}:${two(rest)}` : `${minutes}:${two(rest)}`;
}

function localTime(iso) {
  const at = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  const date = `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())}`;
  return `${date} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

async function signIn(event) {
  event.preventDefault();
  clearError();
  const email = $("email").value.trim();
  const password = $("password").value;
  try {
    const response = await fetch("/login", {
      method: "POST",
      headers: { Authorization: "Basic " + base64(email + ":" + password), Accept: "application/json" },
      credentials: "omit",
    });
    if (!response.ok) {
      throw await apiError(response);
    }
    const body = await response.json();
    sessionStorage.setItem(TOKEN_KEY, body.token);
    sessionStorage.setItem(EMAIL_KEY, email);
    $("password").value = "";
    await enter();
  } catch (error) {
    showError(error);
    $("password").select();
  }
}

/**
 * Ends the session on the server, so that its token is refused even if it was copied; the page
 * forgets it either way (keepalive: the request outlives a tab closed right after).
 */
function endSession() {
  const current = token();
  if (!current) return;
  fetch("/logout", {
    method: "POST",
    headers: { Authorization: "Bearer " + current },
    credentials: "omit",
    keepalive: true,
  }).catch(() => {});
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EMAIL_KEY);
  for (const controller of followers.values()) controller.abort();
  followers.clear();
  waitingUploads.length = 0;
  for (const request of uploads) request.abort();
  uploads.clear();
  clearTimeout(pollTimer);
  pollTimer = null;
  sizesWanted.length = 0;
  // Deletes not sent yet are dropped: their jobs stay (a sign-out sends them first).
  for (const timer of pendingDeletes.values()) clearTimeout(timer);
  pendingDeletes.clear();
  jobs.clear();
  announce("");
  $("jobs").replaceChildren();
  $("uploads").replaceChildren();
  $("workspace").hidden = true;
  $("sign-in").hidden = false;
}

async function enter() {
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("who").textContent = "Signed in as " + sessionStorage.getItem(EMAIL_KEY);
  $("files").focus();
  await loadJobs();
}

// ---------------------------------------------------------------------------------------------
// The list of jobs

/** Whether news of a job is still wanted: it is on the page, and the user is signed in. */
function known(jobId) {
  return jobs.has(jobId) && token() !== null;
}

/** Reads the list (one request for all jobs) and merges it into the page. */
async function loadJobs() {
  // Jobs that arrive while the list is read (an upload that just finished) are not in it, and
  // jobs forgotten meanwhile (deleted) may still be: only what was known before is compared.
  const before = new Set(jobs.keys());
  const asked = token();
  try {
    const response = await api("/jobs?limit=100");
    const body = await response.json();
    // Signed out (or in as someone else) meanwhile: the answer is not about this page's user.
    if (!asked || token() !== asked) return;
    const listed = new Set(body.jobs.map((job) => job.job_id));
    for (const jobId of before) {
      if (!listed.has(jobId)) forget(jobId);
    }
    for (const job of body.jobs.reverse()) {
      if (jobs.has(job.job_id) || !before.has(job.job_id)) update(job);
    }
  } catch (error) {
    showError(error);
  }
  keepFollowing();
}

/** Merges what is known about a job, shows it, and follows it while it is not finished. */
function update(news) {
  const before = jobs.get(news.job_id);
  // A finished job stays finished (a list read before it finished may answer after its event).
  if (before && FINAL.has(before.state) && news.state && !FINAL.has(news.state)) return;
  const job = { ...(before || {}), ...news };
  jobs.set(job.job_id, job);
  render(job);
  if (before && !FINAL.has(before.state) && FINAL.has(job.state)) {
    const label = job.filename || job.job_id;
    announce(job.state === "done" ? label + " converted" : label + " failed: " + (job.error || "no reason given"));
  }
  keepFollowing();
  if (job.state === "done" && job.mp3_bytes === undefined && job.mp3_fid) {
    job.mp3_bytes = null;
    sizesWanted.push(job.job_id);
    askSizes();
  }
}

/** Follows unfinished jobs live, MAX_FOLLOWERS at a time, and the others by polling the list. */
function keepFollowing() {
  if (!token()) return;
  // Converting jobs first: their percent is worth watching.
  const unfollowed = [...jobs.values()]
    .filter((job) => !FINAL.has(job.state) && !followers.has(job.job_id))
    .sort((a, b) => (b.state === "converting") - (a.state === "converting"));
  for (const job of unfollowed.splice(0, MAX_FOLLOWERS - followers.size)) {
    follow(job.job_id);
  }
  if (unfollowed.length > 0 && pollTimer === null) {
    pollTimer = setTimeout(() => {
      pollTimer = null;
      if (token()) loadJobs();
    }, POLL_MS);
  }
}

function rowOf(jobId) {
  return document.querySelector(`li[data-job="${jobId}"]`);
}

/** The row of a job, made once and updated in place (so that focus stays where it is). */
function row(job) {
  let item = rowOf(job.job_id);
  if (item) return item;
  item = document.createElement("li");
  item.dataset.job = job.job_id;
  const name = document.createElement("span");
  name.className = "name";
  const created = document.createElement("time");
  created.className = "created muted";
  const state = document.createElement("span");
  state.className = "state";
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.setAttribute("aria-label", "Conversion of " + (job.filename || job.job_id));
  const actions = document.createElement("div");
  actions.className = "actions";
  const download = document.createElement("button");
  download.type = "button";
  download.className = "download";
  download.textContent = "Download MP3";
  download.addEventListener("click", () => downloadMp3(job.job_id));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete secondary";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => deleteJob(job.job_id));
  const undo = document.createElement("button");
  undo.type = "button";
  undo.className = "undo";
  undo.textContent = "Undo";
  undo.addEventListener("click", () => undoDelete(job.job_id));
  actions.append(download, remove, undo);
  item.append(name, created, state, progress, actions);
  $("jobs").prepend(item);
  return item;
}

function render(job) {
  const item = row(job);
  const label = job.filename || job.job_id;
  item.querySelector(".name").textContent = label;
  item.querySelector("progress").setAttribute("aria-label", "Conversion of " + label);
  item.querySelector(".download").setAttribute("aria-label", "Download MP3 of " + label);
  item.querySelector(".delete").setAttribute("aria-label", "Delete the job of " + label);
  item.querySelector(".undo").setAttribute("aria-label", "Undo the delete of " + label);
  if (job.created_at) {
    const created = item.querySelector(".created");
    created.dateTime = job.created_at;
    created.textContent = localTime(job.created_at);
  }
  const deleting = pendingDeletes.has(job.job_id);
  item.classList.toggle("deleting", deleting);
  const state = item.querySelector(".state");
  state.className = "state state-" + (deleting ? "deleted" : job.state);
  state.textContent = deleting ? "Deleted" : describe(job);
  const progress = item.querySelector("progress");
  progress.hidden = deleting || job.state !== "converting";
  if (typeof job.percent === "number") {
    progress.value = job.percent;
  } else {
    progress.removeAttribute("value");
  }
  item.querySelector(".download").hidden = deleting || job.state !== "done";
  item.querySelector(".delete").hidden = deleting || job.state === "converting";
  item.querySelector(".undo").hidden = !deleting;
  $("no-jobs").hidden = jobs.size > 0;
}

function describe(job) {
  switch (job.state) {
    case "converting":
      return typeof job.percent === "number" ? `Converting: ${Math.floor(job.percent)}%` : "Converting";
    case "done": {
      const parts = ["Done"];
      if (typeof job.mp3_bytes === "number") parts.push(bytes(job.mp3_bytes));
      if (typeof job.media_seconds === "number") parts.push(duration(job.media_seconds));
      return parts.join(" · ");
    }
    case "failed":
      return "Failed: " + (job.error || "no reason given");
    case "queued":
      return job.error ? "Queued again (" + job.error + ")" : "Queued";
    default:
      return job.state;
  }
}

/** Asks for the wanted MP3 sizes, MAX_SIZE_REQUESTS at a time. */
function askSizes() {
  while (sizeRequests < MAX_SIZE_REQUESTS && sizesWanted.length > 0) {
    const job = jobs.get(sizesWanted.shift());
    if (!job || !token()) continue;
    sizeRequests += 1;
    mp3Size(job).finally(() => {
      sizeRequests -= 1;
      askSizes();
    });
  }
}

/** The MP3's size, from the headers of a HEAD request. */
async function mp3Size(job) {
  try {
    const response = await api("/download?fid=" + encodeURIComponent(job.mp3_fid), { method: "HEAD" });
    if (known(job.job_id)) update({ job_id: job.job_id, mp3_bytes: Number(response.headers.get("Content-Length")) });
  } catch (error) {
    if (known(job.job_id)) showError(error);
  }
}

/** Follows a job's events (server-sent events read from a fetch() body) until it finishes. */
async function follow(jobId) {
  const controller = new AbortController();
  followers.set(jobId, controller);
  try {
    const response = await api(`/jobs/${jobId}/events`, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trim())
          .join("\n");
        if (data && known(jobId)) update(JSON.parse(data));
      }
    }
  } catch (error) {
    if (error instanceof ApiError && error.code === "not_found") {
      forget(jobId);
    } else if (error.name !== "AbortError") {
      showError(error);
    }
  }
  // The stream ended before the job did (the server restarted, say): the slot is kept for a
  // while, so that a server that keeps ending streams is not asked again and again.
  if (!controller.signal.aborted && known(jobId) && !FINAL.has(jobs.get(jobId).state)) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  // Forgotten, or signed out, meanwhile: the slot was freed then.
  if (followers.get(jobId) !== controller) return;
  followers.delete(jobId);
  keepFollowing();
}

/** Takes a job that is gone off the list, and stops following it. */
function forget(jobId) {
  followers.get(jobId)?.abort();
  followers.delete(jobId);
  jobs.delete(jobId);
  rowOf(jobId)?.remove();
  $("no-jobs").hidden = jobs.size > 0;
  keepFollowing();
}

async function downloadMp3(jobId) {
  clearError();
  const job = jobs.get(jobId);
  try {
    const response = await api("/download?fid=" + encodeURIComponent(job.mp3_fid));
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = (job.filename || "audio").replace(/\.[^.]*$/, "") + ".mp3";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    showError(error);
  }
}

// Deleting: the row says "Deleted" with an Undo button for UNDO_MS; only then (or when the page
// is left or hidden, or on sign-out) is the server asked to delete the job and its MP3.

function deleteJob(jobId) {
  clearError();
  const job = jobs.get(jobId);
  pendingDeletes.set(jobId, setTimeout(() => commitDelete(jobId), UNDO_MS));
  render(job);
  announce(`${job.filename || jobId} deleted. Undo within ${UNDO_MS / 1000} seconds.`);
  rowOf(jobId).querySelector(".undo").focus();
}

function undoDelete(jobId) {
  clearTimeout(pendingDeletes.get(jobId));
  pendingDeletes.delete(jobId);
  const job = jobs.get(jobId);
  if (!job) return;
  render(job);
  announce(`${job.filename || jobId} kept.`);
  rowOf(jobId).querySelector(".delete").focus();
}

/** Asks the server to delete the job (keepalive: the request outlives a page being left). */
async function commitDelete(jobId) {
  if (!pendingDeletes.has(jobId)) return;
  clearTimeout(pendingDeletes.get(jobId));
  pendingDeletes.delete(jobId);
  const hadFocus = rowOf(jobId)?.contains(document.activeElement);
  try {
    await api("/jobs/" + jobId, { method: "DELETE", keepalive: true });
    forget(jobId);
    if (hadFocus) $("files").focus();
  } catch (error) {
    if (known(jobId)) render(jobs.get(jobId));
    showError(error);
  }
}

function commitAllDeletes() {
  for (const jobId of [...pendingDeletes.keys()]) commitDelete(jobId);
}

// ---------------------------------------------------------------------------------------------
// Uploading

function uploadAll(files) {
  clearError();
  for (const file of files) upload(file);
}

/** Starts waiting uploads, MAX_UPLOADS at a time. */
function startUploads() {
  while (uploads.size < MAX_UPLOADS && waitingUploads.length > 0) {
    waitingUploads.shift()();
  }
}

/** Uploads one file with XMLHttpRequest (whose upload progress fetch() does not report). */
function upload(file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", "Upload of " + file.name);
  const status = document.createElement("span");
  status.className = "state";
  status.textContent = "Waiting to upload";
  item.append(name, progress, status);
  $("uploads").append(item);

  const uploadFailed = (message) => {
    status.className = "state state-failed";
    status.textContent = message;
    progress.hidden = true;
    announce(file.name + ": " + message);
  };

  waitingUploads.push(() => send(file, { item, progress, status, uploadFailed }));
  startUploads();
}

/** Sends one file, showing its progress in its row of the list of uploads. */
function send(file, { item, progress, status, uploadFailed }) {
  status.textContent = "Uploading: 0%";
  const form = new FormData();
  form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/upload");
  request.setRequestHeader("Authorization", "Bearer " + token());
  request.responseType = "json";
  uploads.add(request);
  request.addEventListener("loadend", () => {
    uploads.delete(request);
    startUploads();
  });
  request.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    const percent = Math.floor((event.loaded / event.total) * 100);
    progress.value = percent;
    status.textContent = `Uploading: ${percent}% of ${bytes(event.total)}`;
  });
  request.addEventListener("load", () => {
    const body = request.response;
    if (request.status === 202 && body) {
      item.remove();
      announce(file.name + " uploaded");
      // Made now, as far as this page knows; the list says exactly when at its next reading.
      const created_at = new Date().toISOString();
      update({ job_id: body.job_id, state: "queued", filename: file.name, video_fid: body.video_fid, created_at });
    } else {
      uploadFailed("Upload refused: " + (body && body.error ? body.error.message : request.status));
      if (request.status === 401) signOut();
    }
  });
  request.addEventListener("error", () => uploadFailed("Upload failed: the connection was lost"));
  request.send(form);
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("files");
  input.addEventListener("change", () => {
    uploadAll(input.files);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    uploadAll(event.dataTransfer.files);
  });
}

// ---------------------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", signIn);
// Disabled in the page until now, so that the form is never submitted without this script.
$("sign-in-form").querySelector("button[type=submit]").disabled = false;
$("sign-out").addEventListener("click", () => {
  commitAllDeletes();
  endSession();
  signOut();
  $("email").focus();
});
$("refresh").addEventListener("click", () => {
  clearError();
  loadJobs();
});
setUpDropZone();
window.addEventListener("pagehide", commitAllDeletes);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") commitAllDeletes();
});
if (token()) {
  enter();
}
