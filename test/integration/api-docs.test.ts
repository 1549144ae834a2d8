// docs/api.md's error table is the catalog in src/errors.ts, row for row.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERRORS } from '../../src/errors.js';

it('docs/api.md lists every error code with its status and meaning', () => {
  const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
  const documented = /<!-- errors:begin -->\n([\s\S]*?)\n<!-- errors:end -->/.exec(doc)?.[1];
  const expected = [
    '| Code | HTTP | Meaning |',
    '|---|---|---|',
    ...Object.entries(ERRORS).map(([code, { status, summary }]) => `| \`${code}\` | ${status} | ${summary} |`),
  ].join('\n');
  assert.equal(documented, expected, `update the table between the errors markers in docs/api.md to:\n${expected}`);
});
