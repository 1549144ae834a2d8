// "Did you mean …?" for a mistyped name: the known name closest to it by edit distance, when it
// is close enough to be a typo rather than a different word.

/** Edit distance counting an insertion, deletion, substitution or swap of two neighbours as one (optimal string alignment). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** ` (did you mean "x"?)` for the closest of `known` (case ignored), or '' when none is within a third of the word's length. */
export function didYouMean(word: string, known: readonly string[]): string {
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: { name: string; cost: number } | undefined;
  for (const name of known) {
    const cost = distance(word.toLowerCase(), name.toLowerCase());
    if (cost <= limit && (!best || cost < best.cost)) best = { name, cost };
  }
  return best ? ` (did you mean "${best.name}"?)` : '';
}
