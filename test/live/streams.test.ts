import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { validIncident } from '../http/support.ts';
import { openLive, until, type LiveClient } from './support.ts';

interface OrgEvent {
  eventId: string;
  type: string;
  position: string;
  version: number;
  streamName: string;
}

describe(`live streams over a real socket on ${databaseLabel}`, () => {
  let t: TestApp;
  let base: string;
  const clients: LiveClient[] = [];
  beforeAll(async () => {
    t = await startTestApp({ env: { STREAM_MAX_PER_TOKEN: '4', STREAM_KEEPALIVE_MS: '300' } });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await t?.cleanup();
  });

  const lead = (orgId: string) => t.token({ sub: 'lena', orgs: { [orgId]: ['SRE_LEAD'] } });
  const live = (path: string, token: string, options: { lastEventId?: string } = {}) => {
    const client = openLive(`${base}${path}`, token, options);
    clients.push(client);
    return client;
  };
  const write = async (orgId: string, path: string, payload: Record<string, unknown>) => {
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${orgId}/incidents${path}`,
      token: lead(orgId),
      payload,
    });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response.json<{ incidentId: string; version: number; position: string }>();
  };
  const note = (orgId: string, incidentId: string, label: string) =>
    write(orgId, `/${incidentId}/actions`, { actionKind: 'NOTE', label });
  /** Every event of the org, from the store, in global order. */
  async function orgEvents(orgId: string): Promise<OrgEvent[]> {
    const events: OrgEvent[] = [];
    let from: string | null = null;
    do {
      const response = await t.request({
        method: 'GET',
        url: `/api/orgs/${orgId}/events?limit=1000${from ? `&fromPosition=${from}` : ''}`,
        token: lead(orgId),
      });
      const page = response.json<{ events: OrgEvent[]; nextFromPosition: string | null }>();
      events.push(...page.events);
      from = page.nextFromPosition;
    } while (from !== null);
    return events;
  }
  const ids = (client: LiveClient) => client.messages.map((message) => message.id);
  const openStreams = async () => {
    const metrics = await t.request({ method: 'GET', url: '/metrics' });
    return Number(/^its_live_streams_open (\d+)$/m.exec(metrics.body)?.[1]);
  };

  it('every event of concurrent writers arrives once, in log order, after the read models have it', async () => {
    const org = freshOrg();
    const incidents: string[] = [];
    for (let i = 0; i < 3; i++) incidents.push((await write(org, '', validIncident)).incidentId);
    const feed = live(`/api/orgs/${org}/events/stream`, lead(org));
    const all = live(`/api/orgs/${org}/incidents/stream`, lead(org));
    const notes = live(`/api/orgs/${org}/incidents/stream?type=INCIDENT_NOTE_ADDED`, lead(org));
    const one = live(`/api/orgs/${org}/incidents/${incidents[0]}/stream`, lead(org));
    // What the read model showed when each message of the incident's stream arrived.
    const seenVersions: [number, number][] = [];
    one.source.addEventListener('INCIDENT_NOTE_ADDED', (event) => {
      const { version } = JSON.parse(event.data) as { version: number };
      void t
        .request({
          method: 'GET',
          url: `/api/orgs/${org}/incidents/${incidents[0]}/timeline?limit=500`,
          token: lead(org),
        })
        .then((response) => {
          const entries = response.json<{ entries: { version: number }[] }>().entries;
          seenVersions.push([version, Math.max(...entries.map((entry) => entry.version))]);
        });
    });
    for (const client of [feed, all, notes, one]) await client.opened(1);

    await Promise.all(
      [0, 1, 2, 3].map(async (writer) => {
        for (let i = 0; i < 10; i++)
          await note(org, incidents[(writer + i) % 3]!, `writer ${writer} note ${i}`);
        await write(org, `/${incidents[writer % 3]}/status`, { newStatus: 'INVESTIGATING' }).catch(() => {});
      }),
    );
    const events = (await orgEvents(org)).slice(3); // after the three creations, which came before the streams
    const positions = events.map((event) => event.position);
    await feed.received(events.length);
    await all.received(events.length);
    expect(ids(feed)).toEqual(positions);
    expect(ids(all)).toEqual(positions);
    expect(feed.messages.map((message) => message.type)).toEqual(events.map((event) => event.type));
    expect(feed.messages.map((message) => message.data.eventId)).toEqual(
      events.map((event) => event.eventId),
    );

    const noteEvents = events.filter((event) => event.type === 'INCIDENT_NOTE_ADDED');
    await notes.received(noteEvents.length);
    expect(ids(notes)).toEqual(noteEvents.map((event) => event.position));

    const ofOne = events.filter((event) => event.streamName.endsWith(`.${incidents[0]}`));
    await one.received(ofOne.length);
    expect(ids(one)).toEqual(ofOne.map((event) => event.position));
    await until(
      () => seenVersions.length === ofOne.filter((e) => e.type === 'INCIDENT_NOTE_ADDED').length,
      'reads',
    );
    for (const [version, projected] of seenVersions) expect(projected).toBeGreaterThanOrEqual(version);

    // Nothing more than that arrives.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(feed.messages).toHaveLength(events.length);
    for (const client of [feed, all, notes, one]) client.close();
  });

  it('resumes after the client drops, from Last-Event-ID, fromPosition or fromVersion: each event exactly once', async () => {
    const org = freshOrg();
    const { incidentId } = await write(org, '', validIncident);
    const first = live(`/api/orgs/${org}/incidents/stream`, lead(org));
    await first.opened(1);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await note(org, incidentId, `note ${written}`);
        written++;
      }
    })();
    await first.received(5);
    first.close(); // the client drops mid-stream while writes go on
    const lastId = first.messages.at(-1)!.id;
    await until(() => written >= first.messages.length + 5, 'writes while disconnected');
    const second = live(`/api/orgs/${org}/incidents/stream`, lead(org), { lastEventId: lastId });
    const byQuery = live(`/api/orgs/${org}/events/stream?fromPosition=${lastId}`, lead(org));
    const byVersion = live(`/api/orgs/${org}/incidents/${incidentId}/stream?fromVersion=0`, lead(org));
    await second.received(5);
    writing = false;
    await writer;

    const events = await orgEvents(org);
    const afterFirst = events.slice(events.findIndex((event) => event.position === lastId) + 1);
    await second.received(afterFirst.length);
    await byQuery.received(afterFirst.length);
    await byVersion.received(events.length);
    const received = [...ids(first), ...ids(second)];
    expect(received).toEqual(events.slice(1).map((event) => event.position));
    expect(ids(byQuery)).toEqual(afterFirst.map((event) => event.position));
    expect(ids(byVersion)).toEqual(events.map((event) => event.position));
    expect(byVersion.messages.map((message) => message.data.version)).toEqual(events.map((_, i) => i));
  });

  it('a slow reader is cut off instead of buffered without bound, and resumes where it was', async () => {
    const slow = await startTestApp({
      shareDatabaseOf: t,
      env: { STREAM_MAX_BUFFERED_BYTES: '65536' },
    });
    try {
      await slow.app.listen({ host: '127.0.0.1', port: 0 });
      const port = (slow.app.server.address() as AddressInfo).port;
      const org = freshOrg();
      const { incidentId } = await write(org, '', validIncident);
      const token = slow.token({ sub: 'lena', orgs: { [org]: ['SRE_LEAD'] } });
      // A client that reads nothing: the kernel's buffers fill, then the server's.
      const chunks: Buffer[] = [];
      let ended = false;
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http
          .get(
            {
              host: '127.0.0.1',
              port,
              path: `/api/orgs/${org}/incidents/stream`,
              headers: { authorization: `Bearer ${token}` },
            },
            resolve,
          )
          .on('error', reject);
      });
      expect(response.statusCode).toBe(200);
      response.pause();
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => (ended = true));
      response.on('error', () => (ended = true));
      response.on('aborted', () => (ended = true));
      const open = async () => {
        const metrics = await slow.request({ method: 'GET', url: '/metrics' });
        return Number(/^its_live_streams_open (\d+)$/m.exec(metrics.body)?.[1]);
      };
      expect(await open()).toBe(1);
      const payload = { blob: 'x'.repeat(60_000) };
      let signals = 0;
      while ((await open()) > 0) {
        await write(org, `/${incidentId}/signals`, {
          signalType: 'LOG',
          source: 'app',
          summary: `s${signals}`,
          data: payload,
        });
        signals++;
        expect(signals, 'the server never cut the reader off').toBeLessThan(400);
      }
      response.resume();
      await until(() => ended, 'the end of the cut stream');
      const text = Buffer.concat(chunks).toString('utf8');
      const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
      const gotIds = [...complete.matchAll(/^id: (.+)$/gm)].map((match) => match[1]!);
      expect(gotIds.length).toBeLessThan(signals);

      const resumed = openLive(`http://127.0.0.1:${port}/api/orgs/${org}/incidents/stream`, token, {
        lastEventId: gotIds.at(-1)!,
      });
      clients.push(resumed);
      const events = (await orgEvents(org)).slice(1);
      await resumed.received(events.length - gotIds.length);
      expect([...gotIds, ...ids(resumed)]).toEqual(events.map((event) => event.position));
      resumed.close();
    } finally {
      await slow.app.close();
      await slow.runtime.close();
    }
  }, 120_000);

  it("another org's events never appear; a MEMBER reads incident streams but not the raw feed", async () => {
    const org = freshOrg();
    const other = freshOrg();
    const member = t.token({ sub: 'mo', orgs: { [org]: ['MEMBER'] } });
    const feed = live(`/api/orgs/${org}/events/stream`, lead(org));
    const incidents = live(`/api/orgs/${org}/incidents/stream`, member);
    await feed.opened(1);
    await incidents.opened(1);
    const mine = await write(org, '', validIncident);
    const theirs = await write(other, '', validIncident);
    await note(other, theirs.incidentId, 'not for org');
    await note(org, mine.incidentId, 'for org');
    await feed.received(2);
    await incidents.received(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const client of [feed, incidents]) {
      expect(client.messages).toHaveLength(2);
      for (const message of client.messages) expect(message.data.streamName).toContain(`${org}.`);
    }

    const status = async (path: string, token: string, headers: Record<string, string> = {}) => {
      const controller = new AbortController();
      const response = await fetch(`${base}${path}`, {
        headers: { authorization: `Bearer ${token}`, ...headers },
        signal: controller.signal,
      });
      const result = { status: response.status, type: response.headers.get('content-type') };
      controller.abort();
      return result;
    };
    expect(await status(`/api/orgs/${org}/events/stream`, member)).toMatchObject({ status: 403 });
    expect(await status(`/api/orgs/${other}/incidents/stream`, member)).toMatchObject({ status: 403 });
    expect(await status(`/api/orgs/${org}/incidents/${theirs.incidentId}/stream`, lead(org))).toMatchObject({
      status: 404,
    });
    expect(
      await status(`/api/orgs/${org}/incidents/stream`, member, { 'last-event-id': 'nope' }),
    ).toMatchObject({
      status: 400,
    });
    expect(await status(`/api/orgs/${org}/incidents/stream?type=NOPE`, member)).toMatchObject({
      status: 400,
    });
    expect(await status(`/api/orgs/${org}/incidents/stream`, 'not-a-token')).toMatchObject({ status: 401 });
  });

  it('at most STREAM_MAX_PER_TOKEN streams per token, then 429; retry: and keep-alive on the wire', async () => {
    const org = freshOrg();
    const token = lead(org);
    const before = await openStreams();
    const controllers: AbortController[] = [];
    // Held, so that no response is collected (which would close its stream).
    const responses: Response[] = [];
    const texts: string[] = [];
    for (let i = 0; i < 4; i++) {
      const controller = new AbortController();
      controllers.push(controller);
      const response = await fetch(`${base}/api/orgs/${org}/incidents/stream`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
      responses.push(response);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      if (i === 0) {
        const reader = response.body!.getReader();
        let text = '';
        while (!text.includes(': keep-alive\n\n'))
          text += new TextDecoder().decode((await reader.read()).value);
        texts.push(text);
      }
    }
    expect(texts[0]!.startsWith('retry: 2000\n\n')).toBe(true);
    const refused = await fetch(`${base}/api/orgs/${org}/incidents/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { code: string }).code).toBe('RATE_LIMITED');
    // Another token of the same person has its own allowance.
    const another = await fetch(`${base}/api/orgs/${org}/incidents/stream`, {
      headers: {
        authorization: `Bearer ${t.token({ sub: 'lena', orgs: { [org]: ['SRE_LEAD'] }, expiresIn: 299 })}`,
      },
      signal: AbortSignal.timeout(5_000),
    });
    expect(another.status).toBe(200);
    await another.body!.cancel();
    controllers[0]!.abort();
    // Closing one frees its place.
    await expect.poll(openStreams, { timeout: 10_000 }).toBe(before + 3);
    const again = await fetch(`${base}/api/orgs/${org}/incidents/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(again.status).toBe(200);
    await again.body!.cancel();
    for (const controller of controllers) controller.abort();
    await expect.poll(openStreams, { timeout: 10_000 }).toBe(before);
    expect(responses).toHaveLength(4);
  });

  it('a token that expires ends its stream, and the reconnect is refused with 401', async () => {
    const org = freshOrg();
    const token = t.token({ sub: 'brief', orgs: { [org]: ['SRE_LEAD'] }, expiresIn: 2 });
    const client = live(`/api/orgs/${org}/incidents/stream`, token);
    await client.opened(1);
    await until(() => client.failures.includes(401), 'the refused reconnect', 10_000);
    expect(client.source.readyState).toBe(client.source.CLOSED);
  });
  it('resumes across a server restart: the browser-style reconnect gets every event exactly once', async () => {
    const first = await startTestApp({ shareDatabaseOf: t });
    await first.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (first.app.server.address() as AddressInfo).port;
    const org = freshOrg();
    const { incidentId } = await write(org, '', validIncident);
    const client = openLive(
      `http://127.0.0.1:${port}/api/orgs/${org}/incidents/${incidentId}/stream`,
      first.token({ sub: 'lena', orgs: { [org]: ['SRE_LEAD'] } }),
    );
    clients.push(client);
    await client.opened(1);
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await note(org, incidentId, `note ${written}`);
        written++;
      }
    })();
    let second: TestApp | undefined;
    try {
      await client.received(5);
      await first.app.close(); // ends every open stream; the client retries after `retry: 2000`
      await first.runtime.close();
      second = await startTestApp({ shareDatabaseOf: t, env: { JWT_SECRET: first.secret } });
      await second.app.listen({ host: '127.0.0.1', port });
      await client.opened(2);
      await client.received(client.messages.length + 5);
      writing = false;
      await writer;
      const events = (await orgEvents(org)).slice(1);
      await client.received(events.length);
      expect(ids(client)).toEqual(events.map((event) => event.position));
    } finally {
      writing = false;
      await writer;
      client.close();
      await second?.app.close();
      await second?.runtime.close();
    }
  }, 60_000);
});
