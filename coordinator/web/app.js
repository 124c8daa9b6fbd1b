// The page: makes jobs from a form (or a manifest), follows them (jobs, workers, a live
// gallery), opens an image full size to reuse it, and keeps a searchable history of jobs
// to re-run, download or delete. A coordinator with --auth refuses calls without a token
// (401): the page then asks for one, keeps it for the tab's session and sends it with every
// request, and offers only what the token's role may do.
import {
  cancelJob, deleteJob, download, fetchBlob, getJob, getJobItems, getToken, listJobs, listWorkers, setToken,
  sidecar, stats, submitManifest, uploadImage, whoAmI, workerFiles,
} from './api.js';
import { MakeForm, manifestFromItems } from './form.js';
import { el, finished, Gallery, perMinute, renderJobs, renderWorkers } from './views.js';

const $ = (selector) => document.querySelector(selector);
const PAGE = 50;
let selected = null;
let filename = 'manifest.yaml';
let me = { role: 'admin', anonymous: true, name: '' };
let page = 0;
let lastJobs = [];
let historyRequest = 0;  // the latest history request made
let historyShown = 0;    // the latest one shown: an answer older than it is dropped

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

// What the caller's role allows: viewers only look; submitters act on their own jobs.
const maySubmit = () => me.role === 'admin' || me.role === 'submitter';
const mayChange = (job) => me.anonymous || me.role === 'admin' || (me.role === 'submitter' && job && job.owner === me.name);

async function learnRole() {
  try {
    me = await whoAmI();
  } catch {
    return;
  }
  $('#who').textContent = me.anonymous ? '' : `${me.name} (${me.role})`;
  document.body.classList.toggle('viewer', !maySubmit());
  $('#submit-button').disabled = !maySubmit();
}

const form = new MakeForm(() => {});
const gallery = new Gallery($('#gallery-panel'), showAuthProblem, (index) => viewer.open(index));

// ------------------------------------------------------------------ jobs and history

// The history the page shows: a page of PAGE jobs the coordinator searched and counted
// (GET /v1/jobs), so it works the same over ten jobs or a hundred thousand.
function historyQuery() {
  // A day from the date pickers, local midnight to midnight; 0: no bound.
  const day = (value, next) => {
    if (!value) return 0;
    const [y, m, d] = value.split('-').map(Number);
    return new Date(y, m - 1, d + (next ? 1 : 0)).getTime();
  };
  return {
    query: $('#history-search').value.trim(), from: day($('#history-from').value, false),
    until: day($('#history-until').value, true), offset: page * PAGE, limit: PAGE,
  };
}

function renderHistory(total) {
  const pages = Math.max(1, Math.ceil(total / PAGE));
  renderJobs($('#jobs tbody'), lastJobs, selected, { open: openJob, cancel }, { cancel: maySubmit() }, gallery.live());
  $('#history-page').textContent = `${page + 1} / ${pages} (${total} jobs)`;
  $('#history-prev').disabled = page === 0;
  $('#history-next').disabled = page >= pages - 1;
}

async function openJob(id, scroll = false) {
  selected = id;
  try {
    const job = await getJob(id);
    await gallery.open(job);
    showJobActions(job);
    if (scroll) $('#gallery-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
  } catch (error) {
    report(error, $('#gallery-status'), `cannot open ${id}: `);
  }
  refresh();
}

function showJobActions(job) {
  $('#rerun-new').hidden = !maySubmit();
  $('#rerun-same').hidden = !maySubmit();
  $('#delete-job').hidden = !mayChange(job);
  $('#delete-job').disabled = !finished(job.state);
  $('#delete-job').title = finished(job.state) ? '' : 'cancel the job or let it finish first';
  $('#delete-job').textContent = 'Delete';
}

async function cancel(id) {
  try {
    await cancelJob(id);
    if (id === gallery.jobId) gallery.stopTiles('cancelled');
  } catch (error) {
    report(error, $('#submit-status'), `cancel ${id}: `);
  }
  refresh();
}

async function refresh() {
  try {
    const request = ++historyRequest;
    const asked = historyQuery();
    const [history, workers, figures] = await Promise.all([listJobs(asked), listWorkers(), stats()]);
    clearAuthProblem();
    // An answer overtaken by a newer one, or to a search the user has since changed.
    if (request < historyShown || JSON.stringify(asked) !== JSON.stringify(historyQuery())) return;
    historyShown = request;
    const jobs = history.jobs;
    const pages = Math.max(1, Math.ceil(history.total / PAGE));
    if (page > pages - 1) {  // the last page shrank (jobs deleted, a narrower search)
      page = pages - 1;
      refresh();
      return;
    }
    lastJobs = jobs;
    renderHistory(history.total);
    renderWorkers($('#workers tbody'), workers);
    const connected = workers.filter((w) => w.connected);
    const running = connected.reduce((sum, w) => sum + (w.running_items || 0), 0);
    const rate = connected.reduce((sum, w) => sum + w.images_per_second, 0);
    const queued = Number(figures.queue_depth || 0);
    const activity = running || queued ? `${perMinute(rate)} images/min · ${queued} images queued` : 'idle';
    $('#summary').textContent = `${connected.length} worker(s) connected · ${activity}`;
    if (gallery.job && selected === gallery.jobId) {
      const job = jobs.find((j) => j.id === selected);
      if (job) showJobActions(job);
    }
  } catch (error) {
    if (error.unauthenticated) {
      showAuthProblem(error);
      $('#summary').textContent = 'token needed';
    } else {
      $('#summary').textContent = `coordinator unreachable: ${error.message}`;
    }
  }
}

async function refreshServed() {
  try {
    form.serve(await workerFiles());
  } catch { /* the next refresh reports it */ }
}

// ------------------------------------------------------------------ submitting

async function submit(text, name, files = []) {
  const status = $('#submit-status');
  const previewEvery = Number($('#preview-every').value || 0);
  if (!Number.isInteger(previewEvery) || previewEvery < 0) {
    status.textContent = 'preview every: a whole number of steps, 0 for no previews';
    status.className = 'error';
    return;
  }
  status.textContent = 'submitting…';
  status.className = '';
  try {
    const uploaded = {};
    for (const file of files) uploaded[file.path] = (await uploadImage(file.blob)).sha256;
    const response = await submitManifest(text, name, $('#idempotency-key').value.trim(), previewEvery, uploaded);
    const job = response.job;
    status.textContent = `${response.deduplicated ? 'already submitted' : 'submitted'}: ${job.id} (${job.counts.total} images)`;
    await openJob(job.id, true);
  } catch (error) {
    report(error, status, 'error: ');
  }
}

$('#submit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('#manifest-text').value;
  if (!text.trim()) {
    $('#submit-status').textContent = 'fill in the form, paste a manifest or choose a file first';
    return;
  }
  submit(text, filename, form.filesIn(text));
});

$('#manifest-file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  filename = file.name;
  $('#manifest-text').value = await file.text();
  $('#submit-status').textContent = `loaded ${file.name}`;
});

$('#manifest-copy').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText($('#manifest-text').value);
    $('#submit-status').textContent = 'manifest copied';
  } catch {
    $('#manifest-text').select();
    $('#submit-status').textContent = 'select and copy the manifest (the clipboard is not available here)';
  }
});

async function rerun(sameSeeds) {
  if (!gallery.job) return;
  try {
    const text = manifestFromItems(gallery.job, await getJobItems(gallery.jobId), sameSeeds);
    $('#manifest-text').value = text;
    filename = 'manifest.yaml';
    await submit(text, filename);
  } catch (error) {
    report(error, $('#gallery-status'), 're-run: ');
  }
}

$('#rerun-new').addEventListener('click', () => rerun(false));
$('#rerun-same').addEventListener('click', () => rerun(true));

// Deleting asks twice: the first press turns the button into the question.
$('#delete-job').addEventListener('click', async () => {
  const button = $('#delete-job');
  if (button.textContent === 'Delete') {
    button.textContent = 'Really delete job and files?';
    return;
  }
  const id = gallery.jobId;
  try {
    await deleteJob(id);
    gallery.close();
    $('#gallery-panel').hidden = true;
    $('#submit-status').textContent = `deleted ${id}`;
    selected = null;
    gallery.jobId = null;
  } catch (error) {
    report(error, $('#gallery-status'), 'delete: ');
  }
  refresh();
});

$('#archive').addEventListener('click', async () => {
  try {
    const blob = await download(`/v1/jobs/${encodeURIComponent(gallery.jobId)}/archive.zip`, `${gallery.jobId}.zip`);
    $('#gallery').dataset.archiveBytes = blob.size;
  } catch (error) {
    report(error, $('#gallery-status'), 'zip: ');
  }
});

// ------------------------------------------------------------------ the image view

const viewer = {
  index: 0,
  params: null,

  done() {
    return [...gallery.tiles.entries()].filter(([, t]) => t.classList.contains('done') && t.dataset.url)
      .map(([i]) => i);
  },

  async open(index) {
    const tile = gallery.tiles.get(index);
    if (!tile || !tile.dataset.url) return;
    this.index = index;
    const dialog = $('#viewer');
    $('#viewer-img').src = tile.dataset.url;
    $('#viewer-img').alt = `image ${index} of ${gallery.jobId}`;
    $('#viewer-title').textContent = `${gallery.job ? gallery.job.name : ''} #${index}`;
    this.zoom();
    if (!dialog.open) dialog.showModal();
    $('#viewer-params').replaceChildren(el('dd', {}, 'loading…'));
    try {
      const info = await sidecar(gallery.jobId, index);
      if (this.index !== index) return;
      this.params = info.parameters || {};
      this.show(info);
    } catch (error) {
      $('#viewer-params').replaceChildren(el('dd', {}, `parameters: ${error.message}`));
    }
  },

  show(info) {
    const p = this.params;
    const loras = (p.loras || []).map((l) => `${l.name}:${l.strength}`).join(', ') || 'none';
    const t = info.timings_ms || {};
    const rows = [
      ['Prompt', p.prompt], ['Negative', p.negative || '—'], ['Seed', String(p.seed)],
      ['Size', `${p.width} × ${p.height}`], ['Steps · CFG', `${p.steps} · ${p.cfg}`],
      ['Sampler', `${p.sampler} (${p.schedule})`], ['LoRAs', loras], ['Model', p.model || ''],
      ['Worker', info.worker || ''],
      ['Timings', t.total ? `${Math.round(t.total)} ms (denoise ${Math.round(t.denoise || 0)}, decode ${Math.round(t.decode || 0)})` : '—'],
    ];
    if (p.denoising_strength) rows.push(['Denoising strength', String(p.denoising_strength)]);
    $('#viewer-params').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v || '')]));
    $('#viewer').dataset.seed = String(p.seed);
  },

  zoom() {
    const img = $('#viewer-img');
    const z = $('#viewer-zoom').value;
    const apply = () => {
      img.style.width = z === 'fit' ? '100%' : `${img.naturalWidth * Number(z)}px`;
    };
    if (img.complete) apply();
    else img.onload = apply;
  },

  step(delta) {
    const done = this.done();
    const at = done.indexOf(this.index);
    if (!done.length) return;
    this.open(done[(at + delta + done.length) % done.length]);
  },

  async use(role) {
    const blob = await fetchBlob(`/v1/jobs/${encodeURIComponent(gallery.jobId)}/results/${this.index}.png`);
    form.setFile(role, blob, `${gallery.jobId}-${this.index}.png`);
    if (role === 'control' && !$('#f-control-model').value && $('#f-control-model').options.length > 1) {
      $('#f-control-model').selectedIndex = 1;
    }
    if (role === 'reference' && !$('#f-adapter').value && $('#f-adapter').options.length > 1) {
      $('#f-adapter').selectedIndex = 1;
    }
    if (this.params) form.fill(this.params, this.params.model);
    form.write();
    this.close();
    $('#f-prompt').focus();
  },

  close() {
    $('#viewer').close();
  },
};

$('#viewer-close').addEventListener('click', () => viewer.close());
$('#viewer-prev').addEventListener('click', () => viewer.step(-1));
$('#viewer-next').addEventListener('click', () => viewer.step(1));
$('#viewer-zoom').addEventListener('change', () => viewer.zoom());
$('#viewer').addEventListener('keydown', (event) => {
  if (['SELECT', 'INPUT'].includes(event.target.tagName)) return;  // their own arrows
  if (event.key === 'ArrowLeft') viewer.step(-1);
  else if (event.key === 'ArrowRight') viewer.step(1);
});
$('#viewer-download').addEventListener('click', () =>
  download(`/v1/jobs/${encodeURIComponent(gallery.jobId)}/results/${viewer.index}.png`,
    `${gallery.jobId}-${viewer.index}.png`).catch((error) => report(error, $('#gallery-status'), 'download: ')));
$('#use-init').addEventListener('click', () => viewer.use('init'));
$('#use-reference').addEventListener('click', () => viewer.use('reference'));
$('#use-control').addEventListener('click', () => viewer.use('control'));
// Same settings, the seeds just after this one.
$('#more-like-this').addEventListener('click', () => {
  if (!viewer.params) return;
  form.fill(viewer.params, viewer.params.model);
  $('#f-seed').value = String(Number(viewer.params.seed) + 1);
  $('#f-count').value = '4';
  form.write();
  viewer.close();
  $('#submit-button').focus();
});

// ------------------------------------------------------------------ start

$('#token').value = getToken();
$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setToken($('#token').value.trim());
  clearAuthProblem();
  learnRole().then(refresh);
  refreshServed();
  if (selected) openJob(selected);
});
// Searched as the user types, a moment after the last key.
let searchTimer = null;
$('#history-search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { page = 0; refresh(); }, 250);
});
for (const picker of ['#history-from', '#history-until']) {
  $(picker).addEventListener('change', () => { page = 0; refresh(); });
}
$('#history-prev').addEventListener('click', () => { page = Math.max(0, page - 1); refresh(); });
$('#history-next').addEventListener('click', () => { page += 1; refresh(); });

form.write();
learnRole().then(refresh);
refreshServed();
setInterval(refresh, 1000);
setInterval(refreshServed, 5000);
