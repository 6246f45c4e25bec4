import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  id: string;
  timestamp: number;
  signatures: string[];
  body: string;
  payload: {
    type: string;
    timestamp: string;
    data: { eventId: string; position: string; incidentId: string; version: number };
  };
  /** Which of the receiver's secrets verified it. */
  verifiedWith: number[];
  status: number;
}

/** How the receiver answers the nth request (from 0): a status, or 'hang' to never answer. */
export type Behaviour = (n: number, request: IncomingMessage) => number | 'hang';

/**
 * A webhook receiver on loopback that verifies every request with the `standardwebhooks` library
 * against each secret it is given (a request no secret verifies is answered 401 and recorded).
 */
export class Receiver {
  readonly received: Received[] = [];
  readonly rejected: string[] = [];
  secrets: string[] = [];
  behaviour: Behaviour = () => 204;
  private server: Server | null = null;
  private waiters = new Set<() => void>();
  private hanging = new Set<ServerResponse>();
  url = '';

  async start(): Promise<this> {
    this.server = createServer((request, response) => this.handle(request, response));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
    return this;
  }

  /** Requests being answered right now, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;

  private handle(request: IncomingMessage, response: ServerResponse): void {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    response.once('close', () => (this.inFlight -= 1));
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(request.headers['webhook-id']),
        'webhook-timestamp': String(request.headers['webhook-timestamp']),
        'webhook-signature': String(request.headers['webhook-signature']),
      };
      const verifiedWith = this.secrets.flatMap((secret, index) => {
        try {
          new Webhook(secret).verify(body, headers);
          return [index];
        } catch {
          return [];
        }
      });
      if (verifiedWith.length === 0) {
        this.rejected.push(body);
        response.writeHead(401).end('bad signature');
        this.notify();
        return;
      }
      const n = this.received.length;
      const answer = this.behaviour(n, request);
      this.received.push({
        id: headers['webhook-id'],
        timestamp: Number(headers['webhook-timestamp']),
        signatures: headers['webhook-signature'].split(' '),
        body,
        payload: JSON.parse(body) as Received['payload'],
        verifiedWith,
        status: answer === 'hang' ? 0 : answer,
      });
      this.notify();
      if (answer === 'hang') {
        this.hanging.add(response);
        return;
      }
      response.writeHead(answer, { 'content-type': 'text/plain' }).end(`answer ${answer}`);
    });
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter();
  }

  /** Resolves once `done()` holds for what was received. */
  until(done: (received: Received[]) => boolean, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done(this.received)) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(`receiver: condition not met within ${timeoutMs} ms (${this.received.length} received)`),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Successful deliveries: one per webhook-id, in the order they first succeeded. */
  succeeded(): Received[] {
    const seen = new Set<string>();
    return this.received.filter(
      (r) => r.status >= 200 && r.status < 300 && !seen.has(r.id) && seen.add(r.id),
    );
  }

  async stop(): Promise<void> {
    for (const response of this.hanging) response.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
