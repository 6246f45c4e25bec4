import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runRedeliver, runWebhookDeliveries, runWebhooksList } from '../../src/webhooks/cli.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { Receiver } from './receiver.ts';
import { FAST, makeEvents, register } from './support.ts';
import { output } from '../support/output.ts';

describe('its webhooks list | deliveries | redeliver', () => {
  let t: TestApp;
  const receiver = new Receiver();
  beforeAll(async () => {
    await receiver.start();
    t = await startTestApp({ env: { WEBHOOK_ALLOW_PRIVATE: 'true' }, webhooks: FAST });
  });
  afterAll(async () => {
    await t?.cleanup();
    await receiver.stop();
  });
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('lists endpoints without secrets, shows deliveries, and redelivers one', async () => {
    const org = freshOrg();
    const { id, secret } = await register(t, org, receiver.url, { description: 'chat bot' });
    receiver.secrets = [secret];
    await makeEvents(t, org, 1);
    await receiver.until(() => receiver.succeeded().length >= 3);
    const endpoints = t.runtime.webhooks.endpoints;

    const list = await output(() => runWebhooksList(endpoints, org));
    const [header, row] = list.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+STATE\s+URL\s+LAST DELIVERY\s+LAST ERROR$/);
    expect(row!.split(/\s+/).slice(0, 3)).toEqual([id, 'active', receiver.url]);
    expect(list.stdout).not.toContain(secret.slice(6));

    await expect
      .poll(
        async () =>
          (
            await output(() => runWebhookDeliveries(endpoints, org, id, { status: 'succeeded', limit: 20 }))
          ).stdout
            .trim()
            .split('\n').length,
      )
      .toBe(4);
    const deliveries = await output(() => runWebhookDeliveries(endpoints, org, id, { limit: 20 }));
    const lines = deliveries.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+EVENT\s+POSITION\s+ATTEMPTS\s+LAST ATTEMPT\s+NEXT ATTEMPT$/);
    // Newest first: the incident's creation is the last line.
    expect(lines.at(-1)!.split(/\s+/).slice(1, 3)).toEqual(['succeeded', 'INCIDENT_CREATED']);

    const oldest = lines.at(-1)!.split(/\s+/)[0]!;
    const redelivered = await output(() => runRedeliver(endpoints, org, id, oldest));
    expect(redelivered.stdout).toContain(`${oldest} queued`);
    await receiver.until((r) => r.filter((x) => x.id === oldest).length >= 2);

    const missing = await output(() => runRedeliver(endpoints, org, id, 'msg_0000'));
    expect(missing.stderr).toContain('delivery msg_0000 not found');
    expect(process.exitCode).toBe(1);
    process.exitCode = undefined;
    const otherOrg = await output(() => runWebhookDeliveries(endpoints, freshOrg(), id, { limit: 5 }));
    expect(otherOrg.stderr).toContain(`webhook ${id} not found`);
    expect(process.exitCode).toBe(1);
  });
});
