// Rendering of jobs, workers and a job's gallery. Text from the server is always set as
// text, never as HTML: prompts and names are user input.
import { followEvents, inputImage, itemInputs, listResults, resultImage } from './api.js';

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

function formatEta(seconds) {
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

// One row per job; `actions` holds the open and cancel callbacks.
export function renderJobs(tbody, jobs, selectedId, actions) {
  tbody.replaceChildren(...jobs.map((job) => {
    const c = job.counts || {};
    const total = c.total || 0;
    const done = c.done || 0;
    const label = `${done}/${total}` + (c.failed ? ` (${c.failed} failed)` : '');
    const rate = job.images_per_second ? (job.images_per_second * 60).toFixed(1) : '—';
    const buttons = el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'open', onclick: () => actions.open(job.id) }, 'Gallery'));
    if (!finished(job.state)) {
      buttons.append(el('button', { type: 'button', class: 'cancel', onclick: () => actions.cancel(job.id) }, 'Cancel'));
    }
    return el('tr', { class: job.id === selectedId ? 'selected' : '', 'data-job': job.id },
      el('td', {}, el('strong', {}, job.name), el('br'), el('code', {}, job.id)),
      el('td', { class: `state ${stateName(job.state)}`, title: job.waiting_reason || '' }, stateName(job.state),
        job.waiting_reason ? el('div', { class: 'waiting' }, job.waiting_reason) : ''),
      el('td', {}, bar(total ? done / total : 0, 'progress', label)),
      el('td', { class: 'num' }, rate),
      el('td', { class: 'num' }, finished(job.state) ? '—' : formatEta(job.eta_seconds)),
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
    const memory = el('td', { class: 'memory' },
      bar(of(w.used_bytes), 'used', `used ${formatBytes(w.used_bytes)}`),
      bar(of(w.peak_bytes), 'peak', `peak ${formatBytes(w.peak_bytes)}`),
      bar(of(w.budget_bytes), 'budget', `budget ${formatBytes(w.budget_bytes)} of ${formatBytes(total)}`));
    return el('tr', { class: w.connected ? '' : 'disconnected', 'data-worker': w.id },
      el('td', {}, el('code', {}, w.id), el('br'), w.connected ? `${w.running_items} running` : 'disconnected'),
      el('td', {}, w.device_name, w.compute_capability ? ` (${w.compute_capability})` : '',
        el('br'), (w.models || []).join(', ')),
      memory,
      el('td', { class: 'num' }, (w.images_per_second * 60).toFixed(1)),
      el('td', { class: 'num' }, String(w.images_done)));
  }));
}

// A job's images as tiles that fill in from the job's event stream: previews (when the
// job asked for them) while an image samples, then the final image.
export class Gallery {
  constructor(panel, onAuthError) {
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
    this.ensureTiles(job.counts ? job.counts.total : 0);
    this.showJob(job);
    // Images done before the stream opened come from the results list.
    const results = await listResults(job.id);
    if (this.jobId !== job.id) return;
    for (const r of results.results) this.done(r.index);
    const handlers = {
      queued: (ev) => this.ensureTiles(ev.queued.items),
      started: (ev) => this.mark(ev.started.indices, 'running', 'starting'),
      progress: (ev) => this.mark(ev.progress.indices, 'running', `step ${ev.progress.step}/${ev.progress.total_steps}`),
      preview: (ev) => this.preview(ev.preview),
      item_done: (ev) => {
        this.done(ev.item_done.index);
        this.grid.dataset.streamed = Number(this.grid.dataset.streamed || 0) + 1;  // arrived live
      },
      item_failed: (ev) => this.mark([ev.item_failed.index], ev.item_failed.will_retry ? 'queued' : 'failed',
        ev.item_failed.message),
      job_done: () => this.close(),
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
    const c = job.counts || {};
    const rate = job.images_per_second ? `, ${(job.images_per_second * 60).toFixed(1)} images/min` : '';
    const waiting = job.waiting_reason ? ` (${job.waiting_reason})` : '';
    this.status.textContent = `${stateName(job.state)}: ${c.done || 0} of ${c.total || 0} done${rate}${waiting}`;
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
      if (!tile || tile.classList.contains('done')) continue;
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
    const jobId = this.jobId;
    try {
      const url = await resultImage(jobId, index);
      if (this.jobId !== jobId) return URL.revokeObjectURL(url);
      this.urls.push(url);
      tile.replaceChildren(el('img', { src: url, alt: `image ${index}` }), el('span', { class: 'caption' }, `#${index}`));
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
