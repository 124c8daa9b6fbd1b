// Rendering of jobs, workers and a job's gallery. Text from the server is always set as
// text, never as HTML: prompts and names are user input.
import { followEvents, inputImage, itemInputs, listResults, resultImage } from './api.js';

// Images per minute, or nothing while there is no rate to show (idle, or not measured yet).
export const perMinute = (perSecond) => (perSecond > 0 ? (perSecond * 60).toFixed(1) : '—');

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    // The page's Content-Security-Policy refuses style attributes, not the CSSOM.
    else if (key === 'style') node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const FINISHED = new Set(['JOB_DONE', 'JOB_FAILED', 'JOB_CANCELLED']);
export const finished = (state) => FINISHED.has(state);
const stateName = (state) => state.replace(/^(JOB|ITEM)_/, '').toLowerCase();

export function formatBytes(bytes) {
  const n = Number(bytes || 0);
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(0)} MB`;
  return `${(n / 1e3).toFixed(0)} kB`;
}

export function formatEta(seconds) {
  if (!seconds) return '—';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function bar(fraction, cls, label) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return el('div', { class: `bar ${cls}`, title: label },
    el('div', { class: 'fill', style: `width: ${pct.toFixed(1)}%` }), el('span', {}, label));
}

// One row per job; `actions` holds the open and cancel callbacks and `may` what the caller
// may do. `live` is the gallery's step-level progress of the job it follows, if any: the
// bar then moves within an image's sampling rather than only when images finish.
export function renderJobs(tbody, jobs, selectedId, actions, may = {}, live = null) {
  if (!jobs.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'no jobs')));
    return;
  }
  tbody.replaceChildren(...jobs.map((job) => {
    const c = job.counts || {};
    const total = c.total || 0;
    const done = c.done || 0;
    const stepped = live && live.jobId === job.id && !finished(job.state) ? live : null;
    const fraction = stepped ? stepped.fraction : (total ? done / total : 0);
    const label = `${done}/${total}` + (c.failed ? ` (${c.failed} failed)` : '') +
      (stepped ? ` · ${Math.floor(stepped.fraction * 100)}%` : '');
    const eta = stepped && stepped.eta ? stepped.eta : job.eta_seconds;
    const buttons = el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'open', onclick: () => actions.open(job.id) }, 'Open'));
    if (!finished(job.state) && may.cancel) {
      buttons.append(el('button', { type: 'button', class: 'cancel', onclick: () => actions.cancel(job.id) }, 'Cancel'));
    }
    const created = job.created_unix_ms ? new Date(Number(job.created_unix_ms)).toLocaleString() : '';
    return el('tr', { class: job.id === selectedId ? 'selected' : '', 'data-job': job.id },
      el('td', {}, el('strong', {}, job.name), el('br'), el('code', {}, job.id),
        el('div', { class: 'dim small' }, `${job.model} · ${created}`)),
      el('td', { class: `state ${stateName(job.state)}`, title: job.waiting_reason || '' }, stateName(job.state),
        job.waiting_reason ? el('div', { class: 'waiting' }, job.waiting_reason) : ''),
      el('td', {}, bar(fraction, 'progress', label)),
      el('td', { class: 'num' }, finished(job.state) ? '—' : perMinute(job.images_per_second)),
      el('td', { class: 'num eta' }, finished(job.state) ? '—' : formatEta(eta)),
      buttons);
  }));
}

export function renderWorkers(tbody, workers) {
  if (!workers.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'no worker has connected yet')));
    return;
  }
  tbody.replaceChildren(...workers.map((w) => {
    const total = Number(w.total_bytes) || 0;
    const of = (bytes) => (total ? Number(bytes) / total : 0);
    // used_bytes is the worker's own; machine_used_bytes every process's on its device (the
    // machine's RAM on unified memory and CPUs, where the worker's resident memory counts in both).
    const hostMemory = w.unified_memory || w.device_name === 'cpu';
    const used = bar(of(w.used_bytes), 'used',
      `worker ${formatBytes(w.used_bytes)} · machine ${formatBytes(w.machine_used_bytes)}`);
    used.title = `worker ${formatBytes(w.used_bytes)}: its own ` +
      (hostMemory ? 'resident memory and device allocations' : `device memory (host RAM ${formatBytes(w.resident_bytes)})`) +
      `; machine ${formatBytes(w.machine_used_bytes)}: every process's ` + (hostMemory ? 'RAM' : 'device memory');
    const memory = el('td', { class: 'memory' },
      used,
      bar(of(w.peak_bytes), 'peak', `peak ${formatBytes(w.peak_bytes)}`),
      bar(of(w.budget_bytes), 'budget', `budget ${formatBytes(w.budget_bytes)} of ${formatBytes(total)}`));
    return el('tr', { class: w.connected ? '' : 'disconnected', 'data-worker': w.id },
      el('td', {}, el('code', {}, w.id), el('br'), w.connected ? `${w.running_items} running` : 'disconnected'),
      el('td', {}, w.device_name, w.compute_capability ? ` (${w.compute_capability})` : '',
        el('br'), (w.models || []).join(', ')),
      memory,
      el('td', { class: 'num' }, w.running_items ? perMinute(w.images_per_second) : '—'),
      el('td', { class: 'num' }, String(w.images_done)));
  }));
}

// A job's images as tiles that fill in from the job's event stream: previews (when the
// job asked for them) while an image samples, then the final image.
export class Gallery {
  // `onOpenImage(index)`: a finished tile was activated.
  constructor(panel, onAuthError, onOpenImage = () => {}) {
    this.onOpenImage = onOpenImage;
    this.steps = new Map();  // index -> share of its sampling done, 0..1
    this.samples = [];       // [ms, fraction] while the job runs, for the ETA
    this.panel = panel;
    this.grid = panel.querySelector('#gallery');
    this.status = panel.querySelector('#gallery-status');
    this.title = panel.querySelector('#gallery-title');
    this.onAuthError = onAuthError;
    this.stream = null;
    this.tiles = new Map();
    this.urls = [];
  }

  async open(job) {
    this.close();
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.jobId = job.id;
    this.panel.hidden = false;
    this.title.textContent = `${job.name} (${job.id})`;
    this.grid.replaceChildren();
    this.grid.dataset.streamed = 0;
    this.grid.dataset.previews = 0;
    this.tiles.clear();
    this.steps.clear();
    this.samples = [];
    this.state = job.state;
    this.ensureTiles(job.counts ? job.counts.total : 0);
    this.showJob(job);
    // Images done before the stream opened come from the results list.
    const results = await listResults(job.id);
    if (this.jobId !== job.id) return;
    for (const r of results.results) this.done(r.index);
    const handlers = {
      queued: (ev) => this.ensureTiles(ev.queued.items),
      started: (ev) => this.mark(ev.started.indices, 'running', 'starting'),
      progress: (ev) => {
        this.mark(ev.progress.indices, 'running', `step ${ev.progress.step}/${ev.progress.total_steps}`);
        for (const i of ev.progress.indices) this.stepped(i, ev.progress.step / ev.progress.total_steps);
      },
      preview: (ev) => this.preview(ev.preview),
      item_done: (ev) => {
        this.done(ev.item_done.index);
        this.grid.dataset.streamed = Number(this.grid.dataset.streamed || 0) + 1;  // arrived live
      },
      item_failed: (ev) => {
        this.mark([ev.item_failed.index], ev.item_failed.will_retry ? 'queued' : 'failed', ev.item_failed.message);
        this.steps.set(ev.item_failed.index, ev.item_failed.will_retry ? 0 : 1);
      },
      job_done: (ev) => {
        this.state = ev.job_done.state || (ev.job && ev.job.state);
        if (this.state === 'JOB_CANCELLED') this.stopTiles('cancelled');
        this.close();
      },
    };
    this.stream = followEvents(job.id, (kind, data) => {
      const event = JSON.parse(data);
      if (event.job_id !== this.jobId || !handlers[kind]) return;
      handlers[kind](event);
      if (event.job) this.showJob(event.job);
    }, (error) => {
      if (error.unauthenticated) this.onAuthError(error);
      this.status.textContent = `event stream: ${error.message}` + (error.status ? '' : ' (reconnecting)');
    });
  }

  close() {
    if (this.stream) this.stream.close();
    this.stream = null;
  }

  showJob(job) {
    this.job = job;
    this.state = job.state;
    if (job.state === 'JOB_CANCELLED') this.stopTiles('cancelled');
    const c = job.counts || {};
    const live = finished(job.state) ? '' : ` · ${Math.floor(this.fraction() * 100)}% of the steps`;
    const eta = !finished(job.state) && this.eta() ? `, about ${formatEta(this.eta())} left` : '';
    const rate = job.images_per_second && !finished(job.state) ? `, ${perMinute(job.images_per_second)} images/min` : '';
    const waiting = job.waiting_reason ? ` (${job.waiting_reason})` : '';
    this.status.textContent = `${stateName(job.state)}: ${c.done || 0} of ${c.total || 0} done${live}${rate}${eta}${waiting}`;
    this.grid.dataset.fraction = this.fraction().toFixed(4);
  }

  // The job's share done counting sampling steps: finished images whole, running ones by step.
  fraction() {
    const total = this.tiles.size;
    if (!total) return 0;
    let sum = 0;
    for (const f of this.steps.values()) sum += f;
    return Math.min(1, sum / total);
  }

  // Seconds left at the rate the share done has grown since sampling began; 0 while unknown.
  eta() {
    if (this.samples.length < 2) return 0;
    const [t0, f0] = this.samples[0];
    const [t1, f1] = this.samples[this.samples.length - 1];
    if (f1 <= f0 || t1 <= t0) return 0;
    return ((1 - f1) * (t1 - t0)) / (f1 - f0) / 1000;
  }

  stepped(index, share) {
    if ((this.steps.get(index) || 0) >= share) return;
    this.steps.set(index, share);
    this.samples.push([Date.now(), this.fraction()]);
    // Progress seen before any image finished: the part that counting images cannot show.
    if (share < 1 && ![...this.tiles.values()].some((t) => t.classList.contains('done'))) {
      this.grid.dataset.steppedBeforeDone = this.fraction().toFixed(4);
    }
    if (this.samples.length > 200) this.samples.splice(1, 1);  // keep the first: the rate since start
    if (this.job) this.showJob(this.job);
  }

  // A cancelled job: its queued and running tiles stop saying they will come.
  stopTiles(text) {
    for (const [i, tile] of this.tiles) {
      if (tile.classList.contains('done') || tile.classList.contains('failed')) continue;
      tile.classList.remove('queued', 'running');
      tile.classList.add('stopped');
      tile.querySelector('.caption').textContent = `#${i} ${text}`;
    }
  }

  // Live progress for the jobs table, while following a running job.
  live() {
    if (!this.jobId || finished(this.state)) return null;
    return { jobId: this.jobId, fraction: this.fraction(), eta: this.eta() };
  }

  ensureTiles(count) {
    for (let i = this.tiles.size; i < count; ++i) {
      const caption = el('span', { class: 'caption' }, `#${i}`);
      const tile = el('figure', { class: 'tile queued', 'data-index': i }, caption);
      this.tiles.set(i, tile);
      this.grid.append(tile);
    }
  }

  mark(indices, state, text) {
    for (const i of indices) {
      const tile = this.tiles.get(i);
      if (!tile || tile.classList.contains('done') || tile.classList.contains('stopped')) continue;
      tile.classList.remove('queued', 'running', 'failed');
      tile.classList.add(state);
      tile.querySelector('.caption').textContent = `#${i} ${text}`;
    }
  }

  // A low-resolution look at an image mid-sampling (one pixel per latent), scaled up until
  // the final image replaces it.
  preview(p) {
    this.ensureTiles(p.index + 1);
    const tile = this.tiles.get(p.index);
    if (tile.classList.contains('done')) return;
    let img = tile.querySelector('img.preview');
    if (!img) {
      img = el('img', { class: 'preview', alt: `preview of image ${p.index}` });
      img.addEventListener('load', () => {
        this.grid.dataset.previewSize = `${img.naturalWidth}x${img.naturalHeight}`;
      });
      tile.prepend(img);
    }
    img.src = `data:image/png;base64,${p.png}`;
    tile.dataset.previewStep = p.step;
    this.mark([p.index], 'running', `step ${p.step}/${p.total_steps}`);
    this.grid.dataset.previews = Number(this.grid.dataset.previews || 0) + 1;
  }

  async done(index) {
    this.ensureTiles(index + 1);
    const tile = this.tiles.get(index);
    if (tile.classList.contains('done')) return;
    tile.className = 'tile done';
    this.stepped(index, 1);
    const jobId = this.jobId;
    try {
      const url = await resultImage(jobId, index);
      if (this.jobId !== jobId) return URL.revokeObjectURL(url);
      this.urls.push(url);
      tile.replaceChildren(
        el('button', { type: 'button', class: 'open-image', 'aria-label': `open image ${index}`,
          onclick: () => this.onOpenImage(index) }, el('img', { src: url, alt: `image ${index}` })),
        el('span', { class: 'caption' }, `#${index}`));
      tile.dataset.url = url;
    } catch (error) {
      if (error.unauthenticated) this.onAuthError(error);
      tile.className = 'tile failed';
      tile.querySelector('.caption').textContent = `#${index} ${error.message}`;
      return;
    }
    await this.showInputs(jobId, index, tile);
  }

  // The pose, edges or picture that steered the image and its reference images, small
  // beneath it; an input no longer stored is left out rather than failing the tile.
  async showInputs(jobId, index, tile) {
    let inputs = [];
    try {
      inputs = await itemInputs(jobId, index);
    } catch {
      return;
    }
    if (!inputs.length || this.jobId !== jobId) return;
    const strip = el('div', { class: 'inputs' });
    tile.append(strip);
    for (const input of inputs) {
      try {
        const url = await inputImage(input.url);
        if (this.jobId !== jobId) return URL.revokeObjectURL(url);
        this.urls.push(url);
        strip.append(el('img', { src: url, class: `input ${input.kind}`, alt: `${input.name} of image ${index}`, title: input.name }));
      } catch { /* collected or unreadable: nothing to show */ }
    }
  }
}
