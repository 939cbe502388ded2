"""Checks the OpenAPI document against real responses, for tests/api/openapi.rs.

Usage: openapi_check.py DOCUMENT RECORDS. DOCUMENT must validate as OpenAPI 3.1
(openapi-spec-validator). RECORDS is a JSON list of real responses, each
{"method", "template" (null for a path the router does not know), "status", "content_type",
"body" (parsed JSON, the text of an event stream, or null)}: each must be a documented status
of its operation, in a documented media type, and its body must validate against the schema.
Prints every mismatch and exits 1 if there is any.
"""

import json
import sys

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate


def node_ref(ref):
    return ref.removeprefix("#/").split("/")


def deref(document, node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node_ref(node["$ref"]):
            target = target[part]
        node = target
    return node


def schema_errors(document, schema, instance):
    """Validates with the document's components in reach of its `$ref`s."""
    rooted = {**schema, "components": document["components"]}
    validator = OAS31Validator(rooted)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def event_data(text):
    for block in text.split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            yield json.loads("\n".join(data))


def check(document, record):
    where = f"{record['method']} {record['template']} {record['status']}"
    if record["template"] is None:
        errors = schema_errors(document, {"$ref": "#/components/schemas/Error"}, record["body"])
        return [f"{where}: {e}" for e in errors]
    operation = document["paths"][record["template"]][record["method"].lower()]
    response = deref(document, operation["responses"].get(str(record["status"])))
    if response is None:
        return [f"{where}: status not documented"]
    media_type = (record["content_type"] or "").split(";")[0].strip()
    content = response.get("content", {})
    if not media_type:
        return [] if not content or record["status"] in (204, 304) else [f"{where}: no content type"]
    if media_type not in content:
        return [f"{where}: media type {media_type} not documented ({list(content)})"]
    media = content[media_type]
    if media_type == "application/json":
        return [f"{where}: {e}" for e in schema_errors(document, media["schema"], record["body"])]
    if media_type == "text/event-stream":
        events = list(event_data(record["body"]))
        if not events:
            return [f"{where}: no event in the stream"]
        return [f"{where}: event: {e}" for event in events for e in schema_errors(document, media["x-event-data"], event)]
    return []


def main():
    document = json.load(open(sys.argv[1]))
    records = json.load(open(sys.argv[2]))
    validate(document)
    problems = [problem for record in records for problem in check(document, record)]
    for problem in problems:
        print(problem)
    print(f"checked {len(records)} responses, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
