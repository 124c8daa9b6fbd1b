// The page: polls jobs and workers once a second, submits manifests, opens a job's
// gallery (which follows the job's event stream) and cancels jobs. A coordinator with
// --auth refuses calls without a token (401): the page then asks for one, keeps it in
// localStorage and sends it with every request.
import { cancelJob, getJob, getToken, listJobs, listWorkers, setToken, submitManifest } from './api.js';
import { Gallery, renderJobs, renderWorkers } from './views.js';

const $ = (selector) => document.querySelector(selector);
let selected = null;
let filename = 'manifest.yaml';

// Shown while the coordinator refuses the page's token (or its lack of one).
function showAuthProblem(error) {
  const box = $('#auth-status');
  box.textContent = getToken()
    ? `The coordinator refused the token (${error.message}): enter a valid token above and press Save.`
    : `This coordinator needs a token (${error.message}): enter your API token above and press Save.`;
  box.hidden = false;
}

function clearAuthProblem() {
  $('#auth-status').hidden = true;
}

// Reports an error of a call: authentication problems in the banner, others in `where`.
function report(error, where, prefix) {
  if (error.unauthenticated) showAuthProblem(error);
  if (where) {
    where.textContent = `${prefix}${error.message}`;
    where.className = 'error';
  }
}

const gallery = new Gallery($('#gallery-panel'), showAuthProblem);

async function openJob(id) {
  selected = id;
  try {
    await gallery.open(await getJob(id));
  } catch (error) {
    report(error, $('#gallery-status'), `cannot open ${id}: `);
  }
  refresh();
}

async function cancel(id) {
  try {
    await cancelJob(id);
  } catch (error) {
    report(error, $('#submit-status'), `cancel ${id}: `);
  }
  refresh();
}

async function refresh() {
  try {
    const [jobs, workers] = await Promise.all([listJobs(), listWorkers()]);
    clearAuthProblem();
    renderJobs($('#jobs tbody'), jobs, selected, { open: openJob, cancel });
    renderWorkers($('#workers tbody'), workers);
    const connected = workers.filter((w) => w.connected);
    const rate = connected.reduce((sum, w) => sum + w.images_per_second, 0) * 60;
    const queued = jobs.reduce((sum, j) => sum + ((j.counts && j.counts.queued) || 0), 0);
    $('#summary').textContent =
      `${connected.length} worker(s) connected · ${rate.toFixed(1)} images/min · ${queued} images queued`;
  } catch (error) {
    if (error.unauthenticated) {
      showAuthProblem(error);
      $('#summary').textContent = 'token needed';
    } else {
      $('#summary').textContent = `coordinator unreachable: ${error.message}`;
    }
  }
}

$('#token').value = getToken();
$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setToken($('#token').value.trim());
  clearAuthProblem();
  refresh();
  if (selected) openJob(selected);
});

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
  const previewEvery = Number($('#preview-every').value || 0);
  if (!Number.isInteger(previewEvery) || previewEvery < 0) {
    status.textContent = 'preview every: a whole number of steps, 0 for no previews';
    status.className = 'error';
    return;
  }
  status.textContent = 'submitting…';
  status.className = '';
  try {
    const response = await submitManifest(text, filename, $('#idempotency-key').value.trim(), previewEvery);
    const job = response.job;
    status.textContent = `${response.deduplicated ? 'already submitted' : 'submitted'}: ${job.id} (${job.counts.total} images)`;
    await openJob(job.id);
  } catch (error) {
    report(error, status, 'error: ');
  }
});

refresh();
setInterval(refresh, 1000);
