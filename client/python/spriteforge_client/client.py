"""The REST API (/v1/...) as Python calls. Jobs, items and workers come back as the
coordinator's JSON (proto field names; 64-bit integers such as seeds as strings)."""

import json
import os
import sys
import time

import requests

from .progress import ProgressBar

FINISHED = {"JOB_DONE", "JOB_FAILED", "JOB_CANCELLED"}


class ApiError(Exception):
    """An error reply: `code` is the gRPC status name (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _unreachable_reason(error):
    """The cause of a failed connection in a few words, not urllib3's object dump."""
    text = str(error)
    for needle, reason in (("Connection refused", "connection refused"),
                           ("Name or service not known", "unknown host"),
                           ("Temporary failure in name resolution", "unknown host"),
                           ("timed out", "timed out"),
                           ("No route to host", "no route to host"),
                           ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted (--ca-cert?)"),
                           ("WRONG_VERSION_NUMBER", "it does not speak TLS (http:// instead of https://?)")):
        if needle in text:
            return reason
    return type(error).__name__


class Client:
    """`token`: for coordinators with --auth (sent as "Authorization: Bearer TOKEN").
    `ca_cert`: a PEM file to verify an https:// coordinator's certificate against."""

    def __init__(self, url="http://127.0.0.1:8080", timeout=30, token=None, ca_cert=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if ca_cert:
            self.session.verify = ca_cert

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- plumbing

    def _request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        if method == "POST":
            # The coordinator takes state-changing requests only with a JSON or YAML body type.
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        try:
            response = self.session.request(method, self.url + path, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ApiError(0, "UNAVAILABLE", f"cannot reach {self.url}: {_unreachable_reason(e)}") from None
        if not response.ok:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "UNKNOWN", f"HTTP {response.status_code} from {path}") from None
        return response

    def _json(self, method, path, **kwargs):
        return self._request(method, path, **kwargs).json()

    # ---------------------------------------------------------------- jobs

    def submit(self, manifest, *, filename=None, idempotency_key=None, model=None):
        """Queues a manifest: a file path, YAML/JSON text or bytes, or a dict. Returns the
        job; with the idempotency key of an earlier submission, that submission's job."""
        if isinstance(manifest, dict):
            body, content_type = json.dumps(manifest), "application/json"
        elif isinstance(manifest, os.PathLike) or (isinstance(manifest, str) and "\n" not in manifest
                                                   and os.path.isfile(manifest)):
            with open(manifest, "rb") as f:
                body = f.read()
            filename = filename or os.path.basename(os.fspath(manifest))
            content_type = "application/json" if filename.endswith(".json") else "application/yaml"
        else:
            body, content_type = manifest, "application/yaml"
        headers = {"Content-Type": content_type}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        params = {}
        if filename:
            params["filename"] = filename
        if model:
            params["model"] = model
        return self._json("POST", "/v1/jobs", data=body, headers=headers, params=params)["job"]

    def job(self, job_id, items=False):
        """The job; with items=True the dict {"job": ..., "items": [...]}."""
        reply = self._json("GET", f"/v1/jobs/{job_id}", params={"items": "true" if items else "false"})
        return reply if items else reply["job"]

    def jobs(self, limit=100):
        return self._json("GET", "/v1/jobs", params={"limit": limit})["jobs"]

    def cancel(self, job_id):
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")["job"]

    def workers(self):
        return self._json("GET", "/v1/workers")["workers"]

    # ---------------------------------------------------------------- progress

    def events(self, job_id):
        """Yields (kind, event) from the job's event stream until the job is done: a
        snapshot ("queued") first, then started, progress, preview (jobs with preview_every),
        item_done, item_failed, job_done."""
        response = self._request("GET", f"/v1/jobs/{job_id}/events", stream=True, timeout=(self.timeout, None))
        kind, data = None, []
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    event = json.loads("\n".join(data))
                    yield kind, event
                    if kind == "job_done":
                        return
                    kind, data = None, []
        finally:
            response.close()

    def watch(self, job_id, progress=True, out=None):
        """Follows the job until it finishes and returns its final state; draws a progress
        bar on `out` (stderr by default) unless progress=False."""
        bar = ProgressBar(out or sys.stderr) if progress else None
        job = None
        # A stream that breaks (a coordinator restart) is opened again; each opening
        # starts with a snapshot, so nothing is counted twice.
        for attempt in range(5):
            for kind, event in self.events(job_id):
                job = event["job"]
                if bar:
                    bar.update(job, event.get("progress"))
            if job and job["state"] in FINISHED:
                break
            time.sleep(1 + attempt)
        else:
            raise ApiError(0, "UNAVAILABLE", f"the event stream of {job_id} kept ending before the job finished")
        if bar:
            bar.finish(job)
        return job

    def wait(self, job_id):
        return self.watch(job_id, progress=False)

    # ---------------------------------------------------------------- results

    def results(self, job_id):
        """The finished images: index, seed, prompt, size, worker and URL of each."""
        return self._json("GET", f"/v1/jobs/{job_id}/results")["results"]

    def image(self, job_id, index, render=False):
        """One image's PNG bytes (the sprite when the job made one; render=True: the raw render)."""
        params = {"render": "true"} if render else {}
        return self._request("GET", f"/v1/jobs/{job_id}/results/{index}.png", params=params).content

    def download(self, job_id, out_dir):
        """Writes every finished image to out_dir as <index>_<seed>.png; returns the paths."""
        results = self.results(job_id)  # first: an unknown job leaves no empty folder
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for r in results:
            path = os.path.join(out_dir, f"{r['index']}_{r['seed']}.png")
            with open(path, "wb") as f:
                f.write(self.image(job_id, r["index"]))
            paths.append(path)
        return paths
