// A plugin's stderr cut into lines: one callback per line however the pipe splits it (a read is
// at most 64 KiB, a line may be longer), and a line over the limit reported once, cut, while the
// rest of it is skipped, so a plugin that never writes a newline cannot fill the host's memory.
import type { Readable } from 'node:stream';

/** Called once per line, without its newline; `truncated` when only its first `maxChars` are given. */
export type LineHandler = (text: string, truncated: boolean) => void;

/** Reads `stream` as UTF-8 lines; resolves when it closes (the last unterminated line is given then) or fails. */
export function readLines(stream: Readable, maxChars: number, onLine: LineHandler): Promise<void> {
  stream.setEncoding('utf8');
  /** The line read so far: at most maxChars + 1 characters, enough to know it is too long. */
  let partial = '';
  /** True while skipping the rest of a line already reported as cut. */
  let skipping = false;
  const take = (piece: string, ended: boolean) => {
    if (!skipping) {
      partial += piece.slice(0, maxChars + 1 - partial.length);
      if (partial.length > maxChars) {
        onLine(partial.slice(0, maxChars), true);
        skipping = true;
      } else if (ended) onLine(partial, false);
    }
    if (ended || skipping) partial = '';
    if (ended) skipping = false;
  };
  stream.on('data', (chunk: string) => {
    const pieces = chunk.split('\n');
    const last = pieces.pop()!;
    for (const piece of pieces) take(piece, true);
    take(last, false);
  });
  return new Promise((resolve) => {
    stream.once('close', () => {
      if (partial !== '') onLine(partial, false);
      resolve();
    });
    stream.on('error', () => resolve());
  });
}
