// The form that makes a job without writing YAML. It writes the manifest the CLI would
// submit into the manifest text box (which stays editable and is what gets submitted), so
// nothing here is a page-only feature. Images the form names (init, control, reference) are
// uploaded at submit and named in the manifest by paths that the submit call maps to them.
import { el } from './views.js';

const $ = (selector) => document.querySelector(selector);
const value = (id) => $(id).value.trim();

// A manifest value in YAML flow style: JSON strings and numbers are YAML, keys stay bare.
export function flow(v) {
  if (Array.isArray(v)) return `[${v.map(flow).join(', ')}]`;
  if (v && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${k}: ${flow(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

// The manifest as YAML: one line per top-level key, one per item.
export function toYaml(manifest) {
  const lines = [];
  for (const [key, v] of Object.entries(manifest)) {
    if (key === 'items') {
      lines.push('items:');
      for (const item of v) lines.push(`  - ${flow(item)}`);
    } else {
      lines.push(`${key}: ${flow(v)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// API enum names (SAMPLER_EULER_ANCESTRAL) as manifests write them (euler_ancestral).
export const enumName = (name, prefix) => (name ? String(name).replace(prefix, '').toLowerCase() : '');

// A job's items as a manifest: runs of items with the same settings and consecutive seeds
// become one entry; `sameSeeds` keeps the seeds, else they are drawn anew. Post-processing
// and steering images are not part of an item and are not carried over.
export function manifestFromItems(job, items, sameSeeds) {
  const entries = [];
  let last = null;
  for (const item of [...items].sort((a, b) => a.index - b.index)) {
    const p = item.params || {};
    const s = item.sampling || {};
    const settings = {
      width: s.width, height: s.height, steps: s.steps, cfg: s.cfg,
      sampler: enumName(s.sampler, 'SAMPLER_'), schedule: enumName(s.schedule, 'SCHEDULE_'),
    };
    const entry = { prompt: p.prompt || '' };
    if (p.negative !== undefined) entry.negative = p.negative;
    const loras = (s.loras || []).filter((l) => !l.sha256).map((l) => ({ name: l.name, strength: l.strength }));
    const key = JSON.stringify([entry, settings, loras]);
    const seed = Number(p.seed || 0);
    if (last && last.key === key && (!sameSeeds || seed === last.seed + last.entry.count)) {
      last.entry.count += 1;
      continue;
    }
    Object.assign(entry, { count: 1, overrides: settings, lora: loras });
    if (sameSeeds) entry.seed = seed;
    last = { key, seed, entry };
    entries.push(entry);
  }
  return toYaml({ name: job.name, model: job.model, items: entries });
}

export class MakeForm {
  constructor(onChange) {
    this.onChange = onChange;
    this.files = {};  // role (init, control, reference) -> { path, blob }
    this.loras = [];  // { name, strength }
    this.served = [];
    $('#make-form').addEventListener('input', () => this.write());
    $('#make-form').addEventListener('change', (event) => {
      const roles = { 'f-init': 'init', 'f-control-image': 'control', 'f-reference': 'reference' };
      const role = roles[event.target.id];
      if (role) {
        const file = event.target.files[0];
        this.setFile(role, file, file ? file.name : '');
      }
      this.write();
    });
    $('#f-size').addEventListener('change', () => this.write());
    $('#lora-add').addEventListener('click', () => {
      const name = $('#f-lora-add').value;
      if (!name || this.loras.some((l) => l.name === name)) return;
      this.loras.push({ name, strength: 0.75 });
      this.renderLoras();
      this.write();
    });
  }

  // Fills the pickers with what the connected workers serve.
  // A file's option says the start of its SHA-256 in its title (hover), and when workers
  // hold different files under one name, each of them.
  serve(workers) {
    const union = (key) => [...new Set(workers.flatMap((w) => (w[key] || []).map((f) => (f.name ?? f))))].sort();
    const hashes = (key) => {
      const out = new Map();
      for (const w of workers) {
        for (const f of w[key] || []) {
          if (!f.sha256) continue;
          if (!out.has(f.name)) out.set(f.name, new Set());
          out.get(f.name).add(f.sha256.slice(0, 12));
        }
      }
      return out;
    };
    const signature = JSON.stringify(workers.map((w) => [w.models, w.model_files, w.loras, w.controlnets,
      w.ip_adapters]));
    if (signature === this.served) return;
    this.served = signature;
    const fill = (select, names, none, known = new Map()) => {
      const keep = select.value;
      const title = (n) => {
        const short = [...(known.get(n) || [])];
        if (!short.length) return '';
        return `sha256 ${short.join(' / ')}${short.length > 1 ? ' (the workers hold different files)' : ''}`;
      };
      select.replaceChildren(...(none ? [el('option', { value: '' }, none)] : []),
        ...names.map((n) => el('option', { value: n, title: title(n) }, n)));
      if (names.includes(keep)) select.value = keep;
    };
    fill($('#f-model'), union('models'), workers.length ? null : 'no worker connected', hashes('model_files'));
    fill($('#f-lora-add'), union('loras'), union('loras').length ? null : 'no LoRAs on the workers', hashes('loras'));
    fill($('#f-control-model'), union('controlnets'), 'none', hashes('controlnets'));
    fill($('#f-adapter'), union('ip_adapters'), 'none', hashes('ip_adapters'));
    // A manifest typed, pasted or loaded stays; one the form wrote follows the new pickers.
    const text = $('#manifest-text').value;
    if (!text.trim() || text === this.written) this.write();
  }

  setFile(role, blob, name) {
    if (!blob) {
      delete this.files[role];
    } else {
      const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') || 'image.png';
      this.files[role] = { path: `uploads/${role}-${safe}`, blob };
    }
    const names = Object.entries(this.files).map(([r, f]) => `${r}: ${f.path.slice(8)}`);
    $('#steer-status').textContent = names.length ? `images: ${names.join(', ')}` : '';
  }

  renderLoras() {
    $('#loras').replaceChildren(...this.loras.map((lora, i) => {
      const id = `f-lora-${i}`;
      const strength = el('input', { id, type: 'number', min: '-5', max: '5', step: '0.05', value: String(lora.strength) });
      strength.addEventListener('input', () => { lora.strength = Number(strength.value); this.write(); });
      return el('div', { class: 'row lora' }, el('label', { for: id }, `${lora.name} strength`), strength,
        el('button', { type: 'button', 'aria-label': `remove ${lora.name}`,
          onclick: () => { this.loras.splice(i, 1); this.renderLoras(); this.write(); } }, '✕'));
    }));
  }

  manifest() {
    const [width, height] = value('#f-size').split('x').map(Number);
    const defaults = {
      width, height, steps: Number(value('#f-steps') || 20), cfg: Number(value('#f-cfg') || 5),
      sampler: value('#f-sampler'), schedule: value('#f-schedule'),
    };
    if (this.loras.length) defaults.lora = this.loras.map((l) => ({ name: l.name, strength: l.strength }));
    const item = { prompt: value('#f-prompt') || 'a pixel art sprite', count: Number(value('#f-count') || 1) };
    if (value('#f-negative')) item.negative = value('#f-negative');
    if (value('#f-seed') !== '') item.seed = Number(value('#f-seed'));
    if (this.files.init) {
      item.init_image = this.files.init.path;
      item.strength = Number(value('#f-strength') || 0.6);
    }
    const controlModel = value('#f-control-model');
    if (controlModel) {
      const kind = value('#f-control-kind');
      const control = { model: controlModel };
      if (kind === 'pose') control.pose = value('#f-control-pose') || 'walk_s_0';
      else if (this.files.control) control[kind] = kind === 'canny' ? { image: this.files.control.path } : this.files.control.path;
      if (kind === 'pose' || this.files.control) item.controls = [control];
    }
    if (value('#f-adapter') && this.files.reference) {
      item.reference = { images: [this.files.reference.path], adapter: value('#f-adapter'), scale: 0.6 };
    }
    const m = { name: value('#f-name') || 'sprites', model: value('#f-model'), defaults, items: [item] };
    const post = {};
    if (value('#f-background')) post.background = value('#f-background');
    if (value('#f-pixelate')) post.pixelate = value('#f-pixelate');
    if (value('#f-palette')) post.palette = value('#f-palette');
    if (Object.keys(post).length) m.postprocess = post;
    return toYaml(m);
  }

  write() {
    this.written = this.manifest();
    $('#manifest-text').value = this.written;
    this.onChange();
  }

  // The uploads a manifest text names: role paths it mentions.
  filesIn(text) {
    return Object.values(this.files).filter((f) => text.includes(f.path));
  }

  // Fills the form from a finished image's sidecar parameters (more like this, re-use).
  fill(params, workerModel) {
    const set = (id, v) => { if (v !== undefined && v !== null) $(id).value = v; };
    set('#f-prompt', params.prompt);
    set('#f-negative', params.negative || '');
    set('#f-steps', params.steps);
    set('#f-cfg', params.cfg);
    set('#f-sampler', params.sampler);
    set('#f-schedule', params.schedule);
    const size = `${params.width}x${params.height}`;
    if (![...$('#f-size').options].some((o) => o.value === size)) {
      $('#f-size').append(el('option', { value: size }, size.replace('x', ' × ')));
    }
    $('#f-size').value = size;
    if (workerModel && [...$('#f-model').options].some((o) => o.value === workerModel)) $('#f-model').value = workerModel;
    this.loras = (params.loras || []).filter((l) => !l.sha256).map((l) => ({ name: l.name, strength: l.strength }));
    this.renderLoras();
  }
}
