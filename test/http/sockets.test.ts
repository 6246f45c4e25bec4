import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';

/** A raw client socket: what it received, and whether the server closed it. */
interface RawClient {
  socket: net.Socket;
  received(): string;
  closed: Promise<void>;
}

function connect(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', () => {});
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

/** Resolves true if `promise` settles within `ms`, false otherwise. */
const within = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => true), new Promise<boolean>((done) => setTimeout(() => done(false), ms))]);

const head = (method: string, path: string, headers: Record<string, string | number>) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;

describe('the edge on a real socket, under slow, oversized and aborted clients', () => {
  let t: TestApp;
  let port: number;
  let org: string;
  let token: string;
  const logLines: string[] = [];
  let app: ReturnType<typeof buildApp>;
  beforeAll(async () => {
    t = await startTestApp({
      workers: false,
      env: { REQUEST_TIMEOUT_MS: '800', MAX_CONNECTIONS: '20' },
    });
    // The same runtime served by an app whose log lines the tests can read.
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    app = buildApp(t.runtime, { loggerInstance: pino({ level: 'info' }, sink) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as net.AddressInfo).port;
    org = freshOrg();
    token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
  });
  afterAll(async () => {
    await app?.close();
    await t?.cleanup();
  });

  it('answers 401 to a body that is still arriving, and closes the socket instead of draining it', async () => {
    const client = await connect(port);
    client.socket.write(
      head('POST', `/api/orgs/${org}/incidents`, {
        'content-type': 'application/json',
        'content-length': 100_000,
      }),
    );
    client.socket.write('{"title":"');
    const trickle = setInterval(() => client.socket.writable && client.socket.write('x'), 50);
    try {
      expect(await within(client.closed, 3000)).toBe(true);
    } finally {
      clearInterval(trickle);
      client.socket.destroy();
    }
    expect(client.received()).toMatch(/^HTTP\/1\.1 401/);
    expect(client.received()).toMatch(/connection: close/i);
  });

  it('answers 413 to an announced body over 1 MiB and closes the socket', async () => {
    const client = await connect(port);
    client.socket.write(
      head('POST', `/api/orgs/${org}/incidents`, {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': 2 * 1024 * 1024,
      }),
    );
    const trickle = setInterval(() => client.socket.writable && client.socket.write('x'.repeat(100)), 50);
    try {
      expect(await within(client.closed, 3000)).toBe(true);
    } finally {
      clearInterval(trickle);
      client.socket.destroy();
    }
    expect(client.received()).toMatch(/^HTTP\/1\.1 413/);
  });

  it('times out a request whose body trickles past REQUEST_TIMEOUT_MS: 408 problem+json, socket closed', async () => {
    const client = await connect(port);
    client.socket.write(
      head('POST', `/api/orgs/${org}/incidents`, {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': 10_000,
      }),
    );
    const trickle = setInterval(() => client.socket.writable && client.socket.write(' '), 50);
    try {
      expect(await within(client.closed, 5000)).toBe(true);
    } finally {
      clearInterval(trickle);
      client.socket.destroy();
    }
    expect(client.received()).toMatch(/^HTTP\/1\.1 408/);
    expect(client.received()).toMatch(/application\/problem\+json/i);
    expect(client.received()).toContain('"code":"REQUEST_TIMEOUT"');
    // …and the service still answers.
    expect((await fetch(`http://127.0.0.1:${port}/health/live`)).status).toBe(200);
  });

  it('answers parser-level errors as problem+json: malformed HTTP 400, oversized headers 431', async () => {
    const malformed = await connect(port);
    malformed.socket.write('GARBAGE / HTTP/1.1\r\n\r\n');
    expect(await within(malformed.closed, 3000)).toBe(true);
    expect(malformed.received()).toMatch(/^HTTP\/1\.1 400/);
    expect(malformed.received()).toContain('"code":"VALIDATION_FAILED"');

    const oversized = await connect(port);
    oversized.socket.write(head('GET', '/health/live', { 'x-big': 'a'.repeat(64 * 1024) }));
    expect(await within(oversized.closed, 3000)).toBe(true);
    expect(oversized.received()).toMatch(/^HTTP\/1\.1 431/);
    expect(oversized.received()).toMatch(/application\/problem\+json/i);
    expect(oversized.received()).toContain('"code":"HEADERS_TOO_LARGE"');
  });

  it('holds at most MAX_CONNECTIONS sockets, and serves again once they go', async () => {
    const held = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
    const extra = await connect(port);
    expect(await within(extra.closed, 3000)).toBe(true);
    for (const client of held) client.socket.destroy();
    await Promise.all(held.map((client) => client.closed));
    expect((await fetch(`http://127.0.0.1:${port}/health/live`)).status).toBe(200);
  });

  it('counts a client that aborts mid-body as the client’s, not as a database outage', async () => {
    logLines.length = 0;
    const client = await connect(port);
    client.socket.write(
      head('POST', `/api/orgs/${org}/incidents`, {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': 1000,
      }),
    );
    client.socket.write('{"title":"half a body');
    await new Promise((done) => setTimeout(done, 200));
    client.socket.destroy();
    await client.closed;
    await new Promise((done) => setTimeout(done, 300));
    const levels = logLines.map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(levels.filter((line) => line.level >= 50)).toEqual([]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).not.toMatch(/status_code="503"|status="503"/);
  });
});

describe('METRICS_TOKEN', () => {
  it('closes /metrics to requests without the token, and leaves health open for probes', async () => {
    const t = await startTestApp({ workers: false, env: { METRICS_TOKEN: 'scrape-secret' } });
    try {
      const metrics = (authorization?: string) =>
        t.app.inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
      expect((await metrics()).statusCode).toBe(401);
      expect((await metrics('Bearer wrong')).statusCode).toBe(401);
      const scraped = await metrics('Bearer scrape-secret');
      expect(scraped.statusCode).toBe(200);
      expect(scraped.body).toMatch(/^# HELP /m);
      expect((await t.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    } finally {
      await t.cleanup();
    }
    const open = await startTestApp({ workers: false });
    try {
      expect((await open.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    } finally {
      await open.cleanup();
    }
  });
});
