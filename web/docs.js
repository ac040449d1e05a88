// Renders /openapi.json as a page: one entry per operation, with its parameters, request body
// and responses (schemas with their references resolved). No third-party code.

const $ = (id) => document.getElementById(id);

function node(tag, text, className) {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = text;
  if (className) n.className = className;
  return n;
}

function resolve(spec, value, seen = new Set()) {
  if (Array.isArray(value)) return value.map((v) => resolve(spec, v, seen));
  if (!value || typeof value !== 'object') return value;
  if (value.$ref) {
    if (seen.has(value.$ref)) return { $ref: value.$ref };
    const target = value.$ref.slice(2).split('/').reduce((at, key) => at?.[key], spec);
    return resolve(spec, target, new Set([...seen, value.$ref]));
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(spec, v, seen)]));
}

function security(spec, operation) {
  const requirements = operation.security ?? spec.security ?? [];
  if (requirements.length === 0) return 'none (public)';
  return requirements.map((r) => Object.keys(r).join(' + ')).join(', or ');
}

function render(spec) {
  $('title').textContent = `${spec.info.title} ${spec.info.version}`;
  $('description').replaceChildren(...spec.info.description.split('\n\n').map((p) => node('p', p)));
  const operations = $('operations');
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of ['get', 'post', 'patch', 'delete']) {
      const operation = item[method];
      if (!operation) continue;
      const details = node('details', undefined, 'op');
      details.id = operation.operationId;
      details.dataset.search = `${method} ${path} ${operation.summary} ${(operation.tags ?? []).join(' ')}`.toLowerCase();
      const summary = node('summary');
      summary.append(node('span', method.toUpperCase(), `method ${method.toUpperCase()}`), node('span', path, 'path'));
      summary.append(node('span', ` ${operation.summary ?? ''}`), node('span', (operation.tags ?? []).join(', '), 'tag'));
      details.append(summary);
      if (operation.description) details.append(node('p', operation.description));
      details.append(node('p', `Authentication: ${security(spec, operation)}`));
      const parameters = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map((p) => resolve(spec, p));
      if (parameters.length) {
        const table = node('table');
        table.append(row('th', ['Parameter', 'In', 'Required', 'Schema']));
        for (const p of parameters) table.append(row('td', [p.name, p.in, p.required ? 'yes' : 'no', JSON.stringify(p.schema)]));
        details.append(node('h3', 'Parameters'), table);
      }
      const body = resolve(spec, operation.requestBody);
      if (body) {
        details.append(node('h3', 'Request body (application/json)'));
        details.append(schemaBlock(body.content['application/json'].schema));
      }
      details.append(node('h3', 'Responses'));
      for (const [status, response] of Object.entries(operation.responses)) {
        const r = resolve(spec, response);
        details.append(node('h4', `${status}: ${r.description}`));
        const schema = r.content?.['application/json']?.schema;
        if (schema && status < 400) details.append(schemaBlock(schema));
      }
      operations.append(details);
    }
  }
}

function row(cell, values) {
  const tr = node('tr');
  for (const v of values) tr.append(node(cell, v));
  return tr;
}

$('filter').addEventListener('input', () => {
  const words = $('filter').value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const op of document.querySelectorAll('.op')) op.hidden = !words.every((w) => op.dataset.search.includes(w));
});

const response = await fetch('/openapi.json');
render(await response.json());

// A schema as JSON; it may scroll sideways, so the keyboard can reach it too.
function schemaBlock(schema) {
  const block = node('pre', JSON.stringify(schema, null, 2));
  block.tabIndex = 0;
  return block;
}
