import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { ClientActionKind, Severity, SignalType, Status } from '../../domain/incident/index.ts';
import { ALLOWED_TRANSITIONS } from '../../domain/incident/state.ts';
import { OPERATION_ROLES } from '../auth.ts';

/** The war room's files, served as they are from the repository's `web/` folder. */
export const WEB_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
};

/**
 * Stricter than helmet's default: nothing but this origin's own files and API, no inline script or
 * style, no eval, and DOM sinks like innerHTML refused outright (Trusted Types with no policy).
 */
export const WEB_CSP = {
  useDefaults: false,
  directives: {
    'default-src': ["'none'"],
    'script-src': ["'self'"],
    'script-src-attr': ["'none'"],
    'style-src': ["'self'"],
    'img-src': ["'self'", 'data:'],
    'font-src': ["'self'"],
    'connect-src': ["'self'"],
    'manifest-src': ["'self'"],
    'base-uri': ["'none'"],
    'form-action': ["'none'"],
    'frame-ancestors': ["'none'"],
    'object-src': ["'none'"],
    'require-trusted-types-for': ["'script'"],
    'trusted-types': ["'none'"],
    'upgrade-insecure-requests': [],
  },
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` };
}

/** Every file under `web/`, read once at start-up: a fixed set of routes, so no path ever reaches the disk. */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const entry of readdirSync(WEB_ROOT, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const type = CONTENT_TYPES[path.extname(entry.name)];
    if (!type) continue;
    const url = `/web/${path.relative(WEB_ROOT, file).split(path.sep).join('/')}`;
    assets.set(url, asset(readFileSync(file), type));
  }
  return assets;
}

/**
 * What the app must know of the contract, from the code that enforces it (so the two never drift),
 * as a module the page imports with its own code rather than a fetch after it.
 */
function contractModule(): Buffer {
  const { admin: _admin, public: _public, ...operationRoles } = OPERATION_ROLES;
  const contract = JSON.stringify({
    operationRoles,
    transitions: ALLOWED_TRANSITIONS,
    statuses: Status.options,
    severities: Severity.options,
    signalTypes: SignalType.options,
    actionKinds: ClientActionKind.options,
  });
  return Buffer.from(`export default ${contract};\n`);
}

/** `GET /` is the war room's page; `GET /web/*` its scripts, styles and the contract it reads. */
export const webRoutes: FastifyPluginAsync = async (app) => {
  const assets = loadAssets();
  const index = assets.get('/web/index.html');
  if (!index) throw new Error(`web/index.html is missing under ${WEB_ROOT}`);
  assets.set('/', index);
  assets.set('/web/contract.js', asset(contractModule(), CONTENT_TYPES['.js']!));

  for (const [url, { body, type, etag }] of assets) {
    app.get(
      url,
      { schema: { hide: true }, config: { rateLimit: false }, helmet: { contentSecurityPolicy: WEB_CSP } },
      async (request, reply) => {
        // Revalidated on every load, so a new release shows at once; unchanged files answer 304.
        reply.header('cache-control', 'no-cache').header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.type(type).send(body);
      },
    );
  }
};
