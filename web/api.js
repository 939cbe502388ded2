// The API reference page (/api): every route of /openapi.json as a readable list (method, path,
// summary, parameters, responses). Built with textContent only: nothing in the document is
// read as HTML.

const $ = (id) => document.getElementById(id);
const METHODS = ["get", "post", "put", "patch", "delete"];

/** An element with a class and text. */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The object a `$ref` points to inside the document (`#/components/...`), or the object itself. */
function resolve(spec, object) {
  if (!object || typeof object.$ref !== "string") return object || {};
  return object.$ref
    .replace(/^#\//, "")
    .split("/")
    .reduce((node, key) => (node ? node[key] : undefined), spec) || {};
}

/** An id fit for a fragment link: `get-/jobs/{id}` becomes `get-jobs-id`. */
function anchor(method, path) {
  return (method + path).replace(/[^a-zA-Z0-9]+/g, "-").replace(/-+$/, "");
}

function parameters(spec, operation) {
  const list = (operation.parameters || []).map((parameter) => resolve(spec, parameter));
  if (list.length === 0) return null;
  const section = element("div", "part");
  section.append(element("h4", "", "Parameters"));
  const items = element("ul");
  for (const parameter of list) {
    const item = element("li");
    item.append(element("code", "", parameter.name));
    const where = `${parameter.in}${parameter.required ? ", required" : ""}`;
    item.append(element("span", "muted", ` (${where})`));
    if (parameter.description) item.append(element("span", "", ": " + parameter.description));
    items.append(item);
  }
  section.append(items);
  return section;
}

function requestBody(spec, operation) {
  const body = resolve(spec, operation.requestBody);
  if (!body.content) return null;
  const section = element("div", "part");
  section.append(element("h4", "", "Request body"));
  const types = Object.keys(body.content).join(", ");
  section.append(element("p", "", (body.description ? body.description + " " : "") + `(${types})`));
  return section;
}

function responses(spec, operation) {
  const section = element("div", "part");
  section.append(element("h4", "", "Responses"));
  const items = element("ul");
  for (const [status, value] of Object.entries(operation.responses || {})) {
    const response = resolve(spec, value);
    const item = element("li");
    item.append(element("code", "status", status));
    item.append(element("span", "", " " + (response.description || "")));
    items.append(item);
  }
  section.append(items);
  return section;
}

function route(spec, method, path, operation) {
  const section = element("section", "route");
  section.id = anchor(method, path);
  const title = element("h3");
  title.append(element("span", "method method-" + method, method.toUpperCase()), " ", element("code", "", path));
  section.append(title);
  if (operation.summary) section.append(element("p", "summary", operation.summary));
  if (operation.description) section.append(element("p", "muted", operation.description));
  for (const part of [parameters(spec, operation), requestBody(spec, operation)]) {
    if (part) section.append(part);
  }
  section.append(responses(spec, operation));
  return section;
}

async function show() {
  try {
    const response = await fetch("/openapi.json", { credentials: "omit" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const spec = await response.json();
    const routes = [];
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const method of METHODS) {
        if (item[method]) routes.push(route(spec, method, path, item[method]));
      }
    }
    $("routes").replaceChildren(...routes);
    $("contents").replaceChildren(
      ...routes.map((section) => {
        const item = element("li");
        const link = element("a", "", section.querySelector("h3").textContent);
        link.href = "#" + section.id;
        item.append(link);
        return item;
      }),
    );
    document.title = `${spec.info?.title || "mp3converter"} API ${spec.info?.version || ""}`.trim();
  } catch (error) {
    $("error").textContent = "The API document could not be read: " + error.message + ".";
    $("error").hidden = false;
  }
}

show();
