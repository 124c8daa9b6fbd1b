"""Checks live HTTP responses against docs/openapi.yaml: the route and status must be
documented, and a JSON body must match the response's schema (JSON Schema 2020-12, which
OpenAPI 3.1 schemas are). Records what was checked so a test can require that every
documented operation was exercised."""

import http.client
import json
import re

import jsonschema
import yaml


class OpenApi:
    def __init__(self, path):
        with open(path) as f:
            self.spec = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.spec)
        self.checked = set()
        self.routes = []
        for template, operations in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
            for method in operations:
                self.routes.append((re.compile(pattern), method.upper(), template))

    def call(self, test, host, method, path, body=None, headers=None, status=200):
        """One request to the live server: `test` asserts the status, then the response is
        checked against the document. A dict or list body is sent as JSON."""
        conn = http.client.HTTPConnection(host, timeout=120)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json")  # bodies of other types get 415
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        test.assertEqual(response.status, status, f"{method} {path}: {data[:300]!r}")
        return self.check(method, path, response.status, response.getheader("Content-Type", ""), data)

    def operation(self, method, path):
        path = path.split("?")[0]
        # Literal paths win over templated ones (/v1/jobs/x/results vs .../{index}.png).
        matches = [(t.count("{"), t) for p, m, t in self.routes if m == method and p.match(path)]
        if not matches:
            raise AssertionError(f"{method} {path} is not in the OpenAPI document")
        template = min(matches)[1]
        return template, self.spec["paths"][template][method.lower()]

    def schema(self, node):
        while "$ref" in node:
            node = self.resolver.resolve(node["$ref"])[1]
        return node

    def validate(self, schema, value, what):
        validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise AssertionError(f"{what}: {e.message} at {'/'.join(map(str, e.path)) or 'the top'}")

    def check(self, method, path, status, content_type, body):
        """Validates one response; returns the parsed JSON body (or the raw bytes)."""
        template, op = self.operation(method, path)
        responses = op["responses"]
        what = f"{method} {path} -> {status}"
        if str(status) not in responses:
            raise AssertionError(f"{what}: status not documented for {template} ({', '.join(responses)})")
        response = self.schema(responses[str(status)])
        media = content_type.split(";")[0].strip()
        content = response.get("content", {})
        if media not in content:
            raise AssertionError(f"{what}: content type {media} not documented ({', '.join(content)})")
        self.checked.add((template, method.upper(), str(status)))
        if media != "application/json":
            return body
        value = json.loads(body)
        self.validate(content[media]["schema"], value, what)
        return value

    def check_event(self, data):
        schema = self.spec["components"]["schemas"]["JobEvent"]
        value = json.loads(data)
        self.validate(schema, value, "event")
        return value

    def unchecked_operations(self, test="openapi_test"):
        """Operations `test` covers that were not called: those marked x-live-test with its
        name, or unmarked for openapi_test."""
        done = {(t, m) for t, m, _ in self.checked}
        ours = [(m, t) for _, m, t in self.routes
                if self.spec["paths"][t][m.lower()].get("x-live-test", "openapi_test") == test]
        return sorted(f"{m} {t}" for m, t in ours if (t, m) not in done)
