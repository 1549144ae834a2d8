// Collects benchmark figures, prints them as a table beside their references, and writes
// bench/results/latest.json so runs can be compared.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export interface Figure {
  suite: string;
  name: string;
  value: number;
  unit: string;
  /** The name of the figure in the same run this one is compared with, if any. */
  reference?: string;
  /** value / reference value (for time and memory lower is better; for throughput higher is better). */
  ratio?: number;
  /** The target for the ratio (or for the value, without a reference), as the issue states it (e.g. "≤ 1.3×"). */
  target?: string;
}

export class Report {
  readonly figures: Figure[] = [];

  add(suite: string, name: string, value: number, unit: string, target?: string): void {
    this.figures.push({ suite, name, value, unit, ...(target === undefined ? {} : { target }) });
    console.error(`  ${suite} / ${name}: ${format(value)} ${unit}`);
  }

  /** Records `name` compared with an earlier figure of the same run. */
  compare(suite: string, name: string, value: number, unit: string, reference: string, target?: string): void {
    const ref = this.figures.find((f) => f.name === reference);
    const ratio = ref ? value / ref.value : undefined;
    this.figures.push({
      suite,
      name,
      value,
      unit,
      reference,
      ...(ratio === undefined ? {} : { ratio }),
      ...(target === undefined ? {} : { target }),
    });
    console.error(`  ${suite} / ${name}: ${format(value)} ${unit}${ratio === undefined ? '' : ` (${ratio.toFixed(2)}× ${reference})`}`);
  }

  print(): void {
    const rows = this.figures.map((f) => [
      f.suite,
      f.name,
      `${format(f.value)} ${f.unit}`,
      f.ratio === undefined ? '' : `${f.ratio.toFixed(2)}× ${f.reference}`,
      f.target ?? '',
    ]);
    const header = ['suite', 'figure', 'value', 'vs reference (same run)', 'target'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(line(header).trimEnd());
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of rows) console.log(line(row).trimEnd());
  }

  /** Writes the figures with the machine they were measured on, its load, and `run` (e.g. whether it was quick). */
  write(path: URL, run: Record<string, unknown>): void {
    mkdirSync(new URL('.', path), { recursive: true });
    const machine = {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadAverage: loadavg(),
    };
    writeFileSync(path, `${JSON.stringify({ date: new Date().toISOString(), ...run, machine, figures: this.figures }, null, 2)}\n`);
  }
}

function format(value: number): string {
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
}
