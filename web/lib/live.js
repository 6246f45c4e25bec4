/**
 * Follows a Server-Sent Events stream of ITS (LIVE.md). EventSource cannot send an Authorization
 * header, so this reads the stream with fetch and parses it here; after a drop it reconnects with
 * `Last-Event-ID`, which LIVE.md resumes from with no gap and no repeat.
 */

/** Splits an SSE byte stream into messages `{ id, event, data }` (the WHATWG parsing rules). */
export async function* sseMessages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let message = { id: null, event: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    // A chunk may end in "\r" whose "\n" has not come yet; the last piece waits for the next chunk.
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (message.data.length) yield { ...message, data: message.data.join('\n') };
        message = { id: message.id, event: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (name === 'data') message.data.push(value);
      else if (name === 'event') message.event = value;
      else if (name === 'id' && !value.includes('\0')) message.id = value;
      else if (name === 'retry' && /^\d+$/.test(value)) yield { retry: Number(value) };
    }
  }
}

/**
 * `follow(url, { token, onEvent, onState, onUnauthenticated })` → `{ stop() }`. `onEvent` gets the
 * parsed `data` of each message (an event as `GET …/events` returns it); `onState` 'connecting' |
 * 'live' | 'reconnecting' | 'stopped', plus a reason.
 */
export function follow(url, { token, onEvent, onState = () => {}, onUnauthenticated = () => {} }) {
  const controller = new AbortController();
  let lastEventId = null;
  let retryMs = 2000;
  let failures = 0;

  const wait = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      controller.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });

  (async () => {
    onState('connecting');
    while (!controller.signal.aborted) {
      let reason = 'the stream ended';
      try {
        const headers = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
        if (lastEventId !== null) headers['last-event-id'] = lastEventId;
        const response = await fetch(url, { headers, signal: controller.signal, cache: 'no-store' });
        if (response.status === 401) {
          const problem = await response.json().catch(() => ({}));
          onState('stopped', problem.detail ?? 'signed out');
          onUnauthenticated(problem.detail ?? 'the session ended');
          return;
        }
        if (!response.ok || !response.body) {
          const problem = await response.json().catch(() => ({}));
          throw new Error(problem.detail ?? `HTTP ${response.status}`);
        }
        onState('live');
        failures = 0;
        for await (const message of sseMessages(response.body)) {
          if (message.retry !== undefined) {
            retryMs = message.retry;
            continue;
          }
          if (message.id !== null) lastEventId = message.id;
          let data;
          try {
            data = JSON.parse(message.data);
          } catch {
            continue;
          }
          onEvent(data, message.event);
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        reason = error.message;
      }
      failures += 1;
      onState('reconnecting', reason);
      // Back off on repeated failures, up to half a minute.
      await wait(Math.min(30_000, retryMs * 2 ** Math.min(failures - 1, 4)));
    }
    onState('stopped');
  })();

  return { stop: () => controller.abort() };
}
