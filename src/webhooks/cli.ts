import type { DeliveryStatus, WebhookEndpoints } from './endpoints.ts';

/** Columns padded to their widest cell, like `its projections status`. */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  );
  for (const row of [header, ...rows])
    process.stdout.write(
      `${row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd()}\n`,
    );
}

/** `its webhooks list <orgId>`: each endpoint, its state and last error (never its secret). */
export async function runWebhooksList(endpoints: WebhookEndpoints, orgId: string): Promise<void> {
  const list = await endpoints.list(orgId);
  printTable(
    ['ID', 'STATE', 'URL', 'LAST DELIVERY', 'LAST ERROR'],
    list.map((e) => [e.id, e.state, e.url, e.lastDeliveryAt ?? '-', e.lastError ?? '']),
  );
}

/** `its webhooks deliveries <orgId> <webhookId>`: the newest deliveries and their last attempt. */
export async function runWebhookDeliveries(
  endpoints: WebhookEndpoints,
  orgId: string,
  webhookId: string,
  options: { status?: DeliveryStatus; limit: number },
): Promise<void> {
  if (!(await endpoints.get(orgId, webhookId))) return notFound(`webhook ${webhookId} not found in ${orgId}`);
  const { deliveries } = await endpoints.deliveries(webhookId, options);
  printTable(
    ['ID', 'STATUS', 'EVENT', 'POSITION', 'ATTEMPTS', 'LAST ATTEMPT', 'NEXT ATTEMPT'],
    deliveries.map((d) => {
      const last = d.attempts.at(-1);
      return [
        d.id,
        d.status,
        d.eventType,
        d.position,
        String(d.attempts.length),
        last ? `${last.at} ${last.statusCode ?? ''} ${last.error ?? ''}`.trim() : '-',
        d.nextAttemptAt ?? '-',
      ];
    }),
  );
}

/** `its webhooks redeliver <orgId> <webhookId> <deliveryId>`: queues it again with the same webhook-id. */
export async function runRedeliver(
  endpoints: WebhookEndpoints,
  orgId: string,
  webhookId: string,
  deliveryId: string,
): Promise<void> {
  if (!(await endpoints.get(orgId, webhookId))) return notFound(`webhook ${webhookId} not found in ${orgId}`);
  if (!(await endpoints.redeliver(webhookId, deliveryId)))
    return notFound(`delivery ${deliveryId} not found for ${webhookId}`);
  process.stdout.write(`${deliveryId} queued; a running worker attempts it within a second\n`);
}

function notFound(message: string): void {
  process.stderr.write(`its: ${message}\n`);
  process.exitCode = 1;
}
