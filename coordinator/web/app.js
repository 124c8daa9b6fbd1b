// The page: polls jobs and workers once a second, submits manifests, opens a job's
// gallery (which follows the job's event stream) and cancels jobs.
import { cancelJob, getJob, listJobs, listWorkers, submitManifest } from './api.js';
import { Gallery, renderJobs, renderWorkers } from './views.js';

const $ = (selector) => document.querySelector(selector);
const gallery = new Gallery($('#gallery-panel'));
let selected = null;
let filename = 'manifest.yaml';

async function openJob(id) {
  selected = id;
  try {
    await gallery.open(await getJob(id));
  } catch (error) {
    $('#gallery-status').textContent = `cannot open ${id}: ${error.message}`;
  }
  refresh();
}

async function cancel(id) {
  try {
    await cancelJob(id);
  } catch (error) {
    $('#submit-status').textContent = `cancel ${id}: ${error.message}`;
  }
  refresh();
}

async function refresh() {
  try {
    const [jobs, workers] = await Promise.all([listJobs(), listWorkers()]);
    renderJobs($('#jobs tbody'), jobs, selected, { open: openJob, cancel });
    renderWorkers($('#workers tbody'), workers);
    const connected = workers.filter((w) => w.connected);
    const rate = connected.reduce((sum, w) => sum + w.images_per_second, 0) * 60;
    const queued = jobs.reduce((sum, j) => sum + ((j.counts && j.counts.queued) || 0), 0);
    $('#summary').textContent =
      `${connected.length} worker(s) connected · ${rate.toFixed(1)} images/min · ${queued} images queued`;
  } catch (error) {
    $('#summary').textContent = `coordinator unreachable: ${error.message}`;
  }
}

$('#manifest-file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  filename = file.name;
  $('#manifest-text').value = await file.text();
  $('#submit-status').textContent = `loaded ${file.name}`;
});

$('#submit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('#manifest-text').value;
  const status = $('#submit-status');
  if (!text.trim()) {
    status.textContent = 'paste a manifest or choose a file first';
    return;
  }
  status.textContent = 'submitting…';
  try {
    const response = await submitManifest(text, filename, $('#idempotency-key').value.trim());
    const job = response.job;
    status.textContent = `${response.deduplicated ? 'already submitted' : 'submitted'}: ${job.id} (${job.counts.total} images)`;
    await openJob(job.id);
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    status.className = 'error';
    return;
  }
  status.className = '';
});

refresh();
setInterval(refresh, 1000);
