// What the committed-recorder fixture plugin wrote (one JSON line per delivery attempt), and a
// bounded wait for it: shared by the outbox tests through the host and through a server process.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** One delivery attempt as the committed recorder logs it. */
export interface RecordedAttempt {
  outcome: string;
  hook: string;
  seq: number;
  requestId: string;
  subjectKey: string;
  attempt: number;
  pid: number;
}

/**
 * The attempts recorded in `file` so far (none when it does not exist yet). Only whole lines: the
 * plugin may be writing one while the test reads, and what follows the last newline is not whole.
 */
export function recordedAttempts(file: string): RecordedAttempt[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.pop();
  return lines.filter(Boolean).map((l) => JSON.parse(l) as RecordedAttempt);
}

/** Polls `check` every 20 ms until it holds, failing with `what` after `limitMs`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, limitMs = 20_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(20);
  }
}
