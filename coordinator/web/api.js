// The coordinator's REST API as used by the page. Errors come back as
// {"error": {"code", "message"}}; they are thrown as ApiError(message, status).
//
// A coordinator started with --auth wants "Authorization: Bearer TOKEN" on every call. The
// token the user enters is kept for the browser tab's session (sessionStorage: gone when the
// tab closes) and sent with every fetch:
// API calls, result images (fetched, then shown from blob: URLs, since an <img> cannot send
// a header) and the event stream (read with fetch, since EventSource cannot either).

const TOKEN_KEY = 'spriteforge.token';

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
  get unauthenticated() { return this.status === 401; }
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function withAuth(headers = {}) {
  const token = getToken();
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

async function errorOf(response) {
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: the status line below */ }
  const message = json && json.error ? json.error.message : `${response.status} ${response.statusText}`;
  return new ApiError(message, response.status);
}

async function call(method, path, body, headers = {}) {
  const response = await fetch(path, { method, body, headers: withAuth(headers) });
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// A page of the job history, searched by the coordinator: { jobs, total }. `query`: words a
// job must all match (name, model, owner, prompts, state, the start of the id);
// `from`/`until`: creation times in milliseconds (0: no bound).
export const listJobs = ({ query = '', from = 0, until = 0, offset = 0, limit = 50 } = {}) => {
  const params = new URLSearchParams({ offset: String(offset), limit: String(limit) });
  if (query) params.set('q', query);
  if (from) params.set('created_from_unix_ms', String(from));
  if (until) params.set('created_until_unix_ms', String(until));
  return call('GET', `/v1/jobs?${params}`).then((r) => ({ jobs: r.jobs || [], total: Number(r.total || 0) }));
};
export const stats = () => call('GET', '/stats');
export const listWorkers = () => call('GET', '/v1/workers').then((r) => r.workers || []);
export const getJob = (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}`).then((r) => r.job);
export const listResults = (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}/results`);
export const cancelJob = (id) => call('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
export const deleteJob = (id) => call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
export const getJobItems = (id) =>
  call('GET', `/v1/jobs/${encodeURIComponent(id)}?items=true`).then((r) => r.items || []);
export const sidecar = (id, index) => call('GET', `/v1/jobs/${encodeURIComponent(id)}/results/${index}.json`);
export const workerFiles = () => call('GET', '/v1/workers/files').then((r) => r.workers || []);
export const whoAmI = () => call('GET', '/v1/me');

// Stores an image for the caller; the manifest then names it by a path that submit maps to
// the returned sha256. Sent as JSON: state-changing calls take no other body type.
export async function uploadImage(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return call('POST', '/v1/files', JSON.stringify({ image_base64: btoa(binary) }),
    { 'Content-Type': 'application/json' });
}

// Fetches `path` with the token and saves it as `name` (a plain link cannot send the header).
export async function download(path, name) {
  const response = await fetch(path, { headers: withAuth() });
  if (!response.ok) throw await errorOf(response);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob;
}

export async function fetchBlob(path) {
  const response = await fetch(path, { headers: withAuth() });
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

// `previewEvery` > 0 asks for a preview of each image every that many sampling steps;
// `files` maps the paths the manifest names to uploads' sha256.
export function submitManifest(text, filename, idempotencyKey, previewEvery = 0, files = {}) {
  const headers = { 'Content-Type': filename.endsWith('.json') ? 'application/json' : 'application/yaml' };
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let path = `/v1/jobs?filename=${encodeURIComponent(filename)}`;
  if (previewEvery > 0) path += `&preview_every=${previewEvery}`;
  for (const [name, sha] of Object.entries(files)) path += `&file=${encodeURIComponent(`${name}=${sha}`)}`;
  return call('POST', path, text, headers);
}

// A result image as a blob: URL (the caller revokes it when the image goes).
export async function resultImage(id, index) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/results/${index}.png`, { headers: withAuth() });
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

// An image's control and reference images: [{name, kind, url}], and one of them as a blob: URL.
export const itemInputs = (id, index) =>
  call('GET', `/v1/jobs/${encodeURIComponent(id)}/items/${index}/inputs`).then((r) => r.inputs || []);
export async function inputImage(url) {
  const response = await fetch(url, { headers: withAuth() });
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

// Follows a job's Server-Sent Events: onEvent(kind, data) for each event until job_done.
// A dropped stream is opened again after 3 s, as EventSource would; a refusal (4xx) is
// reported to onError and ends it. Returns { close() }.
export function followEvents(id, onEvent, onError) {
  const controller = new AbortController();
  let closed = false;
  const close = () => {
    closed = true;
    controller.abort();
  };
  const dispatch = (block) => {
    let kind = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) kind = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (!data.length) return;  // a comment (keepalive) or the retry hint
    onEvent(kind, data.join('\n'));
    if (kind === 'job_done') close();
  };
  (async () => {
    while (!closed) {
      try {
        const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`,
          { headers: withAuth({ Accept: 'text/event-stream' }), signal: controller.signal, cache: 'no-store' });
        if (!response.ok) {
          const error = await errorOf(response);
          if (response.status < 500) {
            onError(error);
            return;
          }
          throw error;
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        while (!closed) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while (!closed && (end = buffer.indexOf('\n\n')) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        if (closed) return;
        onError(error);
      }
      if (!closed) await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  })();
  return { close };
}
