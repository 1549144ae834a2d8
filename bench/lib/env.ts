// Child processes in benchmarks get the same minimal environment the plugin host gives plugins,
// so that references and plugins start under equal conditions (this machine's global
// NODE_EXTRA_CA_CERTS alone adds ~90 ms to a Node start).
export function minimalEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra };
  if (process.env.HOME) env.HOME = process.env.HOME;
  return env;
}
