import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { AddressGuard, bareHost } from './address-guard.ts';

/** WEBHOOKS.md: an attempt that has no answer after this long is a failure. */
export const ATTEMPT_TIMEOUT_MS = 15_000;
/** How much of a response body the delivery log keeps. */
export const SNIPPET_BYTES = 4096;

export interface AttemptOutcome {
  ok: boolean;
  statusCode?: number;
  error?: string;
  responseSnippet?: string;
  durationMs: number;
}

/** The keep-alive sockets one worker reuses across its attempts. */
export interface Agents {
  http: http.Agent;
  https: https.Agent;
}

export function newAgents(): Agents {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: 4 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 4 }),
  };
}

/**
 * One signed POST. Never throws: every failure (refused address, connection error, timeout, non-2xx)
 * is an outcome. Redirects are not followed (a 3xx is a failure like any other non-2xx).
 */
export function postDelivery(
  target: string,
  headers: Record<string, string>,
  body: string,
  options: { guard: AddressGuard; agents: Agents; timeoutMs?: number },
): Promise<AttemptOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const timeoutMs = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Omit<AttemptOutcome, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...outcome, durationMs: elapsed() });
    };
    const fail = (error: unknown) =>
      finish({ ok: false, error: error instanceof Error ? error.message : String(error) });

    let url: URL;
    try {
      url = new URL(target);
      // An IP literal is never looked up, so the guard checks it here.
      const host = bareHost(url);
      if (isIP(host)) options.guard.checkAddress(host);
    } catch (error) {
      fail(error);
      return;
    }
    const secure = url.protocol === 'https:';
    const request = (secure ? https : http).request(url, {
      method: 'POST',
      agent: secure ? options.agents.https : options.agents.http,
      lookup: options.guard.lookup,
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'ITS-Webhooks/1',
      },
    });
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${timeoutMs} ms`);
      request.destroy(error);
      fail(error);
    }, timeoutMs);
    request.on('socket', (socket) => {
      // A reused keep-alive socket was checked when it connected.
      if (!socket.connecting) return;
      // The address actually connected to, whatever resolved it.
      socket.once('connect', () => {
        try {
          if (socket.remoteAddress) options.guard.checkAddress(socket.remoteAddress);
        } catch (error) {
          request.destroy(error as Error);
        }
      });
    });
    request.on('error', fail);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      const done = () => {
        const statusCode = response.statusCode ?? 0;
        const snippet = Buffer.concat(chunks)
          .subarray(0, SNIPPET_BYTES)
          .toString('utf8')
          // PostgreSQL text cannot hold NUL.
          .replaceAll('\u0000', '');
        const ok = statusCode >= 200 && statusCode < 300;
        finish({
          ok,
          statusCode,
          ...(ok ? {} : { error: `HTTP ${statusCode}` }),
          ...(snippet ? { responseSnippet: snippet } : {}),
        });
      };
      response.on('data', (chunk: Buffer) => {
        if (kept < SNIPPET_BYTES) chunks.push(chunk);
        kept += chunk.length;
        // The rest is not needed: drop the connection rather than read an unbounded body.
        if (kept > SNIPPET_BYTES) {
          done();
          response.destroy();
        }
      });
      response.on('end', done);
      response.on('error', (error) => (kept > SNIPPET_BYTES ? undefined : fail(error)));
    });
    request.end(body);
  });
}
