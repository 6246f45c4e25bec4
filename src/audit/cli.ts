import { progressReporter } from '../../projections/cli.ts';
import type { AuditDeps, StreamVerification } from './verify.ts';
import { verifyIncident, verifyOrg } from './verify.ts';

/**
 * `its audit verify <orgId> [incidentId…]`: every incident stream of the org (or the named ones),
 * a progress bar on a terminal, one line per broken chain or read-model mismatch, a summary.
 * Exit code 1 when a chain is broken (the summary names the first) or a named incident is unknown.
 */
export async function runAuditVerifyCommand(
  deps: AuditDeps,
  orgId: string,
  incidentIds: string[],
  options: { json?: boolean } = {},
): Promise<void> {
  let results: StreamVerification[];
  if (incidentIds.length === 0) {
    // Progress goes to stdout, which --json keeps for the verdicts alone.
    const progress = options.json ? null : progressReporter(`audit ${orgId}`);
    results = await verifyOrg(deps, orgId, progress?.update);
    progress?.finish(`read ${results.reduce((sum, r) => sum + r.events, 0)} events`, true);
  } else {
    results = [];
    for (const incidentId of incidentIds) {
      const result = await verifyIncident(deps, orgId, incidentId);
      if (result) results.push(result);
      else {
        process.stderr.write(`its: incident ${incidentId} not found in org ${orgId}\n`);
        process.exitCode = 1;
      }
    }
  }

  for (const result of results) {
    if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (!result.valid)
      process.stdout.write(
        `BROKEN    ${result.streamName} at version ${result.firstInvalidVersion}: ${result.reason}\n`,
      );
    else if (!result.readModel.matches)
      process.stdout.write(
        `MISMATCH  ${result.streamName}: the read model (version ${result.readModel.version ?? 'none'}) is not the fold of the stream (version ${result.headVersion})\n`,
      );
  }
  const broken = results.filter((result) => !result.valid);
  const events = results.reduce((sum, result) => sum + result.events, 0);
  const unchained = results.reduce((sum, result) => sum + result.unchained, 0);
  const mismatches = results.filter((result) => result.valid && !result.readModel.matches).length;
  process.stderr.write(
    `${results.length} stream${results.length === 1 ? '' : 's'}, ${events} events (${unchained} unchained), ${mismatches} read-model mismatches: ` +
      (broken.length === 0
        ? 'every chain is intact\n'
        : `${broken.length} broken; the first is ${broken[0]!.streamName} at version ${broken[0]!.firstInvalidVersion}: ${broken[0]!.reason}\n`),
  );
  if (broken.length > 0) process.exitCode = 1;
}
