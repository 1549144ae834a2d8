// readLines: a plugin's stderr as lines, whatever the pipe's chunks, with long lines cut once.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { readLines } from '../../src/host/stderr-lines.js';

async function linesOf(chunks: string[], maxChars: number): Promise<[string, boolean][]> {
  const stream = new PassThrough();
  const lines: [string, boolean][] = [];
  const done = readLines(stream, maxChars, (text, truncated) => lines.push([text, truncated]));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await done;
  return lines;
}

it('joins a line split over chunks and gives the unterminated last line at the end', async () => {
  assert.deepEqual(await linesOf(['ab', 'cd\nef', '\n\ng'], 8), [
    ['abcd', false],
    ['ef', false],
    ['', false],
    ['g', false],
  ]);
});

it('reports a line over the limit once, cut, however many chunks it spans, and reads on after its newline', async () => {
  assert.deepEqual(await linesOf(['12345', '67890', 'abcde', 'fgh\nnext\n'], 8), [
    ['12345678', true],
    ['next', false],
  ]);
  assert.deepEqual(await linesOf(['123456789\n', 'x'.repeat(50)], 8), [
    ['12345678', true],
    ['xxxxxxxx', true],
  ]);
});

it('keeps a line of exactly the limit whole', async () => {
  assert.deepEqual(await linesOf(['1234', '5678', '\n'], 8), [['12345678', false]]);
});
