import { z } from 'zod';

/** Request headers of the writes. */

/** One entity tag of If-Match (RFC 9110 8.8.3): strong `"3"`, weak `W/"3"`, or a bare `3` as clients send it. */
const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$|^(\d{1,9})$/;

/**
 * If-Match per RFC 9110 13.1.1: `*` (any existing incident) or the versions any listed strong tag
 * names. Weak tags and tags this API never issues stay in the list as matching nothing (so 412).
 */
const IfMatch = z.string().transform((value, ctx): '*' | number[] => {
  if (value.trim() === '*') return '*';
  const versions: number[] = [];
  for (const member of value.split(',')) {
    const tag = ENTITY_TAG.exec(member.trim());
    if (!tag) {
      ctx.addIssue({ code: 'custom', message: 'must be "*" or a list of entity tags, like "3"' });
      return z.NEVER;
    }
    const text = tag[3] ?? tag[2]!;
    if (tag[1] === undefined && /^\d{1,9}$/.test(text)) versions.push(Number(text));
  }
  return versions;
});

/** Headers every write understands; any other header passes through untouched. */
export const WriteHeaders = z.looseObject({
  'if-match': IfMatch.optional().describe(
    'the version(s) the change applies to, as ETags ("3", or "3", "4"): 412 if the incident is at none of them; "*" for any version; weak tags never match',
  ),
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .refine((key) => !/\p{Cc}/u.test(key), 'must not contain control characters')
    .optional()
    .describe('replays the first response for the same request'),
  prefer: z.string().optional().describe('respond-async: answer 202 without waiting for the read models'),
});
export const CreateHeaders = WriteHeaders.omit({ 'if-match': true });
