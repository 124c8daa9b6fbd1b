// The coordinator's REST API as used by the page. Errors come back as
// {"error": {"code", "message"}}; they are thrown as Error(message).

async function call(method, path, body, headers = {}) {
  const response = await fetch(path, { method, body, headers });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const message = json && json.error ? json.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return json;
}

export const listJobs = (limit = 50) => call('GET', `/v1/jobs?limit=${limit}`).then((r) => r.jobs || []);
export const listWorkers = () => call('GET', '/v1/workers').then((r) => r.workers || []);
export const getJob = (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}`).then((r) => r.job);
export const listResults = (id) => call('GET', `/v1/jobs/${encodeURIComponent(id)}/results`);
export const cancelJob = (id) => call('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);

export function submitManifest(text, filename, idempotencyKey) {
  const headers = { 'Content-Type': filename.endsWith('.json') ? 'application/json' : 'application/yaml' };
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  return call('POST', `/v1/jobs?filename=${encodeURIComponent(filename)}`, text, headers);
}

export const resultUrl = (id, index) => `/v1/jobs/${encodeURIComponent(id)}/results/${index}.png`;
export const eventsUrl = (id) => `/v1/jobs/${encodeURIComponent(id)}/events`;
