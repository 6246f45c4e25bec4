import { EventSource } from 'eventsource';
import { INCIDENT_STREAM_PREFIX } from '../../projections/projector.ts';
import { EVENT_TYPES } from '../../src/domain/incident/index.ts';
import type { EventStore, ReadAllOptions, SubscribeOptions } from '../../src/eventstore/port.ts';

/** One message as a client received it. */
export interface Received {
  id: string;
  type: string;
  data: { eventId: string; type: string; version: number; position: string; streamName: string };
}

export interface LiveClient {
  source: EventSource;
  messages: Received[];
  /** HTTP statuses of failed connection attempts (401 once the token expired, …). */
  failures: (number | undefined)[];
  /** Resolves once `count` messages have arrived (rejects after `timeoutMs`). */
  received(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once the client has connected `times` times in all. */
  opened(times: number, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Polls `check` every 20 ms until it holds. */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A real EventSource (the `eventsource` package, which behaves as a browser's: reconnects after
 * `retry:`, sends Last-Event-ID) with a bearer token, as the web app's fetch-based client sends it.
 */
export function openLive(url: string, token: string, options: { lastEventId?: string } = {}): LiveClient {
  const messages: Received[] = [];
  const failures: (number | undefined)[] = [];
  let opens = 0;
  const source = new EventSource(url, {
    fetch: (input, init) =>
      fetch(input, {
        ...init,
        headers: {
          ...init?.headers,
          authorization: `Bearer ${token}`,
          // The first connection resumes as a browser's reconnect would.
          ...(options.lastEventId && opens === 0 ? { 'last-event-id': options.lastEventId } : {}),
        },
      }),
  });
  source.addEventListener('open', () => opens++);
  source.addEventListener('error', (event) => failures.push(event.code));
  for (const type of EVENT_TYPES)
    source.addEventListener(type, (event) => {
      messages.push({
        id: event.lastEventId,
        type: event.type,
        data: JSON.parse(event.data) as Received['data'],
      });
    });
  return {
    source,
    messages,
    failures,
    received: (count, timeoutMs) =>
      until(() => messages.length >= count, `${count} messages (have ${messages.length})`, timeoutMs),
    opened: (times, timeoutMs) => until(() => opens >= times, `${times} connections`, timeoutMs),
    close: () => source.close(),
  };
}

/** What a live feed asks of the store: the subscriptions it opens, and its reads of the whole incident log. */
export interface StoreUse {
  subscriptions: (string | undefined)[];
  logReads: ReadAllOptions[];
}

/** The real store (methods bound to it, as the runtime's own proxy needs), noting `use`. */
export function observedStore(store: EventStore, use: StoreUse): EventStore {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'subscribe')
        return (options: SubscribeOptions) => {
          use.subscriptions.push(options.streamPrefix);
          return target.subscribe(options);
        };
      if (property === 'readAll')
        return (options: ReadAllOptions) => {
          if (options.streamPrefix === INCIDENT_STREAM_PREFIX) use.logReads.push(options);
          return target.readAll(options);
        };
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
