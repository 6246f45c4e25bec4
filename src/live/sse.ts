import type { ServerResponse } from 'node:http';
import { eventJsonWithStream, type RecordedEvent } from '../eventstore/port.ts';

/** The reconnect delay the first line tells every client (LIVE.md). */
export const RETRY_MS = 2000;

/** The message body: the event as `GET …/events` returns it, on one line. */
export function eventMessage(event: RecordedEvent): string {
  const data = JSON.stringify(eventJsonWithStream(event));
  // JSON.stringify escapes every newline, so `data` is one line; a position and a type never hold one.
  return `id: ${event.position}\nevent: ${event.type}\ndata: ${data}\n\n`;
}

/**
 * One open `text/event-stream` response. Live messages are written at once; when the client reads
 * so slowly that more than `maxBufferedBytes` wait unsent, it is cut off (it resumes with
 * Last-Event-ID) instead of being buffered without bound.
 */
export class SseConnection {
  private closed = false;
  private readonly onClose = new Set<() => void>();

  constructor(
    private readonly response: ServerResponse,
    private readonly maxBufferedBytes: number,
  ) {
    response.on('close', () => this.finish());
    response.on('error', () => this.finish());
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Sends the status line, the headers and `retry:`. */
  open(headers: Record<string, string | string[] | number | undefined>): void {
    this.response.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold messages back.
      'x-accel-buffering': 'no',
    });
    this.response.write(`retry: ${RETRY_MS}\n\n`);
    // Node keeps the head it sent for the response's life, as the tree of ~90 strings it joined it
    // from (3 KB of an idle stream's 16 KB of heap): reading a character makes V8 flatten it.
    (this.response as { _header?: string | null })._header?.charCodeAt(0);
  }

  /**
   * Writes one event; false when the connection is gone or was cut for reading too slowly. A live
   * event cannot wait, so too much unsent cuts the client off; the backlog waits with `drained`.
   */
  send(event: RecordedEvent, live: boolean): boolean {
    if (this.closed) return false;
    this.response.write(eventMessage(event));
    if (live && this.response.writableLength > this.maxBufferedBytes) {
      this.cut();
      return false;
    }
    return true;
  }

  keepAlive(): void {
    if (!this.closed) this.response.write(': keep-alive\n\n');
  }

  /** Resolves once the client has taken what was written (for the backlog, which can wait); false if it went away. */
  async drained(timeoutMs: number): Promise<boolean> {
    if (this.closed) return false;
    if (!this.response.writableNeedDrain) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.response.off('drain', onDrain);
        this.onClose.delete(onGone);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onGone = () => done(false);
      const timer = setTimeout(() => {
        this.cut();
        done(false);
      }, timeoutMs);
      this.response.on('drain', onDrain);
      this.onClose.add(onGone);
    });
  }

  /** Ends the stream cleanly (the token expired, the server is closing). */
  end(): void {
    if (this.closed) return;
    this.response.end();
    this.finish();
  }

  /** Drops the connection and what waits unsent. */
  cut(): void {
    if (this.closed) return;
    this.response.destroy();
    this.finish();
  }

  whenClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.onClose.add(listener);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of [...this.onClose]) listener();
    this.onClose.clear();
  }
}
