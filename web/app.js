// The web client: plain modules, no build. It holds no secret: the session is an HttpOnly cookie
// the script never sees, and every state change sends the session's CSRF token.

const API = document.querySelector('meta[name="api-base"]').content.replace(/\/$/, '');
// Where POST /tts/stream is served: `api` for the API's own base (the local API serves both), a
// URL (the stream's own domain in AWS), or empty for none. Without it, or without Media Source
// Extensions for MP3, speech comes whole from POST /tts.
const STREAM_BASE = document.querySelector('meta[name="stream-base"]')?.content ?? '';
const STREAM =
  STREAM_BASE && window.MediaSource?.isTypeSupported('audio/mpeg')
    ? (STREAM_BASE === 'api' ? API : STREAM_BASE).replace(/\/$/, '')
    : null;
const $ = (id) => document.getElementById(id);

let me = null; // GET /auth/session
let cursor = null; // the library's next page

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
    this.upgradeUrl = body?.error?.upgradeUrl;
    this.reauthenticateUrl = body?.error?.reauthenticateUrl;
  }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  // Every change carries the session's CSRF token, and so does every admin-area read (the API
  // records those in the audit log, so a link followed from another site must record nothing).
  if (me && (method !== 'GET' || path.startsWith('/admin/'))) headers['x-csrf-token'] = me.csrfToken;
  const response = await fetch(API + path, {
    method,
    headers,
    credentials: 'include',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(message) {
  $('status').textContent = message;
}

function problem(error) {
  const box = $('problem');
  if (!error) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.textContent = error.message;
  if (error.upgradeUrl || error.code === 'LIMIT_REACHED' || error.code === 'FEATURE_LOCKED') {
    box.append(' ', link('/account', 'See the plans'));
  }
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, onClick, label) {
  const b = element('button', text);
  b.type = 'button';
  if (label) b.setAttribute('aria-label', label);
  b.addEventListener('click', () => run(onClick));
  return b;
}

// Runs an action, showing what went wrong instead of failing silently.
async function run(action) {
  problem(null);
  try {
    await action();
  } catch (error) {
    if (error.status === 401) return signedOut();
    problem(error);
  }
}

// --- session -------------------------------------------------------------------------------

async function load() {
  keepInvitation();
  const params = new URLSearchParams(location.search);
  if (params.get('authError')) {
    problem(new Error(`Sign-in did not complete (${params.get('authError').replaceAll('_', ' ')}).`));
  }
  try {
    me = await api('GET', '/auth/session');
  } catch (error) {
    if (error.status === 401) return signedOut();
    return problem(error);
  }
  signedIn();
}

function signedOut() {
  me = null;
  for (const id of ['nav', 'who', 'home']) $(id).hidden = true;
  for (const view of document.querySelectorAll('[data-view]')) view.hidden = true;
  $('signed-out').hidden = false;
}

function signedIn() {
  $('signed-out').hidden = true;
  for (const id of ['nav', 'who', 'home']) $(id).hidden = false;
  $('who-email').textContent = me.email;
  $('nav-admin').hidden = me.adminPermissions.length === 0;
  showPlan();
  connectLive();
  if (sessionStorage.getItem('invitation')) run(acceptInvitation).then(route);
  else route();
}

// --- live updates ------------------------------------------------------------------------------
// One WebSocket per tab (docs/delivery.md, "Live updates"): the server pushes a new plan, usage after each
// generation and billing alerts. Without it (no WebSocket API, a proxy that refuses it) the page
// reads the session again each second where it waits for a change (untilTier).

let live = null;
const planWaiters = new Set();

async function connectLive() {
  if (live || !me || !('WebSocket' in window)) return;
  let ticket;
  try {
    ticket = await api('POST', '/push/tickets', {});
  } catch {
    return; // not offered here: the page polls where it must
  }
  const socket = new WebSocket(`${ticket.url}?ticket=${encodeURIComponent(ticket.ticket)}`);
  socket.addEventListener('open', async () => {
    live = socket;
    document.body.dataset.live = 'on';
    // What changed before the socket was open was not pushed to it: read the state once.
    await refreshSession().catch(() => {});
    for (const wake of planWaiters) wake();
  });
  socket.addEventListener('message', (message) => onLiveEvent(JSON.parse(message.data)));
  socket.addEventListener('close', () => {
    const wasOpen = live === socket;
    if (wasOpen) live = null;
    delete document.body.dataset.live;
    // Reconnect after a drop (API Gateway ends every connection after two hours), not after a
    // refusal or a sign-out.
    if (wasOpen && me) setTimeout(connectLive, 2000);
  });
}

async function onLiveEvent(event) {
  if (event.type === 'plan.changed') {
    await refreshSession();
    for (const wake of planWaiters) wake();
    if (showing('/account')) await run(showAccount);
  } else if (event.type === 'usage.changed') {
    me.usage = event.usage;
    showPlan();
  } else if (event.type === 'billing.alert') {
    if (showing('/account')) await run(showAccount);
  } else if (event.type === 'voice.ready' || event.type === 'voice.failed') {
    // A clone made (or not) in another tab: the lists that show voices read them again.
    if (showing('/voices')) await run(showVoices);
    if (showing('/')) await run(showSpeak);
  } else if (event.type === 'workspace.seats') {
    if (showing('/teams')) await run(showWorkspaces);
  } else if (event.type === 'workspace.changed') {
    if (showing('/teams')) await run(showWorkspaces);
    else if ((event.change === 'removed' && event.userId === me.userId) || event.change === 'deleted') {
      say('You are no longer a member of a workspace.');
    }
  }
}

const showing = (view) => !document.querySelector(`[data-view="${view}"]`).hidden;

function showPlan() {
  $('who-tier').textContent = me.tier;
  const usage = me.usage;
  const limit = usage.limit === null ? 'unlimited' : `${usage.used} of ${usage.limit}`;
  $('usage').textContent =
    `${me.tier} plan: ${limit} recordings used this month` +
    (usage.limit === null ? ` (${usage.used} so far)` : '') +
    `, resets ${new Date(usage.resetsAt).toLocaleDateString()}.`;
  const alert = usage.alert;
  $('usage-alert').hidden = !alert;
  if (alert) {
    const of = alert.of === 'overageCap' ? 'your overage cap' : 'your monthly recordings';
    $('usage-alert').textContent =
      `You have used ${alert.percent}% of ${of}.` +
      (alert.percent === 100 && alert.of === 'allowance' && !me.features.overageUnitCents ? ' Upgrade for more.' : '');
  }
}

const dollars = (cents) => `$${(cents / 100).toFixed(2)}`;

async function refreshSession() {
  me = await api('GET', '/auth/session');
  showPlan();
}

// --- views ---------------------------------------------------------------------------------

const views = {
  '/': showSpeak,
  '/library': showLibrary,
  '/voices': showVoices,
  '/account': showAccount,
  '/teams': showWorkspaces,
  '/settings': showSettings,
  '/admin': showAdmin,
  '/pricing': showAccount,
  '/billing/success': showAccount,
};

function route() {
  const path = views[location.pathname] ? location.pathname : '/';
  const viewPath = { '/pricing': '/account', '/billing/success': '/account' }[path] ?? path;
  for (const view of document.querySelectorAll('[data-view]')) view.hidden = view.dataset.view !== viewPath;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === viewPath) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  run(views[path]);
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a');
  if (!a || a.origin !== location.origin || !views[a.pathname] || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  history.pushState(null, '', a.pathname);
  if (me) route();
});
window.addEventListener('popstate', () => me && route());

// --- speak ---------------------------------------------------------------------------------

async function showSpeak() {
  const [{ presets, customPresets }, { workspaces }, own] = await Promise.all([
    api('GET', '/presets'),
    api('GET', '/workspaces'),
    api('GET', '/voices'),
  ]);
  // Speaking in a workspace uses its shared voices (and, with TEAM, its pooled generations).
  const speakIn = $('speak-in');
  const chosenPlace = speakIn.value || workspaceId || '';
  speakIn.replaceChildren(
    new Option('Myself', ''),
    ...workspaces.map((w) => new Option(`A member of ${w.workspaceName}`, w.workspaceId)),
  );
  speakIn.value = workspaces.some((w) => w.workspaceId === chosenPlace) ? chosenPlace : '';
  await showSpeakVoices(own);

  ownPresets = customPresets;
  const preset = $('preset');
  const chosenPreset = preset.value || me.preferences.defaultPresetId;
  preset.replaceChildren(...presetOptions(presets, customPresets));
  if (chosenPreset && [...preset.options].some((o) => o.value === chosenPreset && !o.disabled)) preset.value = chosenPreset;
  showOwnPresets();

  const features = me.features;
  $('text').maxLength = features.maxTextLength;
  countText();
  const locked = !features.advancedSliders;
  $('sliders-locked').hidden = !locked;
  for (const input of $('sliders').querySelectorAll('input')) input.disabled = locked;
}

// The voices to speak with: the premade ones, the caller's own clones (`own`, GET /voices'
// answer, read here unless given) and, speaking in a workspace, its shared ones. Generate
// waits for the list: a click before it arrives would otherwise be dropped by the browser,
// the voice being a required field with nothing to choose yet.
async function showSpeakVoices(own) {
  const place = $('speak-in').value;
  $('generate').disabled = true;
  try {
    const [{ voices }, shared] = await Promise.all([
      own ?? api('GET', '/voices'),
      place ? api('GET', `/workspaces/${place}/voices`) : { voices: [] },
    ]);
    const voice = $('voice');
    const chosenVoice = voice.value || me.preferences.defaultVoiceId;
    voice.replaceChildren(
      ...shared.voices.map((v) => new Option(`${v.name} (shared)`, v.voiceId)),
      ...voices.map((v) => new Option(v.category === 'cloned' ? `${v.name} (your voice)` : v.name, v.voiceId)),
    );
    if (chosenVoice && [...voice.options].some((o) => o.value === chosenVoice)) voice.value = chosenVoice;
  } finally {
    $('generate').disabled = false;
  }
}
$('speak-in').addEventListener('change', () => run(() => showSpeakVoices()));

// The catalogue (a locked preset shown, not chosen) and the caller's own presets.
function presetOptions(presets, customPresets) {
  return [
    ...presets.map((p) => {
      const option = new Option(p.locked ? `${p.name} (upgrade to use)` : p.name, p.id);
      option.disabled = p.locked;
      return option;
    }),
    ...customPresets.map((p) => new Option(`${p.name} (yours)`, p.id)),
  ];
}

let ownPresets = []; // GET /presets' customPresets

// PREMIUM saves the sliders' values as presets of its own, renames and deletes them; a lower
// tier is told why it cannot.
function showOwnPresets() {
  const allowed = me.features.customPresets;
  $('presets-locked').hidden = allowed;
  $('preset-form').hidden = !allowed;
  $('custom-presets').replaceChildren(...(allowed ? ownPresets.map(ownPresetItem) : []));
  $('no-custom-presets').hidden = !allowed || ownPresets.length > 0;
}

function ownPresetItem(preset) {
  const item = element('li');
  item.dataset.id = preset.id;
  const name = element('input');
  name.value = preset.name;
  name.maxLength = 40;
  name.setAttribute('aria-label', `Name of the preset ${preset.name}`);
  const values = `stability ${preset.stability.toFixed(2)}, similarity ${preset.similarityBoost.toFixed(2)}, ` +
    `style ${preset.style.toFixed(2)}, speed ${preset.speed.toFixed(2)}`;
  item.append(
    name,
    element('span', values, 'hint title'),
    button('Rename', async () => {
      const renamed = await api('PATCH', `/presets/${preset.id}`, { name: name.value });
      say(`The preset is now called ${renamed.name}.`);
      await showSpeak();
    }, `Rename the preset ${preset.name}`),
    button('Delete', async () => {
      if (!confirm(`Delete the preset "${preset.name}"?`)) return;
      await api('DELETE', `/presets/${preset.id}`);
      say(`The preset ${preset.name} was deleted.`);
      await showSpeak();
    }, `Delete the preset ${preset.name}`),
  );
  return item;
}

$('preset-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const saved = await api('POST', '/presets', {
      name: $('preset-name').value,
      stability: Number($('stability').value),
      similarityBoost: Number($('similarity').value),
      style: Number($('style').value),
      speed: Number($('speed').value),
    });
    $('preset-name').value = '';
    await showSpeak();
    $('preset').value = saved.id;
    say(`The preset ${saved.name} was saved.`);
  });
});

// Choosing one of one's own presets shows its values on the sliders.
$('preset').addEventListener('change', () => {
  const own = ownPresets.find((p) => p.id === $('preset').value);
  if (!own) return;
  const values = { stability: own.stability, similarity: own.similarityBoost, style: own.style, speed: own.speed };
  for (const [id, value] of Object.entries(values)) {
    $(id).value = value;
    $(id).dispatchEvent(new Event('input'));
  }
});

function countText() {
  $('text-count').textContent = `(${$('text').value.length} of ${me.features.maxTextLength} characters)`;
}
$('text').addEventListener('input', countText);

$('speak-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const request = { voiceId: $('voice').value, text: $('text').value };
    if ($('speak-in').value) request.workspaceId = $('speak-in').value;
    if ($('preset').value) request.presetId = $('preset').value;
    if (me.features.advancedSliders) {
      request.voiceSettings = {
        stability: Number($('stability').value),
        similarityBoost: Number($('similarity').value),
        style: Number($('style').value),
      };
      request.speed = Number($('speed').value);
    }
    $('generate').disabled = true;
    say('Generating…');
    try {
      if (STREAM !== null) {
        await speakStreamed(request);
        me.usage = await api('GET', '/usage');
      } else {
        const made = await api('POST', '/tts', request);
        $('player').src = made.audioUrl;
        $('result').hidden = false;
        me.usage = made.usage;
        if (made.pool) {
          showPlan();
          say(`Your speech is ready. The workspace's pool: ${made.pool.used} of ${made.pool.limit} this month.`);
          return;
        }
      }
      showPlan();
      say('Your speech is ready.');
    } finally {
      $('generate').disabled = false;
    }
  });
});

let streamedAudio = null; // the object URL the player is playing, released for the next one

// Plays speech as it arrives: POST /tts/stream answers MP3 in chunks, which go to the player
// through Media Source Extensions. The API keeps the recording once the stream ends whole; one
// cut midway keeps nothing and gives the month's unit back.
async function speakStreamed(request) {
  const response = await fetch(`${STREAM}/tts/stream`, {
    method: 'POST',
    headers: { accept: 'audio/mpeg', 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
    credentials: 'include',
    body: JSON.stringify(request),
  });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));

  const source = new MediaSource();
  const player = $('player');
  if (streamedAudio) URL.revokeObjectURL(streamedAudio);
  streamedAudio = URL.createObjectURL(source);
  player.src = streamedAudio;
  $('result').hidden = false;
  await new Promise((resolve) => source.addEventListener('sourceopen', resolve, { once: true }));
  const buffer = source.addSourceBuffer('audio/mpeg');
  say('Playing as it arrives…');
  player.play().catch(() => {}); // without a recent click the browser waits for the play button
  const reader = response.body.getReader();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      source.endOfStream('network');
      throw new Error('The speech was cut off before the end: nothing was kept and it was not counted.');
    }
    if (chunk.done) break;
    buffer.appendBuffer(chunk.value);
    await new Promise((resolve) => buffer.addEventListener('updateend', resolve, { once: true }));
  }
  source.endOfStream();
}

// --- library -------------------------------------------------------------------------------

async function showLibrary() {
  const uploads = me.allowances.uploads;
  $('upload-allowance').textContent = `${uploads.used} of ${uploads.limit} uploads used this month.`;
  cursor = null;
  $('recordings').replaceChildren();
  await moreRecordings();
}

async function moreRecordings() {
  const query = new URLSearchParams({ limit: '5' });
  if ($('favourites-only').checked) query.set('favouritesOnly', 'true');
  if (cursor) query.set('cursor', cursor);
  const page = await api('GET', `/recordings?${query}`);
  for (const recording of page.items) $('recordings').append(recordingItem(recording));
  cursor = page.nextCursor;
  $('more-recordings').hidden = !cursor;
  $('no-recordings').hidden = $('recordings').children.length > 0;
}

function recordingItem(recording) {
  const item = element('li');
  item.dataset.id = recording.recordingId;
  const title = recording.text ?? recording.voiceName ?? 'Uploaded recording';
  item.append(element('span', title.length > 60 ? `${title.slice(0, 60)}…` : title, 'title'));
  item.append(element('span', new Date(recording.createdAt).toLocaleString(), 'hint'));
  item.append(
    button('Play', async () => {
      const full = await api('GET', `/recordings/${recording.recordingId}`);
      const player = $('library-player');
      player.hidden = false;
      player.src = full.audioUrl;
      await player.play().catch(() => {});
    }, `Play "${title}"`),
  );
  const favourite = button(recording.isFavorite ? 'Unfavourite' : 'Favourite', async () => {
    const updated = await api('PATCH', `/recordings/${recording.recordingId}`, { isFavorite: !recording.isFavorite });
    item.replaceWith(recordingItem(updated));
    say(updated.isFavorite ? 'Added to favourites.' : 'Removed from favourites.');
  }, `${recording.isFavorite ? 'Unfavourite' : 'Favourite'} "${title}"`);
  favourite.setAttribute('aria-pressed', String(recording.isFavorite));
  item.append(favourite);
  item.append(
    button('Delete', async () => {
      if (!confirm('Delete this recording?')) return;
      await api('DELETE', `/recordings/${recording.recordingId}`);
      item.remove();
      $('no-recordings').hidden = $('recordings').children.length > 0;
      say('Recording deleted.');
    }, `Delete "${title}"`),
  );
  return item;
}

$('more-recordings').addEventListener('click', () => run(moreRecordings));

// The types the API takes, by file extension (browsers name some of them differently, such as
// audio/x-wav or audio/x-m4a).
const AUDIO_TYPES = {
  mp3: 'audio/mpeg', wav: 'audio/wav', ogg: 'audio/ogg', oga: 'audio/ogg', opus: 'audio/ogg',
  webm: 'audio/webm', m4a: 'audio/mp4', mp4: 'audio/mp4', aac: 'audio/aac',
};

// An upload is a recording made now with a presigned PUT for exactly its type and size: the file
// goes straight to storage, and the library lists it at once.
$('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const file = $('upload-file').files[0];
    if (!file) throw new Error('Choose an audio file first.');
    const contentType = AUDIO_TYPES[file.name.split('.').pop().toLowerCase()] ?? file.type;
    const body = { contentType, sizeBytes: file.size };
    if ($('upload-text').value.trim()) body.text = $('upload-text').value.trim();
    $('upload').disabled = true;
    try {
      say(`Uploading ${file.name}…`);
      const upload = await api('POST', '/recordings', body);
      const put = await fetch(upload.uploadUrl, { method: upload.method, headers: upload.headers, body: file });
      if (!put.ok) throw new Error(`The upload failed (${put.status}); nothing was kept once it expires.`);
      $('upload-form').reset();
      await refreshSession();
      say(`${file.name} was added to your library.`);
      await showLibrary();
    } finally {
      $('upload').disabled = false;
    }
  });
});
$('favourites-only').addEventListener('change', () => run(showLibrary));

// --- voices --------------------------------------------------------------------------------

let consentVersion = null;
let recordedSamples = [];

async function showVoices() {
  const [{ voices }, consent] = await Promise.all([api('GET', '/voices'), api('GET', '/voices/consent')]);
  consentVersion = consent.version;
  $('consent-text').textContent = consent.text;
  const own = voices.filter((v) => v.category === 'cloned');
  $('own-voices').replaceChildren(
    ...own.map((v) => {
      const item = element('li');
      item.append(element('span', v.name, 'title'));
      item.append(
        button('Delete', async () => {
          if (!confirm(`Delete the voice "${v.name}"?`)) return;
          await api('DELETE', `/voices/${v.voiceId}`);
          say('Voice deleted.');
          await showVoices();
        }, `Delete the voice "${v.name}"`),
      );
      return item;
    }),
  );
  $('no-voices').hidden = own.length > 0;
}

// Uploads one sample straight to storage with the presigned PUT, exactly as signed.
async function uploadSample(blob) {
  const upload = await api('POST', '/voices/samples', { contentType: blob.type || 'audio/mpeg', sizeBytes: blob.size });
  const put = await fetch(upload.uploadUrl, { method: upload.method, headers: upload.headers, body: blob });
  if (!put.ok) throw new Error(`The sample upload failed (${put.status}).`);
  return upload.sampleId;
}

$('clone-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const samples = [...$('samples').files, ...recordedSamples];
    if (samples.length === 0) throw new Error('Add at least one sample: choose a file or record one.');
    $('clone').disabled = true;
    try {
      say(`Uploading ${samples.length} sample(s)…`);
      const sampleIds = [];
      for (const sample of samples) sampleIds.push(await uploadSample(sample));
      say('Cloning…');
      const voice = await api('POST', '/voices', {
        name: $('voice-name').value,
        sampleIds,
        consent: { accepted: $('consent').checked, statement: consentVersion },
      });
      recordedSamples = [];
      $('recorded').textContent = '';
      $('clone-form').reset();
      say(`Your voice "${voice.name}" is ready: pick it under Speak.`);
      await showVoices();
    } finally {
      $('clone').disabled = false;
    }
  });
});

// One button records and stops: a sample from the microphone, kept until the clone is made.
let recorder = null;
$('record').addEventListener('click', () =>
  run(async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('This browser cannot record audio.');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = (recorder.mimeType || 'audio/webm').split(';')[0];
      recordedSamples.push(new Blob(chunks, { type }));
      recorder = null;
      $('recorded').textContent = `${recordedSamples.length} recorded sample(s)`;
      $('record').textContent = 'Record a sample';
      say('Sample recorded.');
    };
    recorder.start();
    $('record').textContent = 'Stop';
    say('Recording… press Stop when done.');
  }),
);

// --- plan and billing ----------------------------------------------------------------------

async function showAccount() {
  if (location.pathname === '/billing/success') await awaitNewPlan();
  const [{ plans }, { invoices }] = await Promise.all([api('GET', '/billing/plans'), api('GET', '/billing/invoices')]);
  $('billing-note').textContent = me.subscription
    ? `You are on ${me.tier}${me.subscriptionStatus ? ` (${me.subscriptionStatus})` : ''}.`
    : `You are on ${me.tier}.`;
  $('plans').replaceChildren(
    ...plans
      .filter((p) => p.interval !== 'year')
      .map((p) => {
        const item = element('li', undefined, p.tier === me.tier ? 'plan current' : 'plan');
        item.append(element('h3', p.name));
        item.append(element('p', p.amount === 0 ? 'Free' : `${(p.amount / 100).toFixed(2)} ${p.currency.toUpperCase()} a month`));
        const f = p.features;
        item.append(
          element(
            'p',
            `${f.monthlyRecordings ?? 'Unlimited'} recordings a month, ${f.maxTextLength} characters each, ` +
              `${f.presets.length} presets${f.advancedSliders ? ', custom voice settings' : ''}, ${f.cloneSlots} cloned voice(s).` +
              (f.overageUnitCents ? ` Past the limit, if you allow it: ${dollars(f.overageUnitCents)} a generation.` : ''),
          ),
        );
        if (p.tier === me.tier) item.append(element('p', 'Your plan', 'badge'));
        else if (p.priceId && !me.subscription) item.append(button(`Upgrade to ${p.name}`, () => upgrade(p.tier)));
        else if (p.priceId) item.append(button(`Switch to ${p.name}`, () => changePlan(p.tier)));
        return item;
      }),
  );
  $('invoices').replaceChildren(
    ...invoices.map((invoice) =>
      element(
        'li',
        `${new Date((invoice.created ?? 0) * 1000).toLocaleDateString()}: ` +
          `${((invoice.amountPaid ?? invoice.amountDue ?? 0) / 100).toFixed(2)} ${(invoice.currency ?? '').toUpperCase()} ` +
          `(${invoice.status ?? 'open'})` +
          (invoice.lines ?? [])
            .filter((line) => line.usage && line.quantity)
            .map((line) => `, of which ${line.quantity} past the plan: ${dollars(line.amount)}`)
            .join(''),
      ),
    ),
  );
  $('no-invoices').hidden = invoices.length > 0;
  await showOverage();
}

// A plan with an overage price: the subscriber sets how far past the limit they may go.
async function showOverage() {
  const offered = me.features.overageUnitCents && me.subscription;
  $('overage').hidden = !offered;
  if (!offered) return;
  const settings = await api('GET', '/billing/settings');
  $('overage-cap').value = (settings.overageCapCents / 100).toFixed(2);
  $('overage-cap').max = settings.maxOverageCapCents / 100;
  $('overage-note').textContent =
    `Each generation past your ${me.features.monthlyRecordings} a month costs ${dollars(settings.overageUnitCents)}, ` +
    `billed with your next invoice, up to your cap` +
    (settings.overageCapCents > 0 ? ` (${settings.overageUnits} generations).` : '. With no cap, generations stop at the limit.');
}

$('overage').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const overageCapCents = Math.round(Number($('overage-cap').value) * 100);
    await api('PATCH', '/billing/settings', { overageCapCents });
    await showOverage();
    say(overageCapCents > 0 ? `Overage allowed up to ${dollars(overageCapCents)} a month.` : 'Overage is off.');
  });
});

async function upgrade(tier) {
  const { sessionUrl } = await api('POST', '/billing/checkout', { tier, interval: 'month' });
  say('Opening checkout…');
  location.assign(sessionUrl);
}

// A subscriber changes plan in place: an upgrade applies now, a downgrade at the renewal.
async function changePlan(tier) {
  const result = await api('POST', '/billing/subscription', { tier, interval: 'month' });
  if (result.change === 'upgraded') {
    say(`Changing to ${tier}…`);
    await untilTier((current) => current === tier);
    say(me.tier === tier ? `You are now on ${me.tier}.` : 'The change is being processed.');
  } else if (result.change === 'scheduled') {
    say(`Your plan changes to ${tier} on ${new Date(result.effectiveAt * 1000).toLocaleDateString()}.`);
  } else {
    say(`You stay on ${me.tier}.`);
  }
  await showAccount();
}

// A new plan arrives with Stripe's webhook, a moment after the payment or the change: pushed
// over the live connection when there is one, else the session is read again each second; until
// `arrived(tier)`, for up to 30 s.
async function untilTier(arrived) {
  const until = Date.now() + 30_000;
  while (!arrived(me.tier) && Date.now() < until) {
    if (live) {
      await new Promise((wake) => {
        planWaiters.add(wake);
        setTimeout(wake, until - Date.now());
      });
      planWaiters.clear();
    } else {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await refreshSession();
    }
  }
}

// Back from Checkout.
async function awaitNewPlan() {
  const before = me.tier;
  say('Payment received. Activating your plan…');
  await untilTier((current) => current !== before);
  history.replaceState(null, '', '/account');
  say(me.tier === before ? 'Your payment is being processed; the plan will change shortly.' : `You are now on ${me.tier}.`);
}

$('portal').addEventListener('click', () =>
  run(async () => {
    const { portalUrl } = await api('POST', '/billing/portal', {});
    location.assign(portalUrl);
  }),
);

// --- account: keys, usage history, export, erasure ------------------------------------------

async function showSettings() {
  const [{ months }] = await Promise.all([api('GET', '/usage/history?months=12'), showKeys(), showProfile()]);
  drawHistory(months);
}

async function showProfile() {
  const [profile, { voices }, { presets, customPresets }] = await Promise.all([
    api('GET', '/user/profile'),
    api('GET', '/voices'),
    api('GET', '/presets'),
  ]);
  const preferences = profile.preferences;
  $('profile-name').value = profile.name ?? '';
  $('default-voice').replaceChildren(new Option('None', ''), ...voices.map((v) => new Option(v.name, v.voiceId)));
  $('default-voice').value = preferences.defaultVoiceId ?? '';
  $('default-preset').replaceChildren(new Option('None', ''), ...presetOptions(presets, customPresets));
  $('default-preset').value = preferences.defaultPresetId ?? '';
  $('output-format').value = preferences.outputFormat ?? '';
  $('output-format').querySelector('[value=mp3_44100_192]').disabled = me.tier !== 'PREMIUM';
}

$('profile-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const chosen = (id) => $(id).value || null;
    const updated = await api('PATCH', '/user/profile', {
      name: $('profile-name').value.trim() || null,
      preferences: {
        defaultVoiceId: chosen('default-voice'),
        defaultPresetId: chosen('default-preset'),
        outputFormat: chosen('output-format'),
      },
    });
    me.preferences = updated.preferences;
    say('Your profile was saved.');
  });
});

async function showKeys() {
  const allowed = me.features.apiKeys > 0;
  $('keys-locked').hidden = allowed;
  $('key-form').hidden = !allowed;
  if (!allowed) {
    $('keys').replaceChildren();
    $('no-keys').hidden = true;
    return;
  }
  const { keys } = await api('GET', '/api-keys');
  $('keys').replaceChildren(...keys.map(keyItem));
  $('no-keys').hidden = keys.length > 0;
}

function keyItem(key) {
  const item = element('li');
  const budget = key.monthlyCharacterLimit
    ? `${key.charactersThisMonth} of ${key.monthlyCharacterLimit} characters this month`
    : `${key.charactersThisMonth} characters this month, no budget`;
  item.append(element('span', `${key.name} (${key.prefix}…): ${key.callsThisMonth} calls, ${budget}`, 'title'));
  item.append(
    button(
      'Revoke',
      async () => {
        await api('DELETE', `/api-keys/${key.keyId}`);
        say(`The key ${key.name} was revoked.`);
        await showKeys();
      },
      `Revoke the key ${key.name}`,
    ),
  );
  return item;
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const body = { name: $('key-name').value };
    if ($('key-budget').value) body.monthlyCharacterLimit = Number($('key-budget').value);
    const made = await api('POST', '/api-keys', body);
    $('key-name').value = '';
    $('key-budget').value = '';
    $('new-key-value').textContent = made.key;
    $('new-key').hidden = false;
    say(`The key ${made.name} was created.`);
    await showKeys();
  });
});

$('copy-key').addEventListener('click', () =>
  run(async () => {
    await navigator.clipboard.writeText($('new-key-value').textContent);
    say('The key was copied.');
  }),
);

// Recordings and characters per month as pairs of bars (inline SVG, oldest on the left), each
// series scaled to its own largest month, with a legend; each bar has its figures as a title, and
// the whole is summarised for screen readers.
const SERIES = [
  { key: 'recordings', label: 'Recordings', className: 'bar' },
  { key: 'characters', label: 'Characters', className: 'bar characters' },
];

function drawHistory(months) {
  const chart = $('history-chart');
  $('no-history').hidden = months.length > 0;
  if (months.length === 0) return chart.replaceChildren();
  const ns = 'http://www.w3.org/2000/svg';
  const shown = [...months].reverse();
  const most = Object.fromEntries(SERIES.map((s) => [s.key, Math.max(1, ...shown.map((m) => m[s.key]))]));
  const [barWidth, gap, height, top] = [20, 16, 120, 34];
  const svgElement = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const svg = svgElement('svg', {
    viewBox: `0 0 ${Math.max(220, shown.length * (2 * barWidth + gap))} ${height + top + 22}`,
    role: 'img',
    'aria-label':
      'Recordings by month: ' + shown.map((m) => `${m.period}: ${m.recordings} recordings, ${m.characters} characters`).join('; '),
  });
  SERIES.forEach((series, i) => {
    svg.append(
      svgElement('rect', { x: i * 110, y: 4, width: 10, height: 10, class: series.className }),
      svgElement('text', { x: i * 110 + 14, y: 13 }, series.label),
    );
  });
  shown.forEach((month, i) => {
    const x = i * (2 * barWidth + gap);
    const overage = month.overage?.units ? `, ${month.overage.units} past the plan (${dollars(month.overage.cents)})` : '';
    SERIES.forEach((series, j) => {
      const value = month[series.key];
      const barHeight = Math.round((value / most[series.key]) * height);
      const bar = svgElement('rect', {
        x: x + j * barWidth, y: top + height - barHeight, width: barWidth - 2, height: barHeight, class: series.className,
      });
      bar.dataset.period = month.period;
      bar.dataset.series = series.key;
      bar.append(svgElement('title', {}, `${month.period}: ${value} ${series.key}${j === 0 ? overage : ''}`));
      svg.append(bar);
    });
    svg.append(
      svgElement('text', { x: x + barWidth / 2, y: top + height - Math.round((month.recordings / most.recordings) * height) - 3,
        'text-anchor': 'middle' }, month.recordings),
      svgElement('text', { x: x + barWidth, y: top + height + 16, 'text-anchor': 'middle' }, month.period.slice(2)),
    );
  });
  chart.replaceChildren(svg);
}

$('export').addEventListener('click', () =>
  run(async () => {
    say('Preparing your data…');
    const exported = await api('GET', '/user/export');
    if (exported.exportUrl) {
      location.assign(exported.exportUrl);
    } else {
      const file = URL.createObjectURL(new Blob([JSON.stringify(exported, null, 2)], { type: 'application/json' }));
      const a = link(file, 'download');
      a.download = 'voice-export.json';
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      URL.revokeObjectURL(file);
    }
    say('Your data was downloaded.');
  }),
);

$('erase-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    if ($('erase-confirm').value.trim() !== 'ERASE') throw new Error('Type ERASE to confirm.');
    try {
      const erased = await api('DELETE', '/user');
      if (erased.status === 'deleting') return say('Your account is being erased; this finishes within 15 minutes.');
    } catch (error) {
      // The IdP asks for the credentials again first; then the person erases again.
      if (error.reauthenticateUrl) return location.assign(error.reauthenticateUrl);
      throw error;
    }
    signedOut();
    say('Your account was erased.');
  });
});

// Each slider shows its value.
for (const input of $('sliders').querySelectorAll('input[type=range]')) {
  const shown = $(`${input.id}-value`);
  const show = () => {
    shown.textContent = Number(input.value).toFixed(2);
  };
  input.addEventListener('input', show);
  show();
}

// --- workspaces ----------------------------------------------------------------------------

// The workspace shown (kept for the tab's life).
let workspaceId = sessionStorage.getItem('workspace');

async function showWorkspaces() {
  const { workspaces } = await api('GET', '/workspaces');
  // The list comes from an index that may lag a join (or a new workspace) by a moment: the
  // workspace this tab holds is read by its id, strongly consistent, before it is given up.
  if (workspaceId && !workspaces.some((w) => w.workspaceId === workspaceId)) {
    const held = await api('GET', `/workspaces/${workspaceId}`).catch(() => null);
    if (held) workspaces.push({ workspaceId, workspaceName: held.name, role: held.role });
  }
  if (!workspaces.some((w) => w.workspaceId === workspaceId)) workspaceId = workspaces[0]?.workspaceId ?? null;
  const select = $('workspace-switch');
  select.replaceChildren(
    ...workspaces.map((w) => {
      const option = element('option', `${w.workspaceName} (${w.role})`);
      option.value = w.workspaceId;
      return option;
    }),
  );
  $('workspace-picker').hidden = workspaces.length === 0;
  $('no-workspaces').hidden = workspaces.length > 0;
  $('workspace').hidden = !workspaceId;
  if (workspaceId) {
    select.value = workspaceId;
    await showWorkspace();
  }
}

// One workspace: what the caller's role allows decides what the page offers (the API decides
// what happens).
// `withSections`: also the shared voices, the pool and the keys (a change of members,
// invitations or seats leaves them as they are, and is not worth their requests).
async function showWorkspace({ withSections = true } = {}) {
  sessionStorage.setItem('workspace', workspaceId);
  const path = `/workspaces/${workspaceId}`;
  const [workspace, { members }] = await Promise.all([api('GET', path), api('GET', `${path}/members`)]);
  const can = (permission) => workspace.permissions.includes(permission);
  $('workspace-role').textContent =
    `${workspace.name}: ${workspace.members} member${workspace.members === 1 ? '' : 's'}. Your role: ${workspace.role}.`;
  $('members').replaceChildren(...members.map((member) => memberItem(member, can)));
  showSeats(workspace, can('manage-billing'));
  awaitTeam(workspace);
  const teamLive = workspace.team && ['active', 'trialing'].includes(workspace.team.status);
  if (withSections) await Promise.all([
    showLibraryOf(path, can('manage-voices')),
    showPool(path, teamLive),
    showWorkspaceKeys(path, can('manage-keys')),
  ]);
  $('invite-form').hidden = !can('manage-members');
  $('invitations-box').hidden = !can('manage-members');
  if (can('manage-members')) {
    const { invitations } = await api('GET', `${path}/invitations`);
    const pending = invitations.filter((i) => i.status === 'pending');
    $('invitations').replaceChildren(...pending.map(invitationItem));
    $('no-invitations').hidden = pending.length > 0;
  }
}

// The shared voices: every member sees them; who may manage voices shares and deletes them.
async function showLibraryOf(path, managesVoices) {
  const { voices, slots } = await api('GET', `${path}/voices`);
  $('shared-slots').textContent = `${voices.length} of ${slots} shared voice${slots === 1 ? '' : 's'}.`;
  $('shared-voices').replaceChildren(
    ...voices.map((v) => {
      const item = element('li');
      item.append(element('span', v.name, 'title'));
      if (managesVoices) {
        item.append(
          button('Delete', async () => {
            if (!confirm(`Delete the shared voice "${v.name}"?`)) return;
            await api('DELETE', `${path}/voices/${v.voiceId}`);
            say('Shared voice deleted.');
            await showWorkspace();
          }, `Delete the shared voice "${v.name}"`),
        );
      }
      return item;
    }),
  );
  $('no-shared-voices').hidden = voices.length > 0;
  $('share-form').hidden = !managesVoices;
  if (managesVoices && !$('share-consent-text').textContent) {
    const consent = await api('GET', '/voices/consent');
    consentVersion = consent.version;
    $('share-consent-text').textContent = consent.text;
  }
}

// The pooled generations with TEAM, and each member's share of them.
async function showPool(path, teamLive) {
  $('pool-box').hidden = !teamLive;
  if (!teamLive) return;
  const pool = await api('GET', `${path}/usage`);
  if (pool.limit === null) return;
  $('pool').textContent = `${pool.recordings} of ${pool.limit} pooled generations used this month.`;
  $('pool-members').replaceChildren(
    ...pool.members.map((m) => element('li', `${m.email}: ${m.recordings} generation${m.recordings === 1 ? '' : 's'}`)),
  );
}

async function showWorkspaceKeys(path, managesKeys) {
  $('workspace-keys-box').hidden = !managesKeys;
  if (!managesKeys) return;
  const { keys } = await api('GET', `${path}/api-keys`);
  $('workspace-keys').replaceChildren(
    ...keys.map((key) => {
      const item = element('li');
      item.append(element('span', `${key.name} (${key.prefix}…)`, 'title'));
      item.append(
        button('Revoke', async () => {
          await api('DELETE', `${path}/api-keys/${key.keyId}`);
          say(`The workspace key ${key.name} was revoked.`);
          await showWorkspace();
        }, `Revoke the workspace key ${key.name}`),
      );
      return item;
    }),
  );
  $('no-workspace-keys').hidden = keys.length > 0;
}

$('workspace-key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const made = await api('POST', `/workspaces/${workspaceId}/api-keys`, { name: $('workspace-key-name').value });
    $('workspace-key-name').value = '';
    $('workspace-key-made').textContent = `The new key (shown once): ${made.key}`;
    $('workspace-key-made').hidden = false;
    say(`The workspace key ${made.name} was created.`);
    await showWorkspace();
  });
});

$('share-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const samples = [...$('share-samples').files];
    $('share').disabled = true;
    try {
      say(`Uploading ${samples.length} sample(s)…`);
      const sampleIds = [];
      for (const sample of samples) sampleIds.push(await uploadSample(sample));
      say('Cloning…');
      const voice = await api('POST', `/workspaces/${workspaceId}/voices`, {
        name: $('share-name').value,
        sampleIds,
        consent: { accepted: $('share-consent').checked, statement: consentVersion },
      });
      $('share-form').reset();
      say(`"${voice.name}" is shared: members speak with it under Speak.`);
      await showWorkspace();
    } finally {
      $('share').disabled = false;
    }
  });
});

// Seats: how many are taken, what TEAM bills; the OWNER sets the limit and subscribes.
function showSeats(workspace, managesBilling) {
  const team = workspace.team;
  const live = team && ['active', 'trialing', 'past_due'].includes(team.status);
  const billing = live
    ? `TEAM (${team.status}): ${team.billedSeats} seat${team.billedSeats === 1 ? '' : 's'} billed, at most ${workspace.seatLimit}.`
    : 'No TEAM subscription: the free seats.';
  $('seats').textContent = `${workspace.members} of ${workspace.seats} seats taken. ${billing}`;
  $('seats-form').hidden = !managesBilling;
  $('seat-limit').value = workspace.seatLimit;
  $('team-checkout').hidden = Boolean(live);
}

// Back from TEAM's Checkout (`?team=subscribed`): Stripe's webhook brings TEAM a moment later,
// so the page reads the workspace again for up to 20 s.
let teamChecks = 0;
function awaitTeam(workspace) {
  const params = new URLSearchParams(location.search);
  if (params.get('team') !== 'subscribed') return;
  const live = workspace.team && ['active', 'trialing'].includes(workspace.team.status);
  if (live || teamChecks >= 20) {
    history.replaceState(null, '', location.pathname);
    if (live) say('TEAM is active: the seats are yours.');
    return;
  }
  teamChecks += 1;
  // Only the workspace row: its seats and TEAM (the rest of the page is read once).
  setTimeout(
    () =>
      run(async () => {
        // A failed read (the request limit, a blip) is tried again at the next check.
        const read = await api('GET', `/workspaces/${workspaceId}`).catch(() => null);
        if (read) showSeats(read, read.permissions.includes('manage-billing'));
        awaitTeam(read ?? workspace);
      }),
    1000,
  );
}

function memberItem(member, can) {
  const item = element('li');
  const you = member.userId === me.userId;
  item.append(element('span', `${member.email}${you ? ' (you)' : ''}`, 'title'));
  const manageable = can('manage-members') && !you && (member.role !== 'OWNER' || can('manage-owners'));
  if (!manageable) {
    item.append(element('span', member.role, 'tier'));
    return item;
  }
  const roles = can('manage-owners') ? ['OWNER', 'ADMIN', 'MEMBER', 'VIEWER'] : ['ADMIN', 'MEMBER', 'VIEWER'];
  const select = element('select');
  select.setAttribute('aria-label', `Role of ${member.email}`);
  select.replaceChildren(
    ...roles.map((role) => {
      const option = element('option', role);
      option.value = role;
      return option;
    }),
  );
  select.value = member.role;
  const target = `/workspaces/${workspaceId}/members/${encodeURIComponent(member.userId)}`;
  select.addEventListener('change', () =>
    run(async () => {
      await api('PATCH', target, { role: select.value });
      say(`${member.email} is now ${select.value}.`);
      await showWorkspace({ withSections: false });
    }),
  );
  const remove = button(
    'Remove',
    async () => {
      await api('DELETE', target);
      say(`${member.email} was removed.`);
      await showWorkspace(); // their keys went with them
    },
    `Remove ${member.email}`,
  );
  item.append(select, remove);
  return item;
}

function invitationItem(invitation) {
  const item = element('li');
  const until = new Date(invitation.expiresAt * 1000).toLocaleDateString();
  item.append(element('span', `${invitation.email} as ${invitation.role}, until ${until}`, 'title'));
  const path = `/workspaces/${workspaceId}/invitations/${invitation.invitationId}`;
  item.append(
    button(
      'Send again',
      async () => {
        await api('POST', `${path}/resend`);
        say(`The invitation to ${invitation.email} was sent again.`);
        await showWorkspace({ withSections: false });
      },
      `Send again the invitation to ${invitation.email}`,
    ),
    button(
      'Revoke',
      async () => {
        await api('DELETE', path);
        say(`The invitation to ${invitation.email} was revoked.`);
        await showWorkspace({ withSections: false });
      },
      `Revoke the invitation to ${invitation.email}`,
    ),
  );
  return item;
}

$('workspace-switch').addEventListener('change', () =>
  run(async () => {
    workspaceId = $('workspace-switch').value;
    await showWorkspace();
  }),
);

$('invite-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const email = $('invite-email').value.trim();
    await api('POST', `/workspaces/${workspaceId}/invitations`, { email, role: $('invite-role').value });
    $('invite-email').value = '';
    say(`Invitation sent to ${email}.`);
    await showWorkspace({ withSections: false });
  });
});

$('seats-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const seatLimit = Number($('seat-limit').value);
    await api('PATCH', `/workspaces/${workspaceId}/seats`, { seatLimit });
    say(`The seat limit is now ${seatLimit}.`);
    await showWorkspace({ withSections: false });
  });
});

$('team-checkout').addEventListener('click', () =>
  run(async () => {
    const seatLimit = Number($('seat-limit').value);
    const { sessionUrl } = await api('POST', `/workspaces/${workspaceId}/billing/checkout`, { seatLimit });
    location.assign(sessionUrl);
  }),
);

$('workspace-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const made = await api('POST', '/workspaces', { name: $('workspace-name').value });
    $('workspace-name').value = '';
    workspaceId = made.workspaceId;
    say(`Workspace ${made.name} created.`);
    await showWorkspaces();
  });
});

$('leave-workspace').addEventListener('click', () =>
  run(async () => {
    await api('DELETE', `/workspaces/${workspaceId}/members/${encodeURIComponent(me.userId)}`);
    say('You left the workspace.');
    workspaceId = null;
    await showWorkspaces();
  }),
);

// An invitation's link carries its token in the fragment: kept for the tab through sign-in, then
// accepted by the signed-in person (the API checks it is their address).
function keepInvitation() {
  const token = location.hash.match(/^#invitation=([\w-]+)$/)?.[1];
  if (!token) return;
  sessionStorage.setItem('invitation', token);
  history.replaceState(null, '', location.pathname + location.search);
}

async function acceptInvitation() {
  const token = sessionStorage.getItem('invitation');
  sessionStorage.removeItem('invitation');
  const joined = await api('POST', '/invitations/accept', { token });
  workspaceId = joined.workspaceId;
  history.replaceState(null, '', '/teams');
  say(`You joined ${joined.workspaceName} as ${joined.role}.`);
}

// --- admin area ----------------------------------------------------------------------------

// Shown to a role with admin permissions (the session lists them); each part appears only with
// the permission its routes need, and the API checks each request again.
const mayAdmin = (permission) => me.adminPermissions.includes(permission);
let adminTarget = null; // the account shown
let auditCursor = null;

async function showAdmin() {
  if (me.adminPermissions.length === 0) {
    history.replaceState(null, '', '/');
    return route();
  }
  $('admin-role').textContent = `Signed in as ${me.role}: ${me.adminPermissions.join(', ')}.`;
  $('lookup-form').hidden = !mayAdmin('look-up-users');
  $('admin-stats').hidden = !mayAdmin('view-stats');
  $('admin-audit').hidden = !mayAdmin('view-audit');
  const work = [];
  if (mayAdmin('view-stats')) work.push(showStats());
  if (mayAdmin('view-audit')) {
    if (!$('audit-month').value) $('audit-month').value = new Date().toISOString().slice(0, 7);
    work.push(showAudit());
  }
  await Promise.all(work);
}

async function showStats() {
  const stats = await api('GET', '/admin/stats');
  facts($('stats'), [
    ['Users', `${stats.users} (FREE ${stats.free}, BASIC ${stats.basic}, PREMIUM ${stats.premium})`],
    ['Active subscriptions', stats.activeSubscriptions],
    ['Monthly recurring revenue', dollars(stats.mrrCents)],
    ['Generations', `${stats.generationsThisMonth} in ${stats.period}`],
    ['Cloned voices', stats.clones],
    ['Failed payments', stats.failedPayments],
  ]);
}

function facts(list, pairs) {
  list.replaceChildren(...pairs.flatMap(([term, value]) => [element('dt', term), element('dd', String(value))]));
}

const userPath = (userId) => `/admin/users/${encodeURIComponent(userId)}`;

$('lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const wanted = $('lookup').value.trim();
    const query = new URLSearchParams(wanted.includes('@') ? { email: wanted } : { id: wanted });
    const { users } = await api('GET', `/admin/users?${query}`);
    $('found').replaceChildren(
      ...users.map((user) => {
        const item = element('li');
        item.append(
          element('span', `${user.email} (${user.tier}${user.suspension ? ', suspended' : ''})`, 'title'),
          button('View', () => showAdminAccount(user.userId), `View the account of ${user.email}`),
        );
        return item;
      }),
    );
    say(users.length ? `${users.length} account(s) found.` : `No account is ${wanted}.`);
  });
});

async function showAdminAccount(userId) {
  const account = await api('GET', userPath(userId));
  adminTarget = account;
  $('admin-account').hidden = false;
  $('admin-account-title').textContent = account.email;
  const usage = account.usage;
  facts($('admin-account-facts'), [
    ['User id', account.userId],
    ['Plan', `${account.tier}${account.subscriptionStatus ? ` (${account.subscriptionStatus})` : ''}`],
    ['Role', account.role],
    ['Recordings this month', usage.limit === null ? `${usage.used}, unlimited` : `${usage.used} of ${usage.limit}`],
    ['Cloned voices', account.voiceClones],
    ['Signed up', new Date(account.createdAt).toLocaleString()],
    ['Last sign-in', account.lastLogin ? new Date(account.lastLogin).toLocaleString() : 'never'],
    ['Status', account.suspension ? `suspended since ${new Date(account.suspension.since).toLocaleString()}: ${account.suspension.reason}` : 'active'],
  ]);
  $('suspend-form').hidden = !mayAdmin('suspend');
  $('suspend').textContent = account.suspension ? 'Lift the suspension' : 'Suspend';
  $('suspend').className = account.suspension ? '' : 'danger';
  $('grant-form').hidden = !mayAdmin('grant-usage');
  if (mayAdmin('view-audit')) await showAudit();
}

$('suspend-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const action = adminTarget.suspension ? 'unsuspend' : 'suspend';
    await api('POST', `${userPath(adminTarget.userId)}/${action}`, { reason: $('suspend-reason').value });
    $('suspend-reason').value = '';
    say(action === 'suspend' ? `${adminTarget.email} is suspended and signed out.` : `${adminTarget.email} may sign in again.`);
    await showAdminAccount(adminTarget.userId);
  });
});

$('grant-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(async () => {
    const recordings = Number($('grant-recordings').value);
    await api('POST', `${userPath(adminTarget.userId)}/grant-usage`, { recordings, reason: $('grant-reason').value });
    $('grant-form').reset();
    say(`${recordings} recording(s) added to ${adminTarget.email}'s month.`);
    await showAdminAccount(adminTarget.userId);
  });
});

// The audit log, newest first, a page at a time.
async function showAudit() {
  auditCursor = null;
  $('audit').replaceChildren();
  await moreAudit();
}

async function moreAudit() {
  const query = new URLSearchParams({ month: $('audit-month').value, limit: '10' });
  if (auditCursor) query.set('cursor', auditCursor);
  const page = await api('GET', `/admin/audit?${query}`);
  for (const entry of page.entries) {
    const target = entry.targetUserId ? ` on ${entry.targetUserId}` : '';
    const reason = entry.reason ? `: ${entry.reason}` : '';
    $('audit').append(element('li', `${new Date(entry.at).toLocaleString()}, ${entry.actorId} (${entry.actorRole}) ${entry.action}${target}${reason}`));
  }
  auditCursor = page.nextCursor;
  $('more-audit').hidden = !auditCursor;
  $('no-audit').hidden = $('audit').children.length > 0;
}

$('audit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  run(showAudit);
});
$('more-audit').addEventListener('click', () => run(moreAudit));

$('sign-in').addEventListener('click', () => {
  const returnTo = location.origin + (location.pathname === '/' ? '/' : location.pathname);
  location.assign(`${API}/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
});

$('sign-out').addEventListener('click', () =>
  run(async () => {
    const { logoutUrl } = await api('POST', '/auth/logout');
    me = null;
    location.assign(logoutUrl);
  }),
);

load();
