// The mp3converter web page: a thin client of the HTTP API (see /openapi.json).
// The session token lives in sessionStorage (this tab only) and is sent in the Authorization
// header; it never goes into a URL. Job events are read with fetch() and a stream reader,
// because EventSource cannot send that header.

const TOKEN_KEY = "mp3converter.token";
const EMAIL_KEY = "mp3converter.email";
const FINAL = new Set(["done", "failed"]);

const $ = (id) => document.getElementById(id);
const jobs = new Map();
const followers = new Map();

// ---------------------------------------------------------------------------------------------
// Talking to the API

/** An error the server explained (its JSON `{"error":{"code","message"}}`), or a network one. */
class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error) {
      return new ApiError(body.error.message, body.error.code);
    }
  } catch {
    // Not JSON: fall through to the status line.
  }
  return new ApiError(`${response.status} ${response.statusText}`, "http_" + response.status);
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

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ApiError ? error.message : "Something went wrong: " + error.message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function bytes(count) {
  if (count >= 1024 * 1024) return (count / 1024 / 1024).toFixed(1) + " MB";
  if (count >= 1024) return (count / 1024).toFixed(0) + " kB";
  return count + " B";
}

function duration(seconds) {
  const whole = Math.round(seconds);
  return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
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

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EMAIL_KEY);
  for (const controller of followers.values()) controller.abort();
  followers.clear();
  jobs.clear();
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

async function loadJobs() {
  try {
    const response = await api("/jobs?limit=100");
    const body = await response.json();
    const listed = new Set(body.jobs.map((job) => job.job_id));
    for (const jobId of [...jobs.keys()].filter((jobId) => !listed.has(jobId))) {
      forget(jobId);
    }
    for (const job of body.jobs.reverse()) {
      update(job);
    }
  } catch (error) {
    showError(error);
  }
}

/** Merges what is known about a job, shows it, and follows it while it is not finished. */
function update(news) {
  const job = { ...(jobs.get(news.job_id) || {}), ...news };
  jobs.set(job.job_id, job);
  render(job);
  if (!FINAL.has(job.state) && !followers.has(job.job_id)) {
    follow(job.job_id);
  }
  if (job.state === "done" && job.mp3_bytes === undefined && job.mp3_fid) {
    job.mp3_bytes = null;
    mp3Size(job);
  }
}

/** The row of a job, made once and updated in place (so that focus stays where it is). */
function row(job) {
  let item = document.querySelector(`li[data-job="${job.job_id}"]`);
  if (item) return item;
  item = document.createElement("li");
  item.dataset.job = job.job_id;
  const name = document.createElement("span");
  name.className = "name";
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
  actions.append(download, remove);
  item.append(name, state, progress, actions);
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
  const state = item.querySelector(".state");
  state.className = "state state-" + job.state;
  state.textContent = describe(job);
  const progress = item.querySelector("progress");
  progress.hidden = job.state !== "converting";
  if (typeof job.percent === "number") {
    progress.value = job.percent;
  } else {
    progress.removeAttribute("value");
  }
  item.querySelector(".download").hidden = job.state !== "done";
  item.querySelector(".delete").hidden = job.state === "converting";
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

/** The MP3's size, from the headers of a HEAD request. */
async function mp3Size(job) {
  try {
    const response = await api("/download?fid=" + encodeURIComponent(job.mp3_fid), { method: "HEAD" });
    update({ job_id: job.job_id, mp3_bytes: Number(response.headers.get("Content-Length")) });
  } catch (error) {
    showError(error);
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
        if (data) update(JSON.parse(data));
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error instanceof ApiError && error.code === "not_found") {
      forget(jobId);
    } else {
      showError(error);
    }
  } finally {
    if (followers.get(jobId) === controller) followers.delete(jobId);
  }
  // The stream ended before the job did (the server restarted, say): follow it again.
  const job = jobs.get(jobId);
  if (job && !FINAL.has(job.state) && token() && !controller.signal.aborted) {
    setTimeout(() => {
      if (jobs.has(jobId) && !followers.has(jobId)) follow(jobId);
    }, 2000);
  }
}

/** Takes a job that is gone off the list, and stops following it. */
function forget(jobId) {
  followers.get(jobId)?.abort();
  followers.delete(jobId);
  jobs.delete(jobId);
  document.querySelector(`li[data-job="${jobId}"]`)?.remove();
  $("no-jobs").hidden = jobs.size > 0;
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

async function deleteJob(jobId) {
  clearError();
  try {
    await api("/jobs/" + jobId, { method: "DELETE" });
    forget(jobId);
    $("files").focus();
  } catch (error) {
    showError(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Uploading

function uploadAll(files) {
  clearError();
  for (const file of files) upload(file);
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
  status.textContent = "Uploading: 0%";
  item.append(name, progress, status);
  $("uploads").append(item);

  const form = new FormData();
  form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/upload");
  request.setRequestHeader("Authorization", "Bearer " + token());
  request.responseType = "json";
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
      update({ job_id: body.job_id, state: "queued", filename: file.name, video_fid: body.video_fid });
    } else {
      status.className = "state state-failed";
      status.textContent = "Upload refused: " + (body && body.error ? body.error.message : request.status);
      progress.hidden = true;
      if (request.status === 401) signOut();
    }
  });
  request.addEventListener("error", () => {
    status.className = "state state-failed";
    status.textContent = "Upload failed: the connection was lost";
    progress.hidden = true;
  });
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
$("sign-out").addEventListener("click", () => {
  signOut();
  $("email").focus();
});
$("refresh").addEventListener("click", () => {
  clearError();
  loadJobs();
});
setUpDropZone();
if (token()) {
  enter();
}
